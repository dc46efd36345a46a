"""BriaFiboTransformer2DModel (Bria FIBO): FLUX-style double blocks returning (txt, img), then single blocks on one
[txt; img] tensor. Before every block the transformer replaces the second half of the text stream's channels with
a projection of one text-encoder layer, so a block's ``txt.resid_pre`` differs from the previous block's
``txt.resid_post``. CFG batched as [uncond; cond]."""

from .spec import Arch, mmdit_double, single_stream

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="BriaFiboTransformer2DModel",
    timestep=("timestep", 4),
    families=(
        mmdit_double(),
        single_stream(output="joint"),
    ),
)
