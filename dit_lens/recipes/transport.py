"""Transport: inject a source trajectory's activations into a target trajectory under a channel mask (the massive
channels) x a spatial mask, with strength alpha — semantic transport without training.

    transport(lens, pairs=[(source_prompt, target_prompt), ...], seeds=..., alphas=..., ...) -> Transport
        The source runs with the same seed as the target; at every chosen step and name the target's channels
        (``channel_set="massive"``: the top ``k`` by detection's ranking; controls: ``"random"``, k channels drawn
        with ``random_seed`` outside the detected massive set, or ``"low"``, the k lowest) move ``alpha`` of the
        way to the source's, on ``spatial="all"`` tokens, ``"subject"`` (the tokens of the source images'
        subjects: ``masks``, one per pair — image files or bool arrays, see dit_lens.scoring.load_masks — or else
        the scorer's masks of the source images) or ``"cluster"`` (as the paper does, on any model: at every step
        and name, per row, the tokens outside the background cluster of a 2-means of the target's and of the
        source's tokens on the massive channels, the union of the two; dit_lens.recipes.cluster.subject_tokens),
        in every CFG branch the source recorded. ``steps``: step indices, or a window of the run ("early",
        "middle", "late": its thirds), default every step.
        Sources: a source prompt run live (text-conditioned); ``source_store`` (a store recorded from the same model
        with the source prompts and seeds: its recorded branch is patched); ``source_images`` (one uint8 image or
        image file per pair, noised to each step's sigma and run under the target prompt: image-conditioned; needs
        a model spec that turns images into the transformer's input, and each pair's first prompt then only names
        the image's content for scoring).
        ``pooled_alpha`` > 0 (models whose blocks are modulated by a pooled text embedding: Flux, SD3) also moves
        the target's pooled embedding that fraction of the way to the source's at the chosen steps — the
        conditioning path that bypasses the residual stream; ``k`` may be 0 to transport it alone (live sources).
        Measures: ``toward_source`` (every model): per alpha, 1 - |out - source| / |target - source| over the whole
        output (images or latents; 0 = the target, 1 = the source), with 95% intervals. With a ``scorer`` that
        judges transport (default: the model's own; the embedded model's evaluator checks that the subject takes the
        source's colour while the target keeps its background and position): the success rate, and the same for
        pixel blending of the two images at the same alpha. ``localisation`` (images): per alpha, how much the image
        changed outside the subject against inside it (mean |out - target| outside / inside; the subject from the
        scorer's masks of the target images, else from the cluster masks): well under pixel blending's
        (``blend_localisation``) means a localised edit rather than a blend.
        Embeddings-driven pipelines (``prompt_embeds`` in ``pipeline``: one row per target sample, pairs x seeds)
        take the sources' rows in ``source_pipeline`` (keyword arguments that replace ``pipeline``'s for the source
        runs, e.g. ``{"prompt_embeds": S, "pooled_prompt_embeds": P}``); the pairs' prompts then only label them,
        and detection runs on the targets.
        ``runs``: a dict passed to several calls with the same pairs, seeds, names, steps and pipeline arguments
        keeps their live source and target generations (the latest of each), so controls (another channel set, k,
        alpha or pooled_alpha) reuse them; ``dit-lens run`` shares one across a sweep.
    Transport.figure(out)   alpha sweep grid (rows: pairs; columns: target, alphas..., source), or for latents the
                            toward-source measure against alpha
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _samples
from ..errors import RecipeError
from ..scoring import implements, load_masks, pool_masks, resolve_scorer
from ._intervals import t_interval, wilson
from ._sources import image_source, live_source, load_images, reused, store_source
from ._windows import window_steps
from .cluster import subject_tokens
from .disrupt import as_outputs, explicit, is_images, progress

__all__ = ["Transport", "transport"]


@dataclass
class Transport:
    success: dict  # alpha -> fraction of (pair, seed) transported (with a scorer that judges transport)
    blend_success: dict  # alpha -> the same score for pixel blending
    params: dict
    toward_source: dict = field(default_factory=dict)  # alpha -> {mean, lo, hi, n}
    images: dict = field(repr=False, default_factory=dict)  # "source" | "target" | alpha -> (n, ...) outputs
    channels: dict = field(default_factory=dict)  # name -> the channels patched
    massive: dict = field(default_factory=dict)  # name -> the detected massive channels
    tokens: list | None = None  # the image tokens patched (spatial="subject"); None: all
    success_ci: dict = field(default_factory=dict)  # alpha -> success rate {mean, lo, hi, n} (Wilson interval)
    blend_success_ci: dict = field(default_factory=dict)  # the same for pixel blending
    localisation: dict = field(default_factory=dict)  # alpha -> change outside / inside the subject {mean, lo, hi}
    blend_localisation: dict = field(default_factory=dict)  # the same for pixel blending
    mask_fraction: float | None = None  # spatial="cluster": mean fraction of image tokens moved

    def describe(self) -> str:
        parts = []
        for a, t in self.toward_source.items():
            judged = f"success {self.success[a]:.0%} (pixel blending {self.blend_success[a]:.0%}), " \
                if a in self.success else ""
            where = f", outside/inside {self.localisation[a]['mean']:.2f} (blend " \
                f"{self.blend_localisation[a]['mean']:.2f})" if a in self.localisation else ""
            parts.append(f"alpha {a}: {judged}toward source {t['mean']:.2f}{where}")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {"params": self.params, "success": self.success, "pixel_blend_success": self.blend_success,
                "success_interval": self.success_ci, "pixel_blend_success_interval": self.blend_success_ci,
                "toward_source": self.toward_source, "localisation": self.localisation,
                "pixel_blend_localisation": self.blend_localisation, "mask_fraction": self.mask_fraction,
                "channels": self.channels, "massive": self.massive, "tokens": self.tokens}

    def figure(self, out, n: int = 4) -> Path:
        from ._figures import pyplot, save

        plt = pyplot()
        p = self.params
        what = f"{p['k']} {p['channel_set']} channels" if p.get("k") else "no channels"
        if p.get("pooled_alpha"):
            what += f" + pooled embedding (alpha {p['pooled_alpha']})"
        source = "image" if p.get("source_images") else "prompt"
        title = f"transport of {what}: source {source} -> target, same seed"
        alphas = [a for a in self.images if a not in ("source", "target")]
        if not is_images(self.images["target"]):  # latents: how far each alpha moved the output
            fig, ax = plt.subplots(figsize=(4, 3))
            m = [self.toward_source[a] for a in alphas]
            ax.errorbar(alphas, [v["mean"] for v in m], yerr=[[v["mean"] - v["lo"] for v in m],
                                                               [v["hi"] - v["mean"] for v in m]], marker="o")
            ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="pixel blending")
            ax.set_xlabel("alpha")
            ax.set_ylabel("toward source (0 target, 1 source)")
            ax.legend(fontsize=7)
            return save(fig, out, "transport_sweep.png", title)
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
        return save(fig, out, "transport_sweep.png", title)


def _toward(outs: np.ndarray, source: np.ndarray, target: np.ndarray) -> dict:
    """Per sample 1 - |out - source| / |target - source| (L2 over the whole output), as a t-interval."""
    values = []
    for o, s, t in zip(outs.astype(np.float64), source.astype(np.float64), target.astype(np.float64)):
        span = np.linalg.norm(t - s)
        values.append(1.0 - np.linalg.norm(o - s) / span if span > 0 else np.nan)
    return t_interval(values)


def _check(lens, pairs, alphas, steps, num_inference_steps, k, width, pooled_alpha, channel_set, spatial,
           source_store, source_images, pipeline) -> None:
    if not pairs or any(len(p) != 2 for p in pairs):
        raise RecipeError("pairs must be a non-empty list of (source_prompt, target_prompt)")
    if channel_set not in ("massive", "random", "low"):
        raise RecipeError(f"channel_set={channel_set!r}: expected 'massive', 'random' or 'low'")
    if spatial not in ("all", "subject", "cluster"):
        raise RecipeError(f"spatial={spatial!r}: expected 'all', 'subject' or 'cluster'")
    bad = [a for a in alphas if not 0.0 <= float(a) <= 1.0]
    if bad:
        raise RecipeError(f"alphas {bad} outside [0, 1]")
    window_steps(steps, lens.steps_of(num_inference_steps, **(pipeline or {})))
    if not (0 if pooled_alpha else 1) <= k <= width:
        raise RecipeError(f"k={k} outside {0 if pooled_alpha else 1}..{width} (the channels of the chosen names)")
    if not 0.0 <= float(pooled_alpha) <= 1.0:
        raise RecipeError(f"pooled_alpha={pooled_alpha} outside [0, 1]")
    if pooled_alpha and lens.arch.pooled is None:
        raise RecipeError(f"pooled_alpha={pooled_alpha}: {lens.arch.model_class} takes no pooled text embedding "
                          f"(see {lens.arch.source})")
    if pooled_alpha and (source_store is not None or source_images is not None):
        raise RecipeError("pooled_alpha needs a live source prompt: stores and source images hold no pooled "
                          "text embedding")


def _subject_masks(spatial, masks, judge, grid, n_pairs):
    """The user's subject masks on the token grid (one per pair), or None (then the scorer's, after the source run);
    checked before any generation."""
    if masks is not None and spatial != "subject":
        raise RecipeError(f"masks= picks the subject tokens of spatial='subject'; with spatial={spatial!r} they would "
                          f"be unused")
    if spatial == "subject" and masks is None and not implements(judge, "masks"):
        raise RecipeError("spatial='subject' takes the subject tokens from masks= or a scorer's masks of the source "
                          "images; this model has no such scorer: give masks=, scorer=, or use spatial='all'")
    return None if masks is None else load_masks(masks, n_pairs, grid)


def transport(lens, *, pairs, seeds=(0,), names: str = "*.*.img.resid_post", k: int = 4,
              alphas=(0.25, 0.5, 0.75, 1.0), steps=None, spatial: str = "all", num_inference_steps: int = 20,
              detection=None, source_store=None, storage_options: dict | None = None, source_images=None,
              channel_set: str = "massive", random_seed: int = 0, pooled_alpha: float = 0.0, scorer=None,
              masks=None, pipeline: dict | None = None, source_pipeline: dict | None = None,
              runs: dict | None = None) -> Transport:
    from ..edits import patch
    from .detect import detect

    kw = dict(pipeline or {})
    src_kw = {**kw, **(source_pipeline or {})}
    pairs = [tuple(p) for p in pairs]
    chosen = lens.names(names)
    width = lens.shape(chosen[0])[1]
    _check(lens, pairs, alphas, steps, num_inference_steps, k, width, pooled_alpha, channel_set, spatial,
           source_store, source_images, kw)
    massive_k = detection.k if detection is not None else 4  # the massive set a detection run here would find
    if channel_set == "random" and k > width - massive_k:
        raise RecipeError(f"channel_set='random' draws k channels outside the {massive_k} massive ones: "
                          f"k <= {width - massive_k}, got {k}")
    judge = resolve_scorer(scorer, lens.spec)
    if explicit(scorer) and (not implements(judge, "transported") or kw.get("output_type") == "latent"):
        raise RecipeError(f"scorer {judge.name!r} cannot judge transport in this run: it needs transported() or "
                          f"similarity() on images, and the run makes {kw.get('output_type') or 'images'}")
    grid = lens.token_grid(kw.get("height"), kw.get("width"),
                           tokens=lens.tokens(lens.names("*.*.img.resid_post")[0], "cond", kw))
    masks = _subject_masks(spatial, masks, judge, grid, len(pairs))
    sources, all_seeds = _samples.grid([s for s, _ in pairs], seeds)
    targets, _ = _samples.grid([t for _, t in pairs], seeds)
    if ("prompt_embeds" in kw) != ("prompt_embeds" in src_kw) or (
            "prompt_embeds" in kw and source_store is None and source_images is None and not source_pipeline):
        raise RecipeError("an embeddings-driven transport needs the sources' rows too: give source_pipeline="
                          "{'prompt_embeds': ..., ...} (one row per source sample) next to pipeline's target rows")
    target_prompts, source_prompts = _samples.call_prompts(targets, kw), _samples.call_prompts(sources, src_kw)
    latents = None
    if source_images is not None:  # checked and turned into the transformer's input before any generation
        if lens.spec is None or lens.spec.image_latents is None:
            raise RecipeError(f"image-conditioned sources need a model spec that turns images into "
                              f"{type(lens.pipeline).__name__}'s transformer input (dit_lens.models); pass source "
                              f"prompts instead")
        src_images = np.repeat(load_images(source_images, len(pairs)), len(seeds), axis=0)
        latents = lens.spec.image_latents(lens.pipeline, src_images, all_seeds)
    detect_prompts = [t for _, t in pairs] if "prompt_embeds" in kw else sorted(set(sources + targets))
    det = detection or detect(lens, names=chosen, k=massive_k, prompts=detect_prompts, seeds=list(seeds),
                              num_inference_steps=num_inference_steps, pipeline=kw)

    def run(source: bool = False, edits=(), cache=None, on_step=None, cache_cfg=None):
        prompts, args = (source_prompts, src_kw) if source else (target_prompts, kw)
        return lens.generate(prompts, num_inference_steps=num_inference_steps,
                             generator=_samples.generators(all_seeds), edits=edits, cache=cache, on_step=on_step,
                             cache_cfg=cache_cfg, **args)

    rng = np.random.default_rng(random_seed)
    shared, runs = runs is not None, {} if runs is None else runs
    pick = {"massive": lambda n: det.ranked(n)[:k], "low": lambda n: det.low(n, k),
            "random": lambda n: det.random(n, k, rng)}[channel_set]
    channels = {n: pick(n) for n in chosen} if k else {}
    ran = lens.steps_of(num_inference_steps, **kw)
    window = window_steps(steps, ran)
    keep = list(range(ran)) if window is None else window
    pooled: dict = {}
    if latents is not None:  # image-conditioned: each pair's source is an image, prompts are its captions
        src_values = image_source(lens, latents, target_prompts, all_seeds, chosen, num_inference_steps, **kw)
    elif source_store is not None:  # offline: the source trajectory comes from a store
        src_values, src_images = store_source(lens, source_store, storage_options, sources, all_seeds, chosen, keep)
    else:
        key = (tuple(sources), tuple(all_seeds), tuple(chosen), tuple(keep), num_inference_steps)
        hit = reused(runs, "source", key, src_kw)
        if hit is None:  # a shared ``runs`` keeps the pooled embedding too, for a later call's pooled_alpha
            hit = live_source(lambda **a: run(True, **a), chosen, keep,
                              with_pooled=lens.arch.pooled is not None and bool(pooled_alpha or shared))
            runs["source"] = (key, src_kw, hit)
        src_values, src_images, pooled = hit
    key = (tuple(targets), tuple(all_seeds), num_inference_steps)
    tgt_images = reused(runs, "target", key, kw)
    masks_at: dict = {}
    if spatial == "cluster":  # the target's own activations too: its subject tokens at every step and name
        labels = {cfg for name in chosen for cfg, _ in src_values[name, keep[0]]}
        cache_cfg = "cond" if labels == {"cond"} else None  # a store source holds the cond rows only
        tkey = (*key, tuple(chosen), tuple(keep), cache_cfg)
        hit = reused(runs, "target_values", tkey, kw)
        if hit is None:
            hit = live_source(lambda **a: run(cache_cfg=cache_cfg, **a), chosen, keep, with_pooled=False)[:2]
            runs["target_values"] = (tkey, kw, hit)
        tgt_values, tgt_images = hit
        runs["target"] = (key, kw, tgt_images)
        masks_at = _cluster_masks(src_values, tgt_values, chosen, keep, det, grid)
    if tgt_images is None:
        tgt_images = as_outputs(run().images)
        runs["target"] = (key, kw, tgt_images)
    images = {"source": src_images, "target": tgt_images}
    tokens = None
    if spatial == "subject":  # tokens of the source subjects (pooled to the token grid), union over the batch
        subject = masks if masks is not None else pool_masks(judge.masks(images["source"]), grid)
        union = subject.any(0).ravel()
        tokens = np.nonzero(union)[0].tolist() or None

    def move_pooled(run_, step):  # the target's pooled embedding moves pooled_alpha of the way to the source's
        if step.index in keep:
            p = run_.pooled()
            run_.set_pooled(p + float(pooled_alpha) * (pooled[step.branch].to(p) - p))

    for alpha in progress(alphas, "transport"):
        edits = []
        for name in chosen if k else ():
            ch = channels[name]
            for b, (cfg, _) in enumerate(src_values[name, keep[0]]):  # one edit per recorded CFG branch
                values = {}
                for s in keep:
                    v = src_values[name, s][b][1][:, :, ch]
                    values[s] = v if tokens is None else v[:, tokens]
                mask = {s: masks_at[name, s, cfg] for s in keep} if masks_at else None
                edits.append(patch(name, values, alpha=float(alpha), channels=ch, tokens=tokens, cfg=cfg, mask=mask))
        images[float(alpha)] = as_outputs(run(edits=edits, on_step=move_pooled if pooled_alpha else None).images)
    success, blend, success_ci, blend_ci = {}, {}, {}, {}
    toward = {float(a): _toward(images[float(a)], images["source"], images["target"]) for a in alphas}
    local, blend_local = {}, {}
    where = _image_masks(judge, images["target"], masks_at, chosen, keep, grid, lens.arch.batch_order)
    if where is not None:
        for alpha in alphas:
            a = float(alpha)
            mix = a * images["source"].astype(np.float64) + (1 - a) * images["target"]
            local[a] = _outside_inside(images[a], images["target"], where)
            blend_local[a] = _outside_inside(mix, images["target"], where)
    judged = implements(judge, "transported") and is_images(images["target"])
    if explicit(scorer) and not judged:
        raise RecipeError(f"scorer {judge.name!r} cannot judge transport here: it needs images, the pipeline "
                          f"returned {images['target'].dtype} {images['target'].shape}")
    if judged:
        for alpha in alphas:
            a = float(alpha)
            mix = (a * images["source"].astype(np.float64) + (1 - a) * images["target"]).round().astype(np.uint8)
            ok = np.asarray(judge.transported(images[a], sources, targets, images["target"]), bool)
            ok_blend = np.asarray(judge.transported(mix, sources, targets, images["target"]), bool)
            success[a], blend[a] = float(ok.mean()), float(ok_blend.mean())
            success_ci[a], blend_ci[a] = wilson(ok), wilson(ok_blend)
    params = dict(pairs=[list(p) for p in pairs], seeds=list(seeds), names=names, k=k, channel_set=channel_set,
                  random_seed=random_seed, pooled_alpha=float(pooled_alpha),
                  source_images=None if source_images is None else
                  [str(p) for p in source_images] if isinstance(source_images[0], (str, Path)) else "array",
                  alphas=[float(a) for a in alphas], spatial=spatial,
                  steps=None if steps is None else steps if isinstance(steps, str) else list(steps), step_indices=keep,
                  source_store=None if source_store is None else str(source_store),
                  masks=None if masks is None else "argument",
                  num_inference_steps=num_inference_steps, scorer=judge.name if judge is not None else None,
                  pipeline={a: str(b) for a, b in kw.items()})
    return Transport(success=success, blend_success=blend, params=params, toward_source=toward, images=images,
                     channels={n: [int(c) for c in ch] for n, ch in channels.items()},
                     massive={n: det.massive(n) for n in chosen}, tokens=tokens, localisation=local,
                     success_ci=success_ci, blend_success_ci=blend_ci,
                     blend_localisation=blend_local,
                     mask_fraction=float(np.mean([m.float().mean() for m in masks_at.values()])) if masks_at else None)


def _cluster_masks(src_values, tgt_values, names, keep, det, grid) -> dict:
    """{(name, step, cfg): (rows, tokens) bool}: per row, the union of the source's and the target's subject tokens
    (2-means on the name's massive channels; the background cluster holds most of the grid's border)."""
    import torch

    grid = grid if len(grid) == 2 else (grid[0] * grid[1], grid[2])  # video: frames stacked along the rows
    out = {}
    for name in names:
        chans = list(det.massive(name))
        for s in keep:
            targets = {cfg: v for cfg, v in tgt_values[name, s]}
            for cfg, v in src_values[name, s]:
                t = targets.get(cfg)
                if t is None and len(targets) == 1 and next(iter(targets.values())).shape[0] == v.shape[0]:
                    t = next(iter(targets.values()))  # the same rows under another label (a run without CFG)
                if t is None or t.shape[:2] != v.shape[:2]:
                    raise RecipeError(f"spatial='cluster': the target's {name} at step {s} has no rows matching the "
                                      f"source's {cfg or 'batch'} rows {tuple(v.shape[:2])}")
                both = subject_tokens(np.concatenate([v[:, :, chans].float().numpy(),
                                                      t[:, :, chans].float().numpy()]), grid)
                out[name, s, cfg] = torch.from_numpy(both[:len(v)] | both[len(v):])
    return out


def _image_masks(judge, target, masks_at, names, keep, grid, batch_order):
    """(samples, H, W) bool subject masks of the target images: the scorer's, else the cluster masks of the last
    name, united over the kept steps and scaled to the image; None for latents or without either."""
    if not is_images(target):
        return None
    if implements(judge, "masks"):
        return np.asarray(judge.masks(target), bool)
    if not masks_at:
        return None
    n, H, W = target.shape[:3]
    grid = grid if len(grid) == 2 else (grid[0] * grid[1], grid[2])
    if len(grid) != 2 or H % grid[0] or W % grid[1]:
        return None
    cfg = next(c for (name, s, c) in masks_at if name == names[-1])
    m = np.any([masks_at[names[-1], s, cfg].numpy() for s in keep], axis=0)
    if m.shape[0] == 2 * n:  # a batched-CFG call's rows: the cond half
        m = m[n:] if batch_order.index("cond") == 1 else m[:n]
    if m.shape[0] != n:
        return None
    m = m.reshape(n, *grid)
    return np.repeat(np.repeat(m, H // grid[0], axis=1), W // grid[1], axis=2)


def _outside_inside(outs: np.ndarray, target: np.ndarray, masks: np.ndarray) -> dict:
    """Per sample mean |out - target| outside the subject over inside it, as a t-interval (>= 0)."""
    values = []
    for o, t, m in zip(outs.astype(np.float64), target.astype(np.float64), masks):
        d = np.abs(o - t).mean(-1)
        values.append(d[~m].mean() / d[m].mean() if m.any() and (~m).any() and d[m].mean() > 0 else np.nan)
    return t_interval(values, (0.0, np.inf))
