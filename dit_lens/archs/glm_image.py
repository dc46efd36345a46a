"""GlmImageTransformer2DModel (GLM-Image): two-stream blocks taking (hidden_states, encoder_hidden_states) and
returning (img, txt); the image stream starts from the latents plus the autoregressive model's prior tokens. The
pipeline calls the transformer twice per step (cond, then uncond with the prior tokens dropped) whenever
``guidance_scale > 1``. One ``ff`` module runs twice per block (image, then text): no ``mlp_out``."""

from .spec import Arch, Family, SequentialCFG

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="GlmImageTransformer2DModel",
    timestep=("timestep", 4),
    families=(
        Family("double", "transformer_blocks", output="img,txt",
               inputs={"img": ("hidden_states", 0), "txt": ("encoder_hidden_states", 1)},
               sites={"attn_out": {"img": ("attn1", 0), "txt": ("attn1", 1)}}),
    ),
    sequential_cfg=SequentialCFG("guidance_scale", 1.5, ()),
    refuse=(("image", "the pipeline first calls the transformer once per condition image to fill its key-value "
                      "cache, calls that are not denoising steps"),),
)
