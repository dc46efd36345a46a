"""Where transport's source activations come from: a live prompt run, source images, or a store.

    live_source(generate, names, keep, with_pooled)     {(name, step): [(cfg, value)]}, images, pooled embeddings
    image_source(lens, images, prompts, seeds, names, num_inference_steps, ...)   activations of source images
    store_source(lens, url, ...)                        activations and images of a store of the same model
    load_images(images, n)                              uint8 (n, H, W, 3) from an array or image files
    reused(runs, kind, key, kw)                         a kept generation of the same inputs, or None

A source value is kept per CFG branch as ``(cfg, tensor)``: ``cfg`` is the edit branch the value patches (None:
every row of the call, as recorded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import RecipeError

__all__ = ["live_source", "image_source", "store_source", "load_images", "reused"]


def live_source(generate, names, keep, with_pooled: bool):
    """Run the source (``generate(cache=, on_step=)``); per (name, step) its value in every CFG branch the run
    recorded, the images, and (``with_pooled``) the pooled text embedding of each branch."""
    pooled: dict = {}

    def read_pooled(run, step):
        if step.index == 0:
            pooled[step.branch] = run.pooled().detach().clone()

    src = generate(cache=names, on_step=read_pooled if with_pooled else None)
    values = {(n, s): [(None if b == "batch" else b, src.cache[n, s, b]) for b in src.cache.branches]
              for n in names for s in keep}
    from .disrupt import as_outputs

    return values, as_outputs(src.images), pooled


def image_source(lens, latents, prompts, seeds, names, num_inference_steps: int, **kwargs) -> dict:
    """Activations of source images, run under ``prompts`` (or the ``prompt_embeds`` in ``kwargs``): at every step
    the transformer's image input is replaced by the image noised to that step's sigma with the flow-matching forward
    process, x_s = (1 - s) x0 + s eps, and the named activations are read. ``latents`` is (x0, eps) from the model
    spec's ``image_latents``."""
    from .. import _samples

    x0, eps = latents
    n = x0.shape[0]
    with lens.trace(prompts, num_inference_steps=num_inference_steps, generator=_samples.generators(seeds),
                    **kwargs) as tracer:
        run = tracer.dit
        saved = dict().save()
        for step in run.steps():
            args, kw = lens.model.transformer.inputs
            sigma = float(step.timestep.flatten()[0])
            noised = (1 - sigma) * x0 + sigma * eps
            rows = kw["hidden_states"].shape[0]
            kw = dict(kw, hidden_states=torch.cat([noised] * (rows // n)).to(kw["hidden_states"].dtype))
            lens.model.transformer.inputs = (args, kw)
            for name in names:
                saved[name, step.index] = run.read(name).detach().to("cpu", copy=True)
    return {key: [(None, v)] for key, v in dict(saved).items()}


def store_source(lens, url, storage_options, sources, seeds, names, steps):
    """Source activations {(name, step): [(cfg, (samples, tokens, channels))]} and images from a store recorded
    from the same model; its recorded CFG branch is the one patched."""
    from ..store import open_store

    ds = open_store(str(url), **(storage_options or {}))
    if ds.attrs.get("config_hash") != lens.config_hash:
        raise RecipeError(f"source store {url} was recorded from another model or config "
                          f"({ds.attrs.get('model_class')}, hash {ds.attrs.get('config_hash')})")
    missing = [n for n in names if n not in ds.dit.names]
    if missing:
        raise RecipeError(f"source store {url} lacks {missing[:4]}; it holds {ds.dit.names[:6]}")
    recorded = set(int(s) for s in ds.step.values)
    if not set(steps) <= recorded:
        raise RecipeError(f"source store {url} holds steps {sorted(recorded)}, transport needs {sorted(steps)}")
    for n in names:
        if ds.sizes["img_token"] != lens.shape(n)[0]:
            raise RecipeError(f"source store {url} has {ds.sizes['img_token']} image tokens, the model "
                              f"{lens.shape(n)[0]}: another resolution")
    index = {(str(p), int(s)): i for i, (p, s) in enumerate(zip(ds.prompt.values, ds.seed.values))}
    rows = []
    for p, s in zip(sources, seeds):
        if (p, s) not in index:
            raise RecipeError(f"source store {url} has no sample for prompt {p!r} with seed {s}")
        rows.append(index[(p, s)])
    if not bool(ds.complete.isel(sample=rows).all()):
        raise RecipeError(f"source store {url} has incomplete samples among {rows}: resume its recording first")
    cfg = ds.attrs.get("cfg", "cond")
    values = {}
    for n in names:
        arr = ds.dit.sel(n).isel(sample=rows).sel(step=steps).values  # (samples, steps, tokens, channels)
        for j, s in enumerate(steps):
            values[n, s] = [(cfg, torch.from_numpy(np.ascontiguousarray(arr[:, j])))]
    images = ds.image.isel(sample=rows).values if "image" in ds else None
    return values, images


def load_images(images, n_pairs: int) -> np.ndarray:
    """uint8 (pairs, H, W, 3) from an array or from image files (paths, relative to the working directory)."""
    if len(images) and isinstance(images[0], (str, Path)):
        from PIL import Image

        missing = [str(p) for p in images if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"source_images: no such files {missing[:4]}")
        images = [np.asarray(Image.open(p).convert("RGB")) for p in images]
        if len({im.shape for im in images}) != 1:
            raise RecipeError(f"source_images differ in size: {sorted({im.shape for im in images})}")
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[0] != n_pairs or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise RecipeError(f"source_images must be uint8 (pairs, H, W, 3); got {arr.dtype} {arr.shape} for "
                          f"{n_pairs} pairs")
    return arr


def reused(runs: dict, kind: str, key: tuple, kw: dict):
    """The kept ``kind`` generation if it was made from ``key`` and the same pipeline arguments (tensors and arrays
    compared by identity: a different embedding is a different run), else None."""
    if kind not in runs:
        return None
    old_key, old_kw, value = runs[kind]
    same = old_key == key and old_kw.keys() == kw.keys() and all(
        old_kw[a] is kw[a] or (_plain(kw[a]) and old_kw[a] == kw[a]) for a in kw)
    return value if same else None


def _plain(v) -> bool:
    return isinstance(v, (bool, int, float, str, type(None))) or (
        isinstance(v, (list, tuple)) and all(_plain(x) for x in v))
