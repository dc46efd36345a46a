"""The one place dit-lens touches nnsight internals (with ``dit_lens.remote``, whose DiT subclasses nnsight's
``DiffusionModel`` for its remote key).

    wrap_pipeline(pipeline, key)   nnsight 0.8's ``DiffusionModel`` treats its first argument as a hub id or folder;
                              an in-memory pipeline goes in through its ``_PipelineModule`` view, a private class, as
                              a ``dit_lens.remote.DiT`` whose remote key is ``key`` (None: it cannot run remotely)
    load(hub_id, ...)         a DiffusionModel loaded (and dispatched) by nnsight from the hub
    reinstrument(model)       put nnsight's forward back on modules whose forward another library replaced since
                              nnsight wrapped them: diffusers' model CPU offload removes and re-adds accelerate's
                              hooks after every pipeline call, and nnsight 0.8.1 then sees none of that module's calls
                              (an OutOfOrderError); returns how many were put back
    ship_by_value()           register the dit-lens modules whose code runs inside a trace (TRACE_MODULES) for
                              serialization by value, so a remote server needs nnsight, torch and diffusers only
"""

from __future__ import annotations

__all__ = ["wrap_pipeline", "load", "reinstrument", "ship_by_value", "TRACE_MODULES"]

# every dit-lens module whose functions, classes or objects a traced block uses: the run's step logic and stream
# splits, edit records, errors, index checks, per-channel statistics. They import nothing but torch, numpy (both on
# every nnsight server) and each other.
TRACE_MODULES = ("dit_lens._run", "dit_lens._streams", "dit_lens.edits", "dit_lens.errors", "dit_lens._checks",
                 "dit_lens._stats", "dit_lens._stats_kernel", "dit_lens._collect")


def wrap_pipeline(pipeline, key: dict | None = None):
    from .remote import DiT

    return DiT.wrap(pipeline, key)


def load(path_or_id: str, **kwargs):
    from nnsight.modeling.diffusion import DiffusionModel

    model = DiffusionModel(path_or_id, dispatch=True, **kwargs)
    return model


def reinstrument(model) -> int:
    from nnsight.intervention import source

    count = 0
    for module in model._module.modules():
        state = module.__dict__.get(source.STATE)
        if state is not None and not isinstance(module.__dict__.get("forward"), source.Controller):
            module.__dict__["forward"] = source.Controller(module, state)
            count += 1
    return count


def ship_by_value() -> None:
    import importlib

    import nnsight

    for name in TRACE_MODULES:
        nnsight.register(importlib.import_module(name))
