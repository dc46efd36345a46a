"""CogVideoXTransformer3DModel (CogVideoX, CogVideoX 1.5): expert blocks taking (hidden_states, encoder_hidden_states)
and returning (img, txt) over the video tokens, (frames, rows, cols) of the patched latent video (its latent
argument is (batch, frames, channels, height, width)); the feed-forward runs on the joint [txt; img] sequence. CFG
batched as [uncond; cond]."""

from .spec import Arch, Family, Grid, joint

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="CogVideoXTransformer3DModel",
    timestep=("timestep", 2),
    families=(
        Family("double", "transformer_blocks", output="img,txt",
               inputs={"img": ("hidden_states", 0), "txt": ("encoder_hidden_states", 1)},
               sites={"attn_out": {"img": ("attn1", 0), "txt": ("attn1", 1)}, "mlp_out": joint("ff")}),
    ),
    grid=Grid("bfchw", patch=("patch_size_t", "patch_size", "patch_size")),
)
