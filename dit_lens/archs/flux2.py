"""Flux2Transformer2DModel (FLUX.2 dev/klein): double blocks return (txt, img); single blocks take and return one
[txt; img] tensor."""

from .spec import Arch, Family, mmdit_double

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="Flux2Transformer2DModel",
    families=(
        mmdit_double(),
        Family("single", "single_transformer_blocks", output="joint", inputs={"joint": ("hidden_states", 0)}),
    ),
)
