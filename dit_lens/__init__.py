"""dit-lens: read and edit Diffusion Transformer hidden states by canonical name, through nnsight.

Public surface:
    Lens                      wrap a diffusers DiT pipeline ("tiny", a folder, a hub id or an object)
    Cache, Generation         what runs return
    Edit, zero, set_to, scale, add, patch   interventions
    tiny_pipeline             the embedded trained model as a diffusers pipeline (module: dit_lens.tiny)

Names are imported on first use, so ``dit_lens.tiny`` (training, data, evaluator) works without nnsight.
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {"Lens": ".lens", "Cache": ".lens", "Generation": ".lens",
         "Edit": ".edits", "zero": ".edits", "set_to": ".edits", "scale": ".edits", "add": ".edits",
         "patch": ".edits"}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dit_lens' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


def tiny_pipeline(weights=True):
    """The embedded tiny text-to-image DiT (a diffusers pipeline, weights shipped in the package)."""
    from .tiny.pipeline import build

    return build(weights)


__all__ = ["Lens", "Cache", "Generation", "Edit", "zero", "set_to", "scale", "add", "patch", "tiny_pipeline", "__version__"]
