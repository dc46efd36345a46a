"""SD3Transformer2DModel (SD3, SD3.5): joint blocks returning (txt, img); the last block returns (None, img)."""

from ._spec import Arch, mmdit_double

ARCH = Arch(
    model_class="SD3Transformer2DModel",
    families=(
        mmdit_double(txt_may_be_none=True),
    ),
)
