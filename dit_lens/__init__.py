"""dit-lens: read and edit Diffusion Transformer hidden states by canonical name, through nnsight.

Public surface:
    Lens                      wrap a diffusers DiT pipeline ("tiny", a folder, a hub id or an object)
    Cache, Generation         what runs return
    Edit, zero, set_to, scale, add, patch   interventions
    tiny_pipeline             the embedded trained model as a diffusers pipeline (module: dit_lens.tiny)
"""

from .edits import Edit, add, patch, scale, set_to, zero
from .lens import Cache, Generation, Lens

__version__ = "0.1.0"


def tiny_pipeline(weights=True):
    """The embedded tiny text-to-image DiT (a diffusers pipeline, weights shipped in the package)."""
    from .tiny.pipeline import build

    return build(weights)


__all__ = ["Lens", "Cache", "Generation", "Edit", "zero", "set_to", "scale", "add", "patch", "tiny_pipeline", "__version__"]
