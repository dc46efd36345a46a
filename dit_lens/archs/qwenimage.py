"""QwenImageTransformer2DModel (Qwen-Image): double-stream blocks returning (txt, img); the pipeline calls the
transformer twice per step (cond, then uncond) when ``true_cfg_scale > 1`` with a negative prompt."""

from .spec import Arch, SequentialCFG, mmdit_double

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="QwenImageTransformer2DModel",
    families=(
        mmdit_double(mlp=("img_mlp", "txt_mlp")),
    ),
    sequential_cfg=SequentialCFG("true_cfg_scale", 4.0, ("negative_prompt", "negative_prompt_embeds")),
)
