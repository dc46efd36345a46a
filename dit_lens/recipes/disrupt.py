"""Disrupt (the probe): knock out the massive channels during generation, against equally sized controls.

    disrupt(lens, prompts=..., seeds=..., names=..., k=4, ...) -> Disruption
        sets: "massive" (detected top-k), "low" (lowest mean |x|), "random" (seeded, excluding the massive ones);
        ablation: "zero" or "mean" (each channel set to its signed mean over tokens, steps and CFG branches of the
        baseline run, which a bias-like channel survives). Every output is compared with the unperturbed output of
        the same seed: images by PSNR, SSIM, MSE and high-frequency energy ratio (detail loss); other outputs
        (latents) by MSE and relative L2 change. A ``scorer`` (default: the model's own, e.g. the embedded model's
        evaluator; see dit_lens.scoring) adds its per-image scores (semantic collapse) for the baseline and every
        condition. Means with 95% t-intervals over samples. An embeddings-driven pipeline (``prompt_embeds`` in
        ``pipeline``) takes one row per sample (prompts x seeds), the prompts then only label the samples.
        ``steps``: the steps knocked out (indices, or a window: "early", "middle", "late", the run's thirds);
        ``windows``: several windows in one call, sharing the baseline (conditions "zero/massive@early", ...). With
        a scorer each condition also gets ``delta_<score>``: the per-sample change from the baseline.
    Disruption.readings(ablation="zero", control="random")   per window, which reading of the massive channels the
        data supports: "semantic" (the paper: knocking them out loses the prompt's content, beyond the control)
        or "detail" (Gan et al., arXiv 2510.11538: content kept, high-frequency detail lost), with the numbers
    Disruption.figure(out)   baseline / ablated output grid (images), or the metrics per condition (latents)
    pair_metrics(x, y)       the comparison of one output with its baseline
    as_outputs(images) / is_images(x)   a pipeline's output as compared (uint8 images, or raw latents)
    explicit(scorer)         whether ``scorer=`` names a scorer that must then be usable
    psnr, ssim, hf_energy    the image metrics
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _samples
from ..errors import RecipeError
from ..scoring import implements, resolve_scorer
from ._intervals import t_interval
from ._windows import WINDOWS, window_steps

__all__ = ["SETS", "WINDOWS", "Disruption", "disrupt", "pair_metrics", "psnr", "ssim", "hf_energy", "as_outputs",
           "is_images", "explicit", "progress"]

SETS = ("massive", "low", "random")
# the valid range of each metric, which its interval is clipped to
BOUNDS = {"psnr": (0.0, np.inf), "ssim": (-1.0, 1.0), "mse": (0.0, np.inf), "hf_ratio": (0.0, np.inf),
          "rel_l2": (0.0, np.inf)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, win: int = 7) -> float:
    """Mean SSIM of two uint8 RGB images on luminance, uniform ``win`` x ``win`` windows (Wang et al. 2004)."""
    from numpy.lib.stride_tricks import sliding_window_view

    def lum(x):
        return x.astype(np.float64) @ np.array([0.299, 0.587, 0.114])

    x, y = lum(a), lum(b)
    wx, wy = sliding_window_view(x, (win, win)), sliding_window_view(y, (win, win))
    mx, my = wx.mean((-1, -2)), wy.mean((-1, -2))
    vx, vy = wx.var((-1, -2), ddof=1), wy.var((-1, -2), ddof=1)
    cov = ((wx - mx[..., None, None]) * (wy - my[..., None, None])).sum((-1, -2)) / (win * win - 1)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def hf_energy(img: np.ndarray, cutoff: float = 0.25) -> float:
    """Spectral energy above ``cutoff`` x the sampling frequency (radially), luminance, mean removed."""
    x = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    f = np.abs(np.fft.fftshift(np.fft.fft2(x - x.mean()))) ** 2
    h, w = x.shape
    yy, xx = np.meshgrid(np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w)), indexing="ij")
    return float(f[np.hypot(yy, xx) > cutoff].sum())


def as_outputs(images) -> np.ndarray:
    """A pipeline's output as the recipes compare it: uint8 (n, H, W, 3) where it holds images (PIL, uint8, or
    floats in [0, 1]), else the raw array (latents)."""
    from ..store.schema import uint8_images

    as_uint8 = uint8_images(images)
    return as_uint8 if as_uint8 is not None else np.asarray(images.detach().cpu() if hasattr(images, "detach")
                                                            else images)


def is_images(x: np.ndarray) -> bool:
    """Whether outputs are uint8 RGB images (n, H, W, 3), not latents."""
    return x.dtype == np.uint8 and x.ndim == 4 and x.shape[-1] == 3


def explicit(scorer) -> bool:
    """Whether a recipe's ``scorer=`` names a scorer (not the model's default, not none): then it must be usable."""
    return scorer not in (None, "default", False, "none")


def pair_metrics(x: np.ndarray, y: np.ndarray) -> dict:
    """One output ``x`` against its baseline ``y``: PSNR, SSIM, MSE (of [0, 1] values) and high-frequency energy
    ratio for uint8 images; MSE and relative L2 change for anything else."""
    if x.dtype == np.uint8 and x.ndim == 3 and x.shape[-1] == 3:
        return dict(psnr=psnr(x, y), ssim=ssim(x, y),
                    mse=float(np.mean(((x.astype(np.float64) - y) / 255.0) ** 2)),
                    hf_ratio=hf_energy(x) / max(hf_energy(y), 1e-12))
    x, y = x.astype(np.float64), y.astype(np.float64)
    return dict(mse=float(np.mean((x - y) ** 2)), rel_l2=float(np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-30)))


@dataclass
class Disruption:
    metrics: dict  # "ablation/set" -> metric -> {mean, lo, hi, n}
    channels: dict  # set -> name -> channels
    params: dict
    images: dict = field(repr=False, default_factory=dict)  # "baseline" | "ablation/set" -> (n, ...) outputs

    def to_dict(self) -> dict:
        d = {"params": self.params, "channels": self.channels, "metrics": self.metrics}
        if "zero" in self.params["ablations"] and "massive" in self.params["sets"]:
            d["readings"] = self.readings()
        return d

    def describe(self) -> str:
        parts = []
        for key, m in self.metrics.items():
            main = f"PSNR {m['psnr']['mean']:.1f} dB" if "psnr" in m else f"rel. L2 {m['rel_l2']['mean']:.3g}"
            scores = [f"{k} {v['mean']:.2f}" for k, v in m.items()
                      if k not in BOUNDS and not k.startswith(("baseline", "delta_"))]
            parts.append(f"{key}: {', '.join([main, *scores])}")
        return "; ".join(parts)

    def readings(self, ablation: str = "zero", control: str = "random") -> dict:
        """Per window (or "all"): the semantic change (each score's per-sample change from the baseline, massive
        and ``control`` channels), the detail change (high-frequency energy ratio, SSIM) and which reading that
        supports: "semantic" when a score drops (its interval below 0) and drops more than under the control;
        "detail" when no score drops but detail does (the energy ratio's interval below 1); else "neither"; with
        no scorer, "detail" or "neither" from detail alone ("semantics not measured")."""
        out = {}
        windows = self.params.get("windows") or ["all"]
        for w in windows:
            suffix = "" if w == "all" else f"@{w}"
            m, c = self.metrics.get(f"{ablation}/massive{suffix}"), self.metrics.get(f"{ablation}/{control}{suffix}")
            if m is None:
                raise RecipeError(f"readings: no {ablation}/massive{suffix} condition (ablations "
                                  f"{self.params['ablations']}, sets {self.params['sets']})")
            deltas = {k[len("delta_"):]: v for k, v in m.items() if k.startswith("delta_")}
            control_deltas = {k[len("delta_"):]: v for k, v in (c or {}).items() if k.startswith("delta_")}
            dropped = [k for k, v in deltas.items() if v["hi"] < 0 and
                       (k not in control_deltas or v["mean"] < control_deltas[k]["lo"])]
            detail_lost = "hf_ratio" in m and m["hf_ratio"]["hi"] < 1.0
            supports = "semantic" if dropped else "detail" if detail_lost else "neither"
            out[w] = dict(supports=supports, semantic=deltas, semantic_control=control_deltas,
                          scores_dropped=dropped, hf_ratio=m.get("hf_ratio"), ssim=m.get("ssim"),
                          control_hf_ratio=(c or {}).get("hf_ratio"),
                          note="" if deltas else "semantics not measured (no scorer)")
        return out

    def figure(self, out, n: int = 6) -> Path:
        from ._figures import pyplot, save

        plt = pyplot()
        title = f"disrupt: k={self.params['k']} channels per layer of {self.params['names']}"
        if not is_images(self.images["baseline"]):  # latents: the change per condition, not pictures
            keys = list(self.metrics)
            fig, ax = plt.subplots(figsize=(1.2 * len(keys) + 2, 3))
            m = [self.metrics[k]["rel_l2"] for k in keys]
            ax.bar(range(len(keys)), [v["mean"] for v in m], yerr=[[v["mean"] - v["lo"] for v in m],
                                                                    [v["hi"] - v["mean"] for v in m]], capsize=3)
            ax.set_xticks(range(len(keys)), keys, rotation=30, ha="right", fontsize=7)
            ax.set_ylabel("relative L2 change of the output")
            return save(fig, out, "disrupt_grid.png", title)
        keys = ["baseline"] + [k for k in self.images if k != "baseline"]
        n = min(n, len(self.images["baseline"]))
        fig, axes = plt.subplots(len(keys), n, figsize=(1.4 * n, 1.5 * len(keys)), squeeze=False)
        for r, key in enumerate(keys):
            for c in range(n):
                ax = axes[r, c]
                ax.imshow(self.images[key][c], interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(key, fontsize=7)
        return save(fig, out, "disrupt_grid.png", title)


def progress(items, desc: str):
    """A progress bar over ``items`` on a terminal (none in logs and tests)."""
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="run", disable=None, leave=False)


def _branch_mean(cache, name):
    """Per-channel mean of ``name`` over every cached step, row, token and CFG branch."""
    import torch

    return torch.cat([cache.stack(name, branch=b) for b in cache.branches], dim=1).mean(dim=(0, 1, 2))


def disrupt(lens, *, prompts, seeds=(0, 1), names: str = "*.*.img.resid_post", k: int = 4, detection=None,
            ablations=("zero", "mean"), sets=SETS, steps=None, windows=None, num_inference_steps: int = 20,
            random_seed: int = 0, scorer=None, pipeline: dict | None = None) -> Disruption:
    from ..edits import set_to, zero
    from .detect import detect

    pipeline_kwargs = dict(pipeline or {})
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    all_prompts, all_seeds = _samples.grid(prompts, seeds)
    chosen = lens.names(names)
    bad = [s for s in sets if s not in SETS] + [a for a in ablations if a not in ("zero", "mean")]
    if bad:
        raise RecipeError(f"unknown sets/ablations {bad}: sets are {SETS}, ablations 'zero' and 'mean'")
    channels_n = lens.shape(chosen[0])[1]
    if not 1 <= k < channels_n // 2:
        raise RecipeError(f"k={k} out of range 1..{channels_n // 2 - 1} for {channels_n} channels")
    ran = lens.steps_of(num_inference_steps, **pipeline_kwargs)
    if windows is not None and steps is not None:
        raise RecipeError("give steps= (one selection) or windows= (several, sharing the baseline), not both")
    windows = None if windows is None else [windows] if isinstance(windows, str) else list(windows)
    if windows is not None and (not windows or any(w not in (*WINDOWS, "all") for w in windows)):
        raise RecipeError(f"windows={windows}: each one of {WINDOWS} or 'all'")
    where_at = {w: window_steps(w, ran) for w in windows} if windows else {None: window_steps(steps, ran)}
    call_prompts = _samples.call_prompts(all_prompts, pipeline_kwargs)  # embeddings: one row per sample
    judge = resolve_scorer(scorer, lens.spec)
    if explicit(scorer) and (not implements(judge, "score") or pipeline_kwargs.get("output_type") == "latent"):
        raise RecipeError(f"scorer {judge.name!r} cannot score this run: disrupt needs its score() on images, and "
                          f"the run makes {pipeline_kwargs.get('output_type') or 'images'}")
    det = detection or detect(lens, names=chosen, k=k, prompts=prompts, seeds=seeds,
                              num_inference_steps=num_inference_steps, pipeline=pipeline_kwargs)
    rng = np.random.default_rng(random_seed)
    channels = {"massive": {n: det.massive(n)[:k] for n in chosen}, "low": {n: det.low(n, k) for n in chosen}}
    channels["random"] = {n: det.random(n, k, rng) for n in chosen}

    def run(edits=(), cache=None):
        return lens.generate(call_prompts, num_inference_steps=num_inference_steps,
                             generator=_samples.generators(all_seeds), edits=edits, cache=cache, **pipeline_kwargs)

    base = run(cache=chosen if "mean" in ablations else None)
    means = {n: _branch_mean(base.cache, n) for n in chosen} if "mean" in ablations else {}
    images = {"baseline": as_outputs(base.images)}
    conditions = [(ab, s, w) for w in where_at for ab in ablations for s in sets]
    for ab, s, w in progress(conditions, "disrupt"):
        where = {} if where_at[w] is None else {"steps": where_at[w]}
        edits = [zero(n, channels=channels[s][n], **where) if ab == "zero" else
                 set_to(n, means[n][channels[s][n]], channels=channels[s][n], **where) for n in chosen]
        images[f"{ab}/{s}" + ("" if w is None or w == "all" else f"@{w}")] = as_outputs(run(edits).images)
    scored = implements(judge, "score") and is_images(images["baseline"])
    if explicit(scorer) and not scored:
        raise RecipeError(f"scorer {judge.name!r} cannot score these outputs: it needs images, the pipeline "
                          f"returned {images['baseline'].dtype} {images['baseline'].shape}")
    base_scores = judge.score(images["baseline"], all_prompts) if scored else {}  # once, shared by every condition
    metrics = {}
    for key, imgs in images.items():
        if key == "baseline":
            continue
        pairs = [pair_metrics(x, y) for x, y in zip(imgs, images["baseline"])]
        m = {metric: t_interval([p[metric] for p in pairs], BOUNDS[metric]) for metric in pairs[0]}
        if scored:
            for metric, values in judge.score(imgs, all_prompts).items():
                m[metric] = t_interval(values, (0.0, 1.0))
                m[f"delta_{metric}"] = t_interval(np.asarray(values, float) - base_scores[metric], (-1.0, 1.0))
            for metric, values in base_scores.items():
                m[f"baseline_{metric}"] = t_interval(values, (0.0, 1.0))
        metrics[key] = m
    params = dict(prompts=prompts, seeds=list(seeds), names=names, k=k, ablations=list(ablations), sets=list(sets),
                  steps=None if steps is None else steps if isinstance(steps, str) else list(steps),
                  windows=windows, window_steps={str(w): v for w, v in where_at.items()} if windows else None,
                  num_inference_steps=num_inference_steps,
                  random_seed=random_seed, scorer=judge.name if judge is not None else None,
                  pipeline={k2: str(v) for k2, v in pipeline_kwargs.items()})
    return Disruption(metrics=metrics, channels={s: channels[s] for s in sets}, params=params, images=images)
