"""FluxTransformer2DModel (FLUX.1 dev/schnell/Kontext, and the embedded tiny model): double blocks then single
blocks; both return (txt, img) in diffusers >= 0.35; true CFG when ``true_cfg_scale > 1`` with a negative prompt."""

from .spec import Arch, SequentialCFG, mmdit_double, single_stream

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="FluxTransformer2DModel",
    timestep=("timestep", 3),
    pooled=("pooled_projections", 2),
    families=(
        mmdit_double(),
        single_stream(),
    ),
    sequential_cfg=SequentialCFG("true_cfg_scale", 1.0, ("negative_prompt", "negative_prompt_embeds")),
)
