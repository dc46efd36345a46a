"""BriaTransformer2DModel (Bria 3.x): FLUX-style double then single blocks, both returning (txt, img); CFG batched
as [uncond; cond] in one call."""

from .spec import Arch, mmdit_double, single_stream

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="BriaTransformer2DModel",
    timestep=("timestep", 3),  # pooled_projections sits at 2, unused by Bria's pipeline
    families=(
        mmdit_double(),
        single_stream(),
    ),
)
