"""CogView4Transformer2DModel (CogView4): two-stream blocks returning (img, txt) — the reverse of Flux; the pipeline
calls the transformer twice per step (cond, then uncond) whenever ``guidance_scale > 1``. One ``ff`` module runs twice per block (image, then text): no ``mlp_out``."""

from .spec import Arch, Family, SequentialCFG

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="CogView4Transformer2DModel",
    families=(
        Family("double", "transformer_blocks", output="img,txt",
               inputs={"img": ("hidden_states", 0), "txt": ("encoder_hidden_states", 1)},
               sites={"attn_out": {"img": ("attn1", 0), "txt": ("attn1", 1)}}),
    ),
    sequential_cfg=SequentialCFG("guidance_scale", 5.0, ()),
)
