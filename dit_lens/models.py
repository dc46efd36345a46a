"""Model specs: models dit-lens builds by name with no hub access, and what recipes need to know of a model.

    ModelSpec            a named model: how to build its pipeline, its validation call, its default scorer, how
                         to turn images into its transformer's input (image-conditioned transport) and its demo
    register(name, path, pipeline_class)   a spec given by import path ("module:ATTR"), imported on first use
    names()              the registered names
    get(name)            the registered spec of that name (``Lens("tiny")`` resolves through it)
    for_pipeline(cls)    the spec whose pipelines have this class name (a pipeline object or a store's
                         ``pipeline_class``), or None; imports only a matching spec
    config_hash(pipeline)  which model a pipeline is: a hash of its class and its transformer's config

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

__all__ = ["ModelSpec", "register", "names", "get", "for_pipeline", "config_hash"]


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


def config_hash(pipeline) -> str:
    """16 hex digits naming a model: its pipeline class and its transformer's config (not its weights)."""
    cfg = dict(pipeline.transformer.config)
    blob = json.dumps({"pipeline": type(pipeline).__name__, "transformer": cfg}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


register("tiny", "dit_lens.tiny.spec:SPEC", "TinyShapesPipeline")
