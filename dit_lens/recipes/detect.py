"""Detect massive activations: per layer and stream, the top-k channels by mean |x| over image tokens (the paper's
criterion) and the Sun et al. criterion (|x| > ``sun_abs`` and >= ``sun_ratio`` x the layer's median |x|), with the
consistency of the top-k sets across prompts, steps and layers.

    detect(source, names=..., k=4, ...) -> Detection     source: a store path/URL or Dataset (full or stats-only),
                                                          or a Lens (records a stats-only store first)
    Detection.massive(name) / .ranked(name) / .low(name, n) / .random(name, k, rng)
                                                          channel sets: the top-k, every channel by mean |x|, the
                                                          lowest, and k drawn outside the massive ones (controls)
    Detection.figures(out)                               magnitude-vs-median per layer; layer x channel heat map
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RecipeError
from ..names import expand

__all__ = ["Detection", "detect"]


def _jaccard(a, b) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


def _mean_pairwise(sets) -> float:
    pairs = list(itertools.combinations(sets, 2))
    return float(np.mean([_jaccard(a, b) for a, b in pairs])) if pairs else 1.0


@dataclass
class Detection:
    k: int
    per_name: dict  # name -> {top, top_values, median, ratio, sun, jaccard_prompts, jaccard_steps}
    jaccard_layers: dict  # "stream": mean Jaccard of top-k sets of consecutive layers
    mean_abs: dict = field(repr=False, default_factory=dict)  # name -> (channels,) mean |x|
    params: dict = field(default_factory=dict)

    def massive(self, name: str) -> list[int]:
        return list(self.per_name[name]["top"])

    def ranked(self, name: str) -> list[int]:
        """Every channel, by mean |x| over image tokens (averaged over samples and steps), largest first; its first
        k are ``massive(name)``."""
        return [int(c) for c in np.argsort(self.mean_abs[name])[::-1]]

    def low(self, name: str, n: int | None = None) -> list[int]:
        """The ``n`` (default k) channels with the lowest mean |x|."""
        return self.ranked(name)[::-1][: n or self.k]

    def random(self, name: str, k: int, rng: np.random.Generator) -> list[int]:
        """``k`` channels drawn uniformly (with ``rng``) from those outside ``massive(name)``: the equal-budget
        random control of disrupt, cluster and transport."""
        massive = set(self.massive(name))
        outside = [c for c in range(len(self.mean_abs[name])) if c not in massive]
        if k > len(outside):
            raise RecipeError(f"{k} random channels outside the {len(massive)} massive ones of {name}: only "
                              f"{len(outside)} exist")
        return sorted(int(c) for c in rng.choice(outside, size=k, replace=False))

    def to_dict(self) -> dict:
        return {"k": self.k, "params": self.params, "per_name": self.per_name, "jaccard_layers": self.jaccard_layers}

    def describe(self) -> str:
        last = list(self.per_name)[-1]
        v = self.per_name[last]
        return (f"{len(self.per_name)} names, top-{self.k}; {last}: channels {v['top']}, top-1/median "
                f"{v['ratio']:.1f}, max |x| {v['max_abs']:.3g}; top-k Jaccard across prompts (mean over names) "
                f"{np.mean([x['jaccard_prompts'] for x in self.per_name.values()]):.2f}")

    def figures(self, out) -> list[Path]:
        from ._figures import pyplot, save

        plt = pyplot()

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        names = list(self.per_name)
        fig, ax = plt.subplots(figsize=(7, 3.2))
        x = np.arange(len(names))
        for j in range(self.k):
            ax.plot(x, [self.per_name[n]["top_values"][j] for n in names], "o-", ms=3, label=f"top-{j + 1}")
        ax.plot(x, [self.per_name[n]["median"] for n in names], "k--", label="median channel")
        ax.set_yscale("log")
        ax.set_xticks(x, [n.rsplit(".", 1)[0] for n in names], rotation=60, ha="right", fontsize=6)
        ax.set_ylabel("mean |x| over image tokens")
        ax.legend(fontsize=6, ncol=3)
        ax.set_title("top-k channels vs the median channel, per layer", fontsize=9)
        p1 = save(fig, out, "detect_magnitudes.png")
        heat = np.stack([self.mean_abs[n] for n in names])
        fig, ax = plt.subplots(figsize=(7, 0.25 * len(names) + 1.2))
        im = ax.imshow(np.log10(heat + 1e-12), aspect="auto", cmap="magma", interpolation="nearest")
        ax.set_yticks(x, names, fontsize=6)
        ax.set_xlabel("channel")
        fig.colorbar(im, ax=ax, label="log10 mean |x|")
        ax.set_title("layer x channel mean |x|", fontsize=9)
        p2 = save(fig, out, "detect_heatmap.png")
        return [p1, p2]


def _stats_store(lens, prompts, seeds, num_inference_steps, names, **kw):
    import tempfile

    from ..record import record
    from ..store import open_store

    url = str(Path(tempfile.mkdtemp(prefix="dit-lens-detect-")) / "stats.zarr")
    record(lens, url, prompts, seeds=seeds, names=names, num_inference_steps=num_inference_steps, stats_only=True,
           progress=False, **kw)
    return open_store(url)


def detect(source, *, names: str = "*.*.img.resid_post", k: int = 4, sun_abs: float = 100.0,
           sun_ratio: float = 1000.0, prompts=None, seeds=(0,), num_inference_steps: int = 20,
           storage_options: dict | None = None, pipeline: dict | None = None) -> Detection:
    """Top-k massive channels per name. ``source`` is a store (path, URL or Dataset; ``storage_options`` for
    object storage) or a Lens (then ``prompts`` are generated with the ``pipeline`` keyword arguments and their
    statistics recorded first)."""
    import xarray as xr

    from ..lens import Lens
    from ..store import open_store

    if isinstance(source, Lens):
        if not prompts:
            raise RecipeError("detect on a live Lens needs prompts=")
        ds = _stats_store(source, prompts, list(seeds), num_inference_steps, names, **(pipeline or {}))
    elif isinstance(source, xr.Dataset):
        ds = source
    else:
        ds = open_store(str(source), **(storage_options or {}))
    chosen = ds.dit.names if names is None else expand(names, ds.dit.names)
    n_channels = ds.sizes["channel"]
    if not 1 <= k < n_channels:
        raise RecipeError(f"k={k} out of range: the store has {n_channels} channels (need 1 <= k < channels)")
    per_name, mean_abs, tops = {}, {}, {}
    for name in chosen:
        stats = ds.dit.sel(name, stat="mean_abs").values  # (sample, step, channel), NaN where incomplete
        max_abs = ds.dit.sel(name, stat="max_abs").values
        median_abs = ds.dit.sel(name, stat="median_abs").values
        m = np.nanmean(stats, axis=(0, 1))
        order = np.argsort(m)[::-1]
        top = [int(c) for c in order[:k]]
        layer_median = float(np.nanmedian(median_abs))
        peak = np.nanmax(max_abs, axis=(0, 1))
        sun = [int(c) for c in np.nonzero((peak > sun_abs) & (peak >= sun_ratio * layer_median))[0]]
        per_sample = [set(np.argsort(np.nanmean(stats[i], 0))[::-1][:k].tolist()) for i in range(stats.shape[0])
                      if np.isfinite(stats[i]).any()]
        per_step = [set(np.argsort(np.nanmean(stats[:, s], 0))[::-1][:k].tolist()) for s in range(stats.shape[1])
                    if np.isfinite(stats[:, s]).any()]
        per_name[name] = dict(top=top, top_values=[float(m[c]) for c in top], median=float(np.median(m)),
                              ratio=float(m[top[0]] / np.median(m)), max_abs=float(np.nanmax(peak)),
                              layer_median_abs=layer_median, sun=sun,
                              jaccard_prompts=_mean_pairwise(per_sample), jaccard_steps=_mean_pairwise(per_step))
        mean_abs[name] = m
        tops.setdefault(name.split(".")[2], []).append(top)
    jl = {stream: float(np.mean([_jaccard(a, b) for a, b in zip(t, t[1:])])) if len(t) > 1 else 1.0
          for stream, t in tops.items()}
    return Detection(k=k, per_name=per_name, jaccard_layers=jl, mean_abs=mean_abs,
                     params=dict(names=names, k=k, sun_abs=sun_abs, sun_ratio=sun_ratio))
