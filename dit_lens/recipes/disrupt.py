"""Disrupt (the probe): knock out the massive channels during generation, against equally sized controls.

    disrupt(lens, prompts=..., seeds=..., names=..., k=4, ...) -> Disruption
        sets: "massive" (detected top-k), "low" (lowest mean |x|), "random" (seeded, excluding the massive ones);
        ablation: "zero" or "mean" (each channel set to its signed mean over tokens and steps of the baseline run,
        which a bias-like channel survives). Every image is scored against the unperturbed image of the same seed:
        PSNR, SSIM, output MSE, high-frequency energy ratio (detail loss) and, for the embedded model, the
        ground-truth evaluator (semantic collapse). Means with 95% t-intervals over samples.
    Disruption.figure(out)   baseline / massive / low / random grid
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

SETS = ("massive", "low", "random")


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


def _ci(values) -> dict:
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    if len(v) == 0:
        return dict(mean=float("nan"), lo=float("nan"), hi=float("nan"), n=0)
    if len(v) == 1:
        return dict(mean=float(v[0]), lo=float(v[0]), hi=float(v[0]), n=1)
    from scipy import stats

    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return dict(mean=float(v.mean()), lo=float(v.mean() - half), hi=float(v.mean() + half), n=int(len(v)))


@dataclass
class Disruption:
    metrics: dict  # "ablation/set" -> metric -> {mean, lo, hi, n}
    channels: dict  # set -> name -> channels
    params: dict
    images: dict = field(repr=False, default_factory=dict)  # "baseline" | "ablation/set" -> uint8 (n, H, W, 3)

    def to_dict(self) -> dict:
        return {"params": self.params, "channels": self.channels, "metrics": self.metrics}

    def figure(self, out, n: int = 6) -> Path:
        from ._figures import pyplot, save

        plt = pyplot()

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
        return save(fig, out, "disrupt_grid.png",
                    f"disrupt: k={self.params['k']} channels per layer of {self.params['names']}")


def disrupt(lens, *, prompts, seeds=(0, 1), names: str = "*.*.img.resid_post", k: int = 4, detection=None,
            ablations=("zero", "mean"), sets=SETS, steps=None, num_inference_steps: int = 20, random_seed: int = 0,
            evaluate: bool | None = None, pipeline: dict | None = None) -> Disruption:
    from ..edits import set_to, zero
    from .detect import detect

    pipeline_kwargs = dict(pipeline or {})
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    all_prompts = [p for p in prompts for _ in seeds]
    all_seeds = [int(s) for _ in prompts for s in seeds]
    chosen = lens.names(names)
    bad = [s for s in sets if s not in SETS] + [a for a in ablations if a not in ("zero", "mean")]
    if bad:
        raise ValueError(f"unknown sets/ablations {bad}: sets are {SETS}, ablations 'zero' and 'mean'")
    channels_n = lens.shape(chosen[0])[1]
    if not 1 <= k < channels_n // 2:
        raise ValueError(f"k={k} out of range 1..{channels_n // 2 - 1} for {channels_n} channels")
    if steps is not None and not all(0 <= s < num_inference_steps for s in steps):
        raise IndexError(f"steps {list(steps)} out of range 0..{num_inference_steps - 1}")
    det = detection or detect(lens, names=chosen, k=k, prompts=prompts, seeds=seeds,
                              num_inference_steps=num_inference_steps, pipeline=pipeline_kwargs)
    rng = np.random.default_rng(random_seed)
    channels = {"massive": {n: det.massive(n)[:k] for n in chosen}, "low": {n: det.low(n, k) for n in chosen}}
    channels["random"] = {n: sorted(rng.choice([c for c in range(channels_n) if c not in channels["massive"][n]],
                                               size=k, replace=False).tolist()) for n in chosen}

    def run(edits=(), cache=None):
        gens = [torch.Generator().manual_seed(s) for s in all_seeds]
        return lens.generate(all_prompts, num_inference_steps=num_inference_steps, generator=gens, edits=edits,
                             cache=cache, **pipeline_kwargs)

    base = run(cache=chosen if "mean" in ablations else None)
    means = {n: base.cache.stack(n).mean(dim=(0, 1, 2)) for n in chosen} if "mean" in ablations else {}
    images = {"baseline": np.asarray(base.images)}
    where = {} if steps is None else {"steps": list(steps)}
    for ab in ablations:
        for s in sets:
            edits = [zero(n, channels=channels[s][n], **where) if ab == "zero" else
                     set_to(n, means[n][channels[s][n]], channels=channels[s][n], **where) for n in chosen]
            images[f"{ab}/{s}"] = np.asarray(run(edits).images)
    use_eval = evaluate if evaluate is not None else type(lens.pipeline).__name__ == "TinyShapesPipeline"
    metrics = {}
    if use_eval:
        from ..tiny import evaluate as ev

        base_rows = ev.score(images["baseline"], all_prompts).rows  # scored once, shared by every condition
    for key, imgs in images.items():
        if key == "baseline":
            continue
        b = images["baseline"]
        m = dict(psnr=_ci([psnr(x, y) for x, y in zip(imgs, b)]), ssim=_ci([ssim(x, y) for x, y in zip(imgs, b)]),
                 mse=_ci([float(np.mean(((x.astype(np.float64) - y) / 255.0) ** 2)) for x, y in zip(imgs, b)]),
                 hf_ratio=_ci([hf_energy(x) / max(hf_energy(y), 1e-12) for x, y in zip(imgs, b)]))
        if use_eval:
            rows = ev.score(imgs, all_prompts).rows
            m["shape_acc"] = _ci([float(r["shape_ok"]) for r in rows])
            m["colour_acc"] = _ci([float(r["colour_ok"]) for r in rows])
            m["baseline_shape_acc"] = _ci([float(r["shape_ok"]) for r in base_rows])
            m["baseline_colour_acc"] = _ci([float(r["colour_ok"]) for r in base_rows])
        metrics[key] = m
    params = dict(prompts=prompts, seeds=list(seeds), names=names, k=k, ablations=list(ablations), sets=list(sets),
                  steps=None if steps is None else list(steps), num_inference_steps=num_inference_steps,
                  random_seed=random_seed, pipeline={k2: str(v) for k2, v in pipeline_kwargs.items()})
    return Disruption(metrics=metrics, channels={s: channels[s] for s in sets}, params=params, images=images)
