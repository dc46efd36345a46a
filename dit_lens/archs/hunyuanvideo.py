"""HunyuanVideoTransformer3DModel (HunyuanVideo): a token refiner on the text, then double blocks and single blocks,
both taking (hidden_states, encoder_hidden_states) and returning (img, txt); the image stream is the patched latent
video, (frames, rows, cols). Guidance-distilled (``guidance_scale`` is embedded); true CFG (a cond call, then an
uncond call per step) with ``true_cfg_scale > 1`` and a negative prompt."""

from .spec import Arch, Family, Grid, SequentialCFG, mmdit_double

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="HunyuanVideoTransformer3DModel",
    timestep=("timestep", 1),
    text=("encoder_hidden_states", 2),
    pooled=("pooled_projections", 4),
    families=(
        mmdit_double(output="img,txt"),
        Family("single", "single_transformer_blocks", output="img,txt",
               inputs={"img": ("hidden_states", 0), "txt": ("encoder_hidden_states", 1)},
               sites={"attn_out": {"img": ("attn", 0), "txt": ("attn", 1)}}),
    ),
    sequential_cfg=SequentialCFG("true_cfg_scale", 1.0, ("negative_prompt", "negative_prompt_embeds")),
    grid=Grid("bcfhw", patch=("patch_size_t", "patch_size", "patch_size")),
)
