"""The one place dit-lens touches nnsight internals.

    wrap_pipeline(pipeline)   nnsight 0.8's ``DiffusionModel`` treats its first argument as a hub id or folder; an
                              in-memory pipeline goes in through its ``_PipelineModule`` view, a private class
    load(path_or_id, ...)     a DiffusionModel loaded (and dispatched) by nnsight
    reinstrument(model)       put nnsight's forward back on modules whose forward another library replaced since
                              nnsight wrapped them: diffusers' model CPU offload removes and re-adds accelerate's
                              hooks after every pipeline call, and nnsight 0.8.1 then sees none of that module's calls
                              (an OutOfOrderError); returns how many were put back
"""

from __future__ import annotations

__all__ = ["wrap_pipeline", "load", "reinstrument"]


def wrap_pipeline(pipeline):
    from nnsight.modeling.diffusion import DiffusionModel, _PipelineModule

    model = DiffusionModel(_PipelineModule(pipeline))
    model.pipeline = pipeline  # what DiffusionModel sets when it loads a pipeline itself (used by remote=)
    return model


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
