"""ChromaTransformer2DModel (Chroma): Flux-like double blocks returning (txt, img), single blocks taking and
returning one [txt; img] tensor; the pipeline calls the transformer twice per step (cond, then uncond) whenever
``guidance_scale > 1``."""

from .spec import Arch, Family, mmdit_double, SequentialCFG

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="ChromaTransformer2DModel",
    families=(
        mmdit_double(),
        Family("single", "single_transformer_blocks", output="joint", inputs={"joint": ("hidden_states", 0)}),
    ),
    sequential_cfg=SequentialCFG("guidance_scale", 5.0, ()),
)
