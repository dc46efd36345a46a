"""Transport: inject a source trajectory's activations into a target trajectory under a channel mask (the massive
channels) x a spatial mask, with strength alpha — text-conditioned semantic transport without training.

    transport(lens, pairs=[(source_prompt, target_prompt), ...], seeds=..., alphas=..., ...) -> Transport
        the source runs with the same seed as the target; at every chosen step and name the target's massive
        channels (``channel_set="massive"``, the top ``k`` by detection's ranking; controls: ``"random"``, k
        channels drawn uniformly with ``random_seed`` from those outside the detected massive set, as disrupt and
        cluster draw theirs, or ``"low"``, the k lowest) move ``alpha`` of the way to the source's
        (``spatial="all"`` tokens, or ``"subject"``: the tokens of the source image's subject, embedded model
        only). On the embedded model each image is scored: success =
        the subject takes the source's colour while the background stays the target's and the subject stays where
        the target put it (mask IoU >= 0.5). Compared with pixel blending of the two images at the same alpha.
        Offline: ``source_store`` (a store recorded from the same model with the source prompts and seeds) gives
        the source trajectory instead of a live run; its recorded CFG branch is patched. Image-conditioned:
        ``source_images`` (one uint8 image per pair, or one image file path per pair) are noised to each step's
        sigma and run through the transformer under the target prompt (``image_source``); each pair's first
        prompt then only names the image's content for scoring.
        ``pooled_alpha`` > 0 (Flux, SD3: models whose blocks are modulated by a pooled text embedding) also moves
        the target's pooled embedding that fraction of the way to the source's at the chosen steps — the
        conditioning path that bypasses the residual stream; ``k`` may be 0 to transport it alone (live sources).
        ``runs``: a dict passed to several calls with the same pairs, seeds, names, steps and pipeline arguments
        keeps their live source and target generations (the latest of each), so controls (another channel set,
        k, alpha or pooled_alpha) reuse them instead of generating them again; ``dit-lens run`` shares one
        across a sweep.
    Transport.figure(out)   alpha sweep grid (rows: pairs; columns: target, alphas..., source)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class Transport:
    success: dict  # alpha -> fraction of (pair, seed) transported
    blend_success: dict  # alpha -> the same score for pixel blending
    params: dict
    images: dict = field(repr=False, default_factory=dict)  # "source" | "target" | alpha -> (n, H, W, 3)
    channels: dict = field(default_factory=dict)  # name -> the channels patched
    massive: dict = field(default_factory=dict)  # name -> the detected massive channels

    def to_dict(self) -> dict:
        return {"params": self.params, "success": self.success, "pixel_blend_success": self.blend_success,
                "channels": self.channels, "massive": self.massive}

    def figure(self, out, n: int = 4) -> Path:
        from ._figures import pyplot, save

        plt = pyplot()

        alphas = [a for a in self.images if a not in ("source", "target")]
        cols = ["target", *alphas, "source"]
        n = min(n, len(self.images["target"]))
        fig, axes = plt.subplots(n, len(cols), figsize=(1.3 * len(cols), 1.4 * n), squeeze=False)
        for i in range(n):
            for j, c in enumerate(cols):
                axes[i, j].imshow(self.images[c][i], interpolation="nearest")
                axes[i, j].set_xticks([])
                axes[i, j].set_yticks([])
                if i == 0:
                    axes[i, j].set_title(c if isinstance(c, str) else f"alpha {c}", fontsize=7)
        p = self.params
        what = f"{p['k']} {p['channel_set']} channels" if p.get("k") else "no channels"
        if p.get("pooled_alpha"):
            what += f" + pooled embedding (alpha {p['pooled_alpha']})"
        source = "image" if p.get("source_images") else "prompt"
        return save(fig, out, "transport_sweep.png", f"transport of {what}: source {source} -> target, same seed")


def image_source(lens, images, prompts, seeds, names, num_inference_steps: int, **kwargs) -> dict:
    """Activations of source *images*: at every step the transformer's image input is replaced by the image noised
    to that step's sigma with the flow-matching forward process, x_s = (1 - s) x0 + s eps (seeded eps), and the
    named activations are read. Embedded model only (it knows the image packing)."""
    from ..tiny.pipeline import pack

    if type(lens.pipeline).__name__ != "TinyShapesPipeline":
        raise ValueError("image-conditioned sources need the embedded model's packing; pass source prompts instead")
    x0 = torch.from_numpy(np.asarray(images)).float().permute(0, 3, 1, 2) / 127.5 - 1.0
    eps = torch.stack([torch.randn(x0.shape[1:], generator=torch.Generator().manual_seed(int(s))) for s in seeds])
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    n = len(prompts)
    with lens.trace(list(prompts), num_inference_steps=num_inference_steps, generator=gens, **kwargs) as tracer:
        run = tracer.dit
        saved = dict().save()
        for step in run.steps():
            args, kw = lens.model.transformer.inputs
            sigma = float(step.timestep.flatten()[0])
            noised = pack((1 - sigma) * x0 + sigma * eps)
            rows = kw["hidden_states"].shape[0]
            kw = dict(kw, hidden_states=torch.cat([noised] * (rows // n)).to(kw["hidden_states"].dtype))
            lens.model.transformer.inputs = (args, kw)
            for name in names:
                saved[name, step.index] = run.read(name).detach().to("cpu", copy=True)
    return dict(saved)


def _from_store(lens, url, storage_options, sources, seeds, names, steps):
    """Source activations {(name, step): (samples, tokens, channels)} and images from a store of this model."""
    from ..record import config_hash
    from ..store import open_store

    ds = open_store(str(url), **(storage_options or {}))
    if ds.attrs.get("config_hash") != config_hash(lens.pipeline):
        raise ValueError(f"source store {url} was recorded from another model or config "
                         f"({ds.attrs.get('model_class')}, hash {ds.attrs.get('config_hash')})")
    missing = [n for n in names if n not in ds.dit.names]
    if missing:
        raise ValueError(f"source store {url} lacks {missing[:4]}; it holds {ds.dit.names[:6]}")
    recorded = set(int(s) for s in ds.step.values)
    if not set(steps) <= recorded:
        raise ValueError(f"source store {url} holds steps {sorted(recorded)}, transport needs {sorted(steps)}")
    for n in names:
        if ds.sizes["img_token"] != lens.shape(n)[0]:
            raise ValueError(f"source store {url} has {ds.sizes['img_token']} image tokens, the model "
                             f"{lens.shape(n)[0]}: another resolution")
    index = {(str(p), int(s)): i for i, (p, s) in enumerate(zip(ds.prompt.values, ds.seed.values))}
    rows = []
    for p, s in zip(sources, seeds):
        if (p, s) not in index:
            raise ValueError(f"source store {url} has no sample for prompt {p!r} with seed {s}")
        rows.append(index[(p, s)])
    if not bool(ds.complete.isel(sample=rows).all()):
        raise ValueError(f"source store {url} has incomplete samples among {rows}: resume its recording first")
    values = {}
    for n in names:
        arr = ds.dit.sel(n).isel(sample=rows).sel(step=steps).values  # (samples, steps, tokens, channels)
        for j, s in enumerate(steps):
            values[n, s] = torch.from_numpy(np.ascontiguousarray(arr[:, j]))
    images = ds.image.isel(sample=rows).values if "image" in ds else None
    return values, images, ds.attrs.get("cfg", "cond")


def _load_images(images, n_pairs: int, lens) -> np.ndarray:
    """uint8 (pairs, H, W, 3) from an array or from image files (paths, relative to the working directory)."""
    if len(images) and isinstance(images[0], (str, Path)):
        from PIL import Image

        missing = [str(p) for p in images if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"source_images: no such files {missing[:4]}")
        images = [np.asarray(Image.open(p).convert("RGB")) for p in images]
        if len({im.shape for im in images}) != 1:
            raise ValueError(f"source_images differ in size: {sorted({im.shape for im in images})}")
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[0] != n_pairs or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"source_images must be uint8 (pairs, H, W, 3); got {arr.dtype} {arr.shape} for "
                         f"{n_pairs} pairs")
    if type(lens.pipeline).__name__ == "TinyShapesPipeline":
        from ..tiny.data import SIZE

        if arr.shape[1:3] != (SIZE, SIZE):
            raise ValueError(f"source_images are {arr.shape[1]}x{arr.shape[2]}; the embedded model draws "
                             f"{SIZE}x{SIZE}")
    return arr


def _moved(img, target_prompt, source_prompt, target_mask) -> bool:
    from ..tiny.evaluate import analyse, parse_prompt

    a = analyse(img)
    src_colour, _, _ = parse_prompt(source_prompt)
    _, _, tgt_bg = parse_prompt(target_prompt)
    if a.colour != src_colour or a.background != tgt_bg:
        return False
    union = (a.mask | target_mask).sum()
    return bool(union) and (a.mask & target_mask).sum() / union >= 0.5


def _reused(runs: dict, kind: str, key: tuple, kw: dict):
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


def transport(lens, *, pairs, seeds=(0,), names: str = "*.*.img.resid_post", k: int = 4,
              alphas=(0.25, 0.5, 0.75, 1.0), steps=None, spatial: str = "all", num_inference_steps: int = 20,
              detection=None, source_store=None, storage_options: dict | None = None, source_images=None,
              channel_set: str = "massive", random_seed: int = 0, pooled_alpha: float = 0.0,
              pipeline: dict | None = None, runs: dict | None = None) -> Transport:
    from ..edits import patch
    from ..tiny.evaluate import analyse
    from .detect import detect

    kw = dict(pipeline or {})
    pairs = [tuple(p) for p in pairs]
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError("pairs must be a non-empty list of (source_prompt, target_prompt)")
    if channel_set not in ("massive", "random", "low"):
        raise ValueError(f"channel_set={channel_set!r}: expected 'massive', 'random' or 'low'")
    if spatial not in ("all", "subject"):
        raise ValueError(f"spatial={spatial!r}: expected 'all' or 'subject'")
    bad = [a for a in alphas if not 0.0 <= float(a) <= 1.0]
    if bad:
        raise ValueError(f"alphas {bad} outside [0, 1]")
    if steps is not None and not all(0 <= s < num_inference_steps for s in steps):
        raise IndexError(f"steps {list(steps)} out of range 0..{num_inference_steps - 1}")
    chosen = lens.names(names)
    width = lens.shape(chosen[0])[1]
    if not (0 if pooled_alpha else 1) <= k <= width:
        raise ValueError(f"k={k} outside {0 if pooled_alpha else 1}..{width} (the channels of {chosen[0]})")
    if not 0.0 <= float(pooled_alpha) <= 1.0:
        raise ValueError(f"pooled_alpha={pooled_alpha} outside [0, 1]")
    if pooled_alpha and lens.arch.pooled is None:
        raise ValueError(f"pooled_alpha={pooled_alpha}: {lens.arch.model_class} takes no pooled text embedding "
                         f"(see {lens.arch.source})")
    if pooled_alpha and (source_store is not None or source_images is not None):
        raise ValueError("pooled_alpha needs a live source prompt: stores and source images hold no pooled "
                         "text embedding")
    massive_k = detection.k if detection is not None else 4  # the massive set a detection run here would find
    if channel_set == "random" and k > width - massive_k:
        raise ValueError(f"channel_set='random' draws k channels outside the {massive_k} massive ones: "
                         f"k <= {width - massive_k}, got {k}")
    embedded = type(lens.pipeline).__name__ == "TinyShapesPipeline"
    if source_images is not None:
        src_images = _load_images(source_images, len(pairs), lens)
    if spatial == "subject" and not embedded:
        raise ValueError("spatial='subject' segments subjects with the embedded model's evaluator; use 'all'")
    sources = [s for s, _ in pairs for _ in seeds]
    targets = [t for _, t in pairs for _ in seeds]
    all_seeds = [int(x) for _ in pairs for x in seeds]
    det = detection or detect(lens, names=chosen, k=massive_k, prompts=sorted(set(sources + targets)),
                              seeds=list(seeds), num_inference_steps=num_inference_steps, pipeline=kw)

    def run(prompts, edits=(), cache=None, on_step=None):
        gens = [torch.Generator().manual_seed(s) for s in all_seeds]
        return lens.generate(prompts, num_inference_steps=num_inference_steps, generator=gens, edits=edits,
                             cache=cache, on_step=on_step, **kw)

    rng = np.random.default_rng(random_seed)
    shared, runs = runs is not None, {} if runs is None else runs

    def channel_subset(name: str) -> list[int]:
        if channel_set == "massive":
            return det.ranked(name)[:k]
        if channel_set == "low":
            return det.low(name, k)
        outside = [c for c in range(lens.shape(name)[1]) if c not in det.massive(name)]
        return sorted(rng.choice(outside, size=k, replace=False).tolist())

    channels = {n: channel_subset(n) for n in chosen} if k else {}
    keep = list(range(num_inference_steps)) if steps is None else list(steps)
    if source_images is not None:  # image-conditioned: each pair's source is an image, prompts are its captions
        src_images = np.repeat(src_images, len(seeds), axis=0)
        src_values = image_source(lens, src_images, targets, all_seeds, chosen, num_inference_steps, **kw)
        cfg = None
    elif source_store is not None:  # offline: the source trajectory comes from a store (its recorded cfg branch)
        src_values, src_images, cfg = _from_store(lens, source_store, storage_options, sources, all_seeds, chosen,
                                                  keep)
    else:
        key = (tuple(sources), tuple(all_seeds), tuple(chosen), tuple(keep), num_inference_steps)
        hit = _reused(runs, "source", key, kw)
        if hit is None:
            pooled: dict = {}

            def read_pooled(run_, step):
                if step.index == 0:
                    pooled[step.branch] = run_.pooled().detach().clone()

            # a shared ``runs`` keeps the pooled embedding too, for a later call's pooled_alpha
            with_pooled = lens.arch.pooled is not None and (pooled_alpha or shared)
            src = run(sources, cache=chosen, on_step=read_pooled if with_pooled else None)
            hit = ({(n, s): src.cache[n, s] for n in chosen for s in keep}, np.asarray(src.images), pooled)
            runs["source"] = (key, kw, hit)
        src_values, src_images, pooled = hit
        cfg = None
    key = (tuple(targets), tuple(all_seeds), num_inference_steps)
    tgt_images = _reused(runs, "target", key, kw)
    if tgt_images is None:
        tgt_images = np.asarray(run(targets).images)
        runs["target"] = (key, kw, tgt_images)
    images = {"source": src_images, "target": tgt_images}
    tokens = None
    if spatial == "subject":  # tokens of the source subjects (pooled to the token grid), union over the batch
        from .cluster import subject_masks

        side = int(round(lens.shape(chosen[0])[0] ** 0.5))
        union = subject_masks(images["source"], (side, side)).any(0).ravel()
        tokens = np.nonzero(union)[0].tolist() or None

    def move_pooled(run_, step):  # the target's pooled embedding moves pooled_alpha of the way to the source's
        if step.index in keep:
            p = run_.pooled()
            run_.set_pooled(p + float(pooled_alpha) * (pooled[step.branch].to(p) - p))

    for alpha in alphas:
        edits = []
        for name in chosen if k else ():
            ch = channels[name]
            values = {}
            for s in keep:
                v = src_values[name, s][:, :, ch]
                values[s] = v if tokens is None else v[:, tokens]
            edits.append(patch(name, values, alpha=float(alpha), channels=ch, tokens=tokens, cfg=cfg))
        images[float(alpha)] = np.asarray(run(targets, edits=edits, on_step=move_pooled if pooled_alpha else None)
                                          .images)
    success, blend = {}, {}
    if embedded:
        target_masks = [analyse(im).mask for im in images["target"]]
        for alpha in alphas:
            a = float(alpha)
            ok = [_moved(im, t, s, m) for im, t, s, m in zip(images[a], targets, sources, target_masks)]
            mix = (a * images["source"].astype(np.float64) + (1 - a) * images["target"]).round().astype(np.uint8)
            okb = [_moved(im, t, s, m) for im, t, s, m in zip(mix, targets, sources, target_masks)]
            success[a], blend[a] = float(np.mean(ok)), float(np.mean(okb))
    params = dict(pairs=[list(p) for p in pairs], seeds=list(seeds), names=names, k=k, channel_set=channel_set,
                  random_seed=random_seed, pooled_alpha=float(pooled_alpha),
                  source_images=None if source_images is None else
                  [str(p) for p in source_images] if isinstance(source_images[0], (str, Path)) else "array",
                  alphas=[float(a) for a in alphas], steps=None if steps is None else list(steps), spatial=spatial,
                  source_store=None if source_store is None else str(source_store),
                  num_inference_steps=num_inference_steps, pipeline={a: str(b) for a, b in kw.items()})
    return Transport(success=success, blend_success=blend, params=params, images=images,
                     channels={n: [int(c) for c in ch] for n, ch in channels.items()},
                     massive={n: det.massive(n) for n in chosen})
