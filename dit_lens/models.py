"""Model specs: models dit-lens builds by name with no hub access, and what recipes need to know of a model.

    ModelSpec            a named model: how to build its pipeline, its validation call, its default scorer, how
                         to turn images into its transformer's input (image-conditioned transport) and its demo
    register(name, path, pipeline_class)   a spec given by import path ("module:ATTR"), imported on first use
    names()              the registered names
    get(name)            the registered spec of that name (``Lens("tiny")`` resolves through it)
    for_pipeline(cls)    the spec whose pipelines have this class name (a pipeline object or a store's
                         ``pipeline_class``), or None; imports only a matching spec
    config_hash(pipeline)  which model a pipeline is: a hash of its class and its transformer's config
    weights_hash(module)   which weights: a hash of a few values sampled from every parameter (cheap at any size)
    scheduler_hash(pipeline)  which sampler: a hash of the scheduler's class and config (None without one)

Specs are registered by import path so that nothing outside a model's own package imports it: the embedded model
(``dit_lens.tiny``) is one registered spec, not a dependency of the lens, the store or the recipes.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from typing import Callable

from .errors import ArgumentError

__all__ = ["ModelSpec", "register", "names", "get", "for_pipeline", "config_hash", "weights_hash", "scheduler_hash"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    pipeline_class: str  # class name of the pipelines this spec describes
    build: Callable  # (**kwargs) -> a diffusers pipeline, with no network
    example: dict = field(default_factory=dict)  # the one-step call the lens validates the model with
    scorer: Callable | None = None  # () -> a dit_lens.scoring.Scorer: the recipes' default judge of its images
    # (pipeline, uint8 images (n, H, W, 3), seeds) -> (x0, noise): images and seeded noise as the transformer's
    # image input (rows, tokens, channels), for image-conditioned sources
    image_latents: Callable | None = None
    demo: Callable | None = None  # (out, **options) -> report dict: what ``dit-lens demo --model NAME`` runs


_REGISTRY: dict[str, tuple[str, str]] = {}  # name -> (import path "module:ATTR", pipeline class name)
_LOADED: dict[str, ModelSpec] = {}


def register(name: str, path: str, pipeline_class: str) -> None:
    """Register the spec at ``path`` ("package.module:ATTR") under ``name``; it is imported on first use."""
    _REGISTRY[name] = (path, pipeline_class)
    _LOADED.pop(name, None)


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise ArgumentError(f"no model spec named {name!r}; registered: {sorted(_REGISTRY)}")
    if name not in _LOADED:
        module, attr = _REGISTRY[name][0].split(":")
        spec = getattr(importlib.import_module(module), attr)
        if spec.name != name:
            raise ArgumentError(f"{_REGISTRY[name][0]} is the spec of {spec.name!r}, registered as {name!r}")
        _LOADED[name] = spec
    return _LOADED[name]


def for_pipeline(pipeline_class) -> ModelSpec | None:
    """The spec of pipelines of this class (a class name, or a pipeline object), or None."""
    cls = pipeline_class if isinstance(pipeline_class, str) else type(pipeline_class).__name__
    for name, (_, klass) in _REGISTRY.items():
        if klass == cls:
            return get(name)
    return None


def _config(config) -> dict:
    """A diffusers config as identity: without where it was loaded from (``_name_or_path`` differs between machines),
    with the set of defaulted keys in a fixed order (diffusers stores it in set order, which varies between
    processes)."""
    return {k: sorted(v) if k == "_use_default_values" else v for k, v in dict(config).items()
            if k != "_name_or_path"}


def config_hash(pipeline) -> str:
    """16 hex digits naming a model: its pipeline class and its transformer's config (not its weights)."""
    blob = json.dumps({"pipeline": type(pipeline).__name__, "transformer": _config(pipeline.transformer.config)},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def weights_hash(module, per_tensor: int = 16) -> str:
    """16 hex digits naming a module's weights: ``per_tensor`` evenly spaced values of every parameter (as float32,
    by name), so two checkpoints of one config differ while hashing a 12B transformer takes a fraction of a second.
    A parameter whose values cannot be read as a plain tensor (some quantized layouts) counts by shape and dtype."""
    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            h.update(f"{name}{tuple(p.shape)}{p.dtype}".encode())
            try:
                flat = p.detach().reshape(-1)
                idx = torch.linspace(0, flat.numel() - 1, min(per_tensor, flat.numel())).long().to(flat.device)
                h.update(flat[idx].float().cpu().numpy().tobytes())
            except (RuntimeError, TypeError, NotImplementedError):
                continue
    return h.hexdigest()[:16]


def scheduler_hash(pipeline) -> str | None:
    scheduler = getattr(pipeline, "scheduler", None)
    if scheduler is None:
        return None
    blob = json.dumps({"class": type(scheduler).__name__, "config": _config(scheduler.config)}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


register("tiny", "dit_lens.tiny.spec:SPEC", "TinyShapesPipeline")
