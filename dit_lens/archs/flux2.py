"""Flux2Transformer2DModel (FLUX.2 dev/klein): double blocks return (txt, img); single blocks take and return one
[txt; img] tensor. FLUX.2-dev is guidance-distilled (one call per step); FLUX.2-klein's pipelines that are not
distilled (``is_distilled=False``) call the transformer twice per step, cond then uncond, when
``guidance_scale > 1`` (their default is 4)."""

from .spec import Arch, SequentialCFG, mmdit_double, single_stream

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="Flux2Transformer2DModel",
    families=(
        mmdit_double(),
        single_stream(output="joint"),
    ),
    sequential_cfg=SequentialCFG("guidance_scale", 4.0, (), pipelines=("Flux2KleinPipeline",
                                                                      "Flux2KleinInpaintPipeline"),
                                 unless="is_distilled"),
)
