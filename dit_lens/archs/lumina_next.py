"""LuminaNextDiT2DModel (Lumina-Next): `layers` called with positional arguments (hidden_states, mask, rotary
embedding, encoder_hidden_states, ...), returning the image stream only; the text enters by a gated cross-attention
inside the attention module. Self- and cross-attention return per-head values that a gate mixes before one shared
output projection, so only ``mlp_out`` is a sub-site. CFG is batched as [cond; uncond], the reverse of most
pipelines."""

from .spec import Arch, Family

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="LuminaNextDiT2DModel",
    timestep=("timestep", 1),
    text=("encoder_hidden_states", 2),
    families=(
        Family("blocks", "layers", output="img", inputs={"img": ("hidden_states", 0)},
               sites={"mlp_out": {"img": ("feed_forward", None)}}),
    ),
    batch_order=("cond", "uncond"),
)
