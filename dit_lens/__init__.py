"""dit-lens: read and edit Diffusion Transformer hidden states by canonical name, through nnsight.

Public surface (the data flows one way: model -> lens -> recorder -> store -> recipes -> report):
    Lens, Generation, Cache               wrap a diffusers DiT pipeline; what its runs return
    Edit, zero, set_to, scale, add, patch interventions
    record, record_distributed            stream activations or per-channel statistics into a store
    open_store, verify                    read a store (lazily, ``ds.dit`` accessor); check every chunk
    channel_reduce                        per-channel statistics over a whole store with Dask
    detect, disrupt, cluster, transport   the recipes (their results: Detection, Disruption, Clustering, Transport)
    Scorer, ModelSpec                     what a model contributes to the recipes (dit_lens.scoring, .models)
    tiny_pipeline                         the embedded trained model as a diffusers pipeline
    DitLensError and its subclasses       errors (dit_lens.errors)

Modules are imported on first use of a name, so ``import dit_lens`` is light.
"""

from importlib import import_module

from .errors import (AdapterMismatch, ArgumentError, CacheKeyError, DitLensError, OutOfRangeError, RecipeError,
                     RunError, StoreError, StoreTimeoutError, UnknownNameError, UnsupportedModelError)

__version__ = "0.1.0"

# bound now, not on first use: ``dit_lens.record`` is the function even after ``import dit_lens.record`` (the
# module imports nothing heavy at import time)
from .record import record, record_distributed  # noqa: E402

_LAZY = {"Lens": ".lens", "Generation": ".lens", "Cache": ".cache",
         "Edit": ".edits", "zero": ".edits", "set_to": ".edits", "scale": ".edits", "add": ".edits",
         "patch": ".edits", "open_store": ".store", "verify": ".store", "channel_reduce": ".reduce",
         "detect": ".recipes", "disrupt": ".recipes", "cluster": ".recipes", "transport": ".recipes",
         "Detection": ".recipes", "Disruption": ".recipes", "Clustering": ".recipes", "Transport": ".recipes",
         "Scorer": ".scoring", "ModelSpec": ".models"}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dit_lens' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


def tiny_pipeline(weights=True):
    """The embedded tiny text-to-image DiT (a diffusers pipeline, weights shipped in the package): the model spec
    registered as "tiny" (``weights=None`` gives random weights of the same config)."""
    from .models import get

    return get("tiny").build(weights)


__all__ = ["Lens", "Generation", "Cache", "Edit", "zero", "set_to", "scale", "add", "patch", "record",
           "record_distributed", "open_store", "verify", "channel_reduce", "detect", "disrupt", "cluster",
           "transport", "Detection", "Disruption", "Clustering", "Transport", "Scorer", "ModelSpec",
           "tiny_pipeline", "DitLensError", "UnknownNameError", "CacheKeyError", "UnsupportedModelError",
           "AdapterMismatch", "ArgumentError", "OutOfRangeError", "RunError", "StoreError", "StoreTimeoutError",
           "RecipeError", "__version__"]
