"""ChromaTransformer2DModel (Chroma): Flux-like double blocks returning (txt, img), single blocks taking and
returning one [txt; img] tensor; the pipeline calls the transformer twice per step (cond, then uncond) whenever
``guidance_scale > 1``."""

from .spec import Arch, SequentialCFG, mmdit_double, single_stream

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="ChromaTransformer2DModel",
    families=(
        mmdit_double(),
        single_stream(output="joint"),
    ),
    sequential_cfg=SequentialCFG("guidance_scale", 5.0, ()),
)
