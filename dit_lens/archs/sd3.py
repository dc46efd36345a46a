"""SD3Transformer2DModel (SD3, SD3.5): joint blocks returning (txt, img); the last block returns (None, img). SD3.5's
dual-attention blocks (``dual_attention_layers``) run a second self-attention on the image stream, ``attn2_out``."""

from .spec import Arch, mmdit_double

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="SD3Transformer2DModel",
    timestep=("timestep", 3),
    pooled=("pooled_projections", 2),
    families=(
        mmdit_double(txt_may_be_none=True, attn2="attn2"),
    ),
)
