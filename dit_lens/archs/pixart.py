"""PixArtTransformer2DModel (PixArt-alpha/sigma): cross-attention blocks returning the image stream only."""

from .spec import Arch, Family

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="PixArtTransformer2DModel",
    families=(
        Family("blocks", "transformer_blocks", output="img", inputs={"img": ("hidden_states", 0)},
               sites={"attn_out": {"img": ("attn1", None)}, "xattn_out": {"img": ("attn2", None)},
                      "mlp_out": {"img": ("ff", None)}}),
    ),
)
