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
    def _remoteable_from_model_key(cls, model_key: str, dispatch: bool = False, dtype=None, device=None,
                                   device_map=None, max_memory=None, **kwargs) -> "DiT":
        """The model a key names. ``dispatch=True`` (what a server's model actor passes, with its ``dtype`` and
        ``device`` or ``device_map``) loads the weights; without it a folder is built from its configs on the meta
        device, as nnsight builds models lazily (a sandbox runner needs only the module tree), and a spec is built
        as it is (model specs are small). A ``dtype`` other than the key's is refused: the key is what clients
        trace against."""
        data = json.loads(model_key)
        _check_dtype(data, dtype)
        if not dispatch and "folder" in data:
            return cls.wrap(DiffusionModel(data["folder"]).pipeline, data)
        placement = {"device_map": device_map, "max_memory": max_memory} if device_map is not None else {}
        pipeline = _build(data, **placement)
        if device is not None and device_map is None:
            pipeline = pipeline.to(f"cuda:{device}" if isinstance(device, int) else device)
        return cls.wrap(pipeline, data)

    @classmethod
    def _remoteable_estimate_bytes(cls, model_key: str, dtype: str) -> int:
        """Bytes of the key's weights (parameters and buffers) as loaded, in the key's dtype, counted on a meta
        build: nothing is loaded."""
        import torch

        data = json.loads(model_key)
        itemsize = getattr(torch, data.get("torch_dtype") or "float32").itemsize
        pipeline = cls._remoteable_from_model_key(model_key).pipeline
        return sum(t.numel() * (itemsize if t.is_floating_point() else t.element_size())
                   for c in pipeline.components.values() if isinstance(c, torch.nn.Module)
                   for t in (*c.parameters(), *c.buffers()))


    @classmethod
    def _remoteable_describe_checkpoint(cls, model_key: str, dtype: str):
        """What a server's placement needs (its size), from the key alone: nnsight's ``DiffusionModel`` reads a hub
        config here, which a DiT key has none of."""
        from nnsight.modeling.mixins.remotable import CheckpointInfo

        return CheckpointInfo(size_bytes=cls._remoteable_estimate_bytes(model_key, dtype))

    @classmethod
    def _remoteable_max_tp_size(cls, model_key: str):
        """None: a pipeline is placed whole (no tensor parallelism)."""
        return None


def _check_dtype(data: dict, dtype) -> None:
    if dtype is None:
        return
    asked, keyed = str(dtype).removeprefix("torch."), data.get("torch_dtype") or "float32"
    if asked != keyed:
        raise ArgumentError(f"the deployment asks for dtype {asked}, but the key {json.dumps(data, sort_keys=True)} "
                            f"loads the model in {keyed}: deploy it with dtype {keyed!r}, or serve a key with "
                            f"\"torch_dtype\": \"{asked}\" (model_key(..., torch_dtype='{asked}'))")


def _build(data: dict, **placement):
    """The pipeline a key names: a model spec, or a pipeline folder loaded from disk only."""
    import torch

    dtype = getattr(torch, data["torch_dtype"]) if data.get("torch_dtype") else None
    if "spec" in data:
        if placement:
            raise ArgumentError(f"model spec {data['spec']!r} loads on one device: deploy it with a device, not a "
                                f"device_map")
        from .models import get

        pipeline = get(data["spec"]).build()
        return pipeline if dtype is None else pipeline.to(dtype)
    if "folder" in data:
        return _from_folder(data["folder"], **({} if dtype is None else {"torch_dtype": dtype}),
                            **{name: None for name in data.get("absent", ())}, **placement)
    raise ArgumentError(f"a DiT model key holds 'spec' or 'folder', got {sorted(data)}")


def _from_folder(folder: str, **kwargs):
    from diffusers import DiffusionPipeline

    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        raise ArgumentError(f"{folder!r} is not a diffusers pipeline folder on this machine")
    return DiffusionPipeline.from_pretrained(folder, local_files_only=True, **kwargs)
