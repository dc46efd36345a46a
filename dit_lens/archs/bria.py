"""BriaTransformer2DModel (Bria 3.x): FLUX-style double then single blocks, both returning (txt, img); CFG batched
as [uncond; cond] in one call."""

from .spec import Arch, Family, mmdit_double

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="BriaTransformer2DModel",
    timestep=("timestep", 3),  # pooled_projections sits at 2, unused by Bria's pipeline
    families=(
        mmdit_double(),
        Family("single", "single_transformer_blocks", output="txt,img",
               inputs={"img": ("hidden_states", 0), "txt": ("encoder_hidden_states", 1)}),
    ),
)
