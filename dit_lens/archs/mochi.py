"""MochiTransformer3DModel (Mochi 1): asymmetric two-stream blocks taking (hidden_states, encoder_hidden_states) and
returning (img, txt); the last block leaves the text as it came in. The image stream is the patched latent video,
(frames, rows, cols). CFG batched as [uncond; cond]."""

from .spec import Arch, Grid, mmdit_double

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="MochiTransformer3DModel",
    families=(
        mmdit_double(output="img,txt", attn="attn1"),
    ),
    grid=Grid("bcfhw", patch=(1, "patch_size", "patch_size")),
    min_steps=2,  # its pipeline's linear-quadratic schedule divides by zero at one step
)
