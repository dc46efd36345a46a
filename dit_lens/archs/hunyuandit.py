"""HunyuanDiT2DModel (Hunyuan-DiT): cross-attention blocks returning the image stream only (text from a CLIP-like and
a T5 encoder, joined, by cross-attention). Blocks after the middle take a ``skip=`` input, the output of the block
mirroring them, merged into the image stream by ``skip_linear`` first: their ``resid_pre`` is the stream before that
merge. CFG batched as [uncond; cond]."""

from .spec import Arch, Family

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="HunyuanDiT2DModel",
    timestep=("timestep", 1),
    text=("encoder_hidden_states", 2),
    text_more=(("encoder_hidden_states_t5", 4, "prompt_embeds_2"),),
    families=(
        Family("blocks", "blocks", output="img", inputs={"img": ("hidden_states", 0)},
               sites={"attn_out": {"img": ("attn1", None)}, "xattn_out": {"img": ("attn2", None)},
                      "mlp_out": {"img": ("ff", None)}}),
    ),
)
