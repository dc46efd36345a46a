"""LongCatImageTransformer2DModel (LongCat-Image): FLUX-style double then single blocks, both returning (txt, img);
CFG as a cond and an uncond call per step when ``guidance_scale > 1`` (the pipeline's default 4.5)."""

from .spec import Arch, SequentialCFG, mmdit_double, single_stream

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="LongCatImageTransformer2DModel",
    families=(
        mmdit_double(),
        single_stream(),
    ),
    sequential_cfg=SequentialCFG("guidance_scale", 4.5, ()),
)
