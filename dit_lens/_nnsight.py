"""The one place dit-lens touches nnsight internals: wrapping an in-memory diffusers pipeline.

nnsight 0.8's ``DiffusionModel`` treats its first argument as a hub id or folder; an in-memory pipeline goes in
through its ``_PipelineModule`` view, a private class.
"""

from __future__ import annotations

__all__ = ["wrap_pipeline", "load"]


def wrap_pipeline(pipeline):
    from nnsight.modeling.diffusion import DiffusionModel, _PipelineModule

    model = DiffusionModel(_PipelineModule(pipeline))
    model.pipeline = pipeline  # what DiffusionModel sets when it loads a pipeline itself (used by remote=)
    return model


def load(path_or_id: str, **kwargs):
    from nnsight.modeling.diffusion import DiffusionModel

    model = DiffusionModel(path_or_id, dispatch=True, **kwargs)
    return model
