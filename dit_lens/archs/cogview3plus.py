"""CogView3PlusTransformer2DModel (CogView3-Plus): two-stream blocks returning (img, txt), like CogView4; its
feed-forward runs on the joined [txt; img] sequence (no separate mlp site); CFG batched as [uncond; cond]."""

from .spec import Arch, Family, joint

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="CogView3PlusTransformer2DModel",
    families=(
        Family("double", "transformer_blocks", output="img,txt",
               inputs={"img": ("hidden_states", 0), "txt": ("encoder_hidden_states", 1)},
               sites={"attn_out": {"img": ("attn1", 0), "txt": ("attn1", 1)}, "mlp_out": joint("ff")}),
    ),
)
