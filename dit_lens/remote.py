"""Serving DiTs from your own nnsight server (NDIF) with no hub: a model class whose remote key names what dit-lens
can rebuild on the server.

    DiT                       nnsight's ``DiffusionModel`` with a hub-free remote key: a dit-lens model spec
                              (``dit_lens.remote.DiT:{"spec": "tiny"}``) or a pipeline folder on the server
                              (``dit_lens.remote.DiT:{"folder": "/models/flux-dev"}``, optionally with a dtype and
                              components left out: ``"absent": ["vae"]``)
    DiT.wrap(pipeline, key)   a DiT over a pipeline already in memory (key None: runs here, cannot run remotely)
    load_folder(path, ...)    a pipeline folder loaded from disk only, as a DiT keyed by its path
    model_key(spec=, folder=, torch_dtype=, absent=)   the key a server deployment is configured with

``Lens("tiny")`` and ``Lens("/path/to/folder")`` wrap their pipelines this way, so ``remote=True`` sends a key the
server resolves with ``DiT._remoteable_from_model_key``; the server needs dit-lens installed to resolve such keys
(requests themselves need only nnsight, torch and diffusers). docs/remote.md walks through serving one.
"""

from __future__ import annotations

import json
import os

from nnsight.modeling.diffusion import DiffusionModel, _PipelineModule

from .errors import ArgumentError

__all__ = ["DiT", "load_folder", "model_key"]


def model_key(spec: str | None = None, folder: str | None = None, torch_dtype: str | None = None,
              absent=()) -> str:
    """``"dit_lens.remote.DiT:{...}"`` for a model spec or a pipeline folder (as an absolute path on the server),
    loaded in ``torch_dtype``, without the components named in ``absent``."""
    return f"dit_lens.remote.DiT:{json.dumps(_key(spec, folder, torch_dtype, absent), sort_keys=True)}"


def _key(spec=None, folder=None, torch_dtype=None, absent=()) -> dict:
    if (spec is None) == (folder is None):
        raise ArgumentError("a DiT model key names one of spec= (e.g. 'tiny') or folder= (a save_pretrained folder)")
    data = {"spec": spec} if spec is not None else {"folder": os.path.abspath(folder)}
    if torch_dtype is not None:
        data["torch_dtype"] = str(torch_dtype).removeprefix("torch.")
    if absent:
        data["absent"] = sorted(absent)
    return data


def load_folder(path: str, **kwargs) -> "DiT":
    """A pipeline folder loaded from disk only (``kwargs`` go to ``from_pretrained``), keyed by its path, its dtype
    and the components passed as None; with any other loading argument it gets no key (a server could not rebuild
    it the same way)."""
    absent = [k for k, v in kwargs.items() if v is None]  # components left out (vae=None, ...)
    extra = set(kwargs) - {"torch_dtype"} - set(absent)
    key = None if extra else _key(folder=path, torch_dtype=kwargs.get("torch_dtype"), absent=absent)
    return DiT.wrap(_from_folder(path, **kwargs), key)


class DiT(DiffusionModel):
    """A diffusion pipeline under nnsight whose remote key dit-lens rebuilds without the hub."""

    @classmethod
    def wrap(cls, pipeline, key: dict | None = None) -> "DiT":
        model = cls(_PipelineModule(pipeline))
        model.pipeline = pipeline  # what DiffusionModel sets when it loads a pipeline itself
        model.__dict__["_dit_key"] = key
        return model

    def __reduce_ex__(self, protocol):
        """In a request this model travels as nnsight's own DiffusionModel: the server needs no dit-lens to read it
        (the key, not the class, is what a server resolves)."""
        reduced = super().__reduce_ex__(protocol)
        return (object.__new__, (DiffusionModel,), *reduced[2:])

    def _remoteable_model_key(self) -> str:
        key = self.__dict__.get("_dit_key")
        if key is None:
            raise ArgumentError("this pipeline was built in memory, so a server cannot rebuild it: load it by spec "
                                "name or pipeline folder (Lens('tiny'), Lens('/path/to/folder')) to run remotely")
        return json.dumps(key, sort_keys=True)

    @classmethod
    def _remoteable_from_model_key(cls, model_key: str, **kwargs) -> "DiT":
        data = json.loads(model_key)
        return cls.wrap(_build(data), data)

    @classmethod
    def _remoteable_estimate_bytes(cls, model_key: str, dtype: str) -> int:
        pipeline = _build(json.loads(model_key))
        return sum(p.numel() * p.element_size() for c in pipeline.components.values()
                   if hasattr(c, "parameters") for p in c.parameters())


def _build(data: dict):
    """The pipeline a key names: a model spec, or a pipeline folder loaded from disk only."""
    import torch

    dtype = getattr(torch, data["torch_dtype"]) if data.get("torch_dtype") else None
    if "spec" in data:
        from .models import get

        pipeline = get(data["spec"]).build()
        return pipeline if dtype is None else pipeline.to(dtype)
    if "folder" in data:
        return _from_folder(data["folder"], **({} if dtype is None else {"torch_dtype": dtype}),
                            **{name: None for name in data.get("absent", ())})
    raise ArgumentError(f"a DiT model key holds 'spec' or 'folder', got {sorted(data)}")


def _from_folder(folder: str, **kwargs):
    from diffusers import DiffusionPipeline

    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        raise ArgumentError(f"{folder!r} is not a diffusers pipeline folder on this machine")
    return DiffusionPipeline.from_pretrained(folder, local_files_only=True, **kwargs)
