"""Cluster: image tokens restricted to the massive channels, k-means with K clusters, per layer and step -> token
label maps on the latent grid; controls with all, random and lowest-statistic channels. Runs offline from a full
store of any model.

    cluster(store, names=..., k=4, K=2, steps=None, masks=None, scorer=None, detection=None) -> Clustering
        masks: subject masks of the store's complete samples: image files or a bool array, at image resolution or
        on the token grid (dit_lens.scoring.load_masks); default: the scorer's masks of the stored images (the
        model's own scorer, e.g. the embedded model's evaluator), else none. With masks each label map is scored by
        best-assignment IoU against its sample's mask; without, only by agreement: across consecutive steps (same
        layer) and consecutive layers (same step), and with the all-channel clustering.
    Clustering.figure(out)   label maps per layer for a few samples (next to their masks, when there are masks)
    best_iou(labels, mask, K) / agreement(a, b, K)   the two scores
    subject_tokens(x, grid)   per row of ``x`` (rows, tokens, channels): 2-means of the tokens, and the tokens
                              outside the background cluster (the one most of the grid's border falls in), as
                              transport's spatial="cluster" picks them
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RecipeError

__all__ = ["CONTROLS", "Clustering", "cluster", "best_iou", "agreement", "subject_tokens"]

CONTROLS = ("massive", "all", "random", "low")


def best_iou(labels: np.ndarray, mask: np.ndarray, K: int) -> float:
    """Best IoU between the subject mask and any union of clusters (the best assignment of clusters to subject)."""
    best = 0.0
    for r in range(1, K):
        for subset in itertools.combinations(range(K), r):
            pred = np.isin(labels, subset)
            union = (pred | mask).sum()
            best = max(best, float((pred & mask).sum() / union) if union else 0.0)
    return best


def agreement(a: np.ndarray, b: np.ndarray, K: int) -> float:
    """Fraction of tokens on which two label maps agree under the best matching of their K cluster labels."""
    return max(float(np.mean(np.asarray(perm)[a] == b)) for perm in itertools.permutations(range(K)))


def subject_tokens(x, grid: tuple, iterations: int = 50) -> np.ndarray:
    """(rows, tokens) bool: per row of ``x`` (rows, tokens, channels), 2-means of its tokens, and the cluster that
    is not the background (the one most of the token grid's border falls in). All rows at once (Lloyd's algorithm,
    farthest-point start): scikit-learn's KMeans costs ~65 ms a row here in set-up alone, and transport clusters
    every row of every step and name."""
    x = np.asarray(x, dtype=np.float64)
    rows, tokens = x.shape[:2]
    if tokens != grid[0] * grid[1]:
        raise RecipeError(f"subject_tokens: {tokens} tokens do not fill the {grid[0]} x {grid[1]} grid")
    r = np.arange(rows)
    a = x[r, ((x - x.mean(1, keepdims=True)) ** 2).sum(-1).argmax(1)]  # the token farthest from the mean
    b = x[r, ((x - a[:, None]) ** 2).sum(-1).argmax(1)]  # and the token farthest from it
    centres = np.stack([a, b], 1)  # (rows, 2, channels)
    for _ in range(iterations):
        labels = ((x[:, :, None] - centres[:, None]) ** 2).sum(-1).argmin(-1)  # (rows, tokens)
        new = np.stack([np.where(((labels == c).sum(1) > 0)[:, None],
                                 (x * (labels == c)[..., None]).sum(1) / np.maximum((labels == c).sum(1), 1)[:, None],
                                 centres[:, c]) for c in (0, 1)], 1)
        if np.array_equal(new, centres):
            break
        centres = new
    border = np.zeros(grid, bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    background = (labels[:, border.ravel()] == 1).mean(1) > 0.5  # per row: is cluster 1 the background?
    return labels != background[:, None].astype(labels.dtype)


@dataclass
class Clustering:
    iou: dict  # control -> name -> {mean, per_step} (with masks; else empty)
    summary: dict  # control -> mean IoU over names, steps, samples (with masks); "agreement" -> control -> ...
    params: dict
    labels: dict = field(repr=False, default_factory=dict)  # (name, step) -> (sample, rows, cols) massive labels
    masks: np.ndarray | None = field(repr=False, default=None)

    def to_dict(self) -> dict:
        return {"params": self.params, "summary": self.summary, "iou": self.iou}

    def describe(self) -> str:
        """One line: IoU per control with masks, agreement without."""
        if self.iou:
            return ", ".join(f"IoU {c} {self.summary[c]:.3f}" for c in CONTROLS)
        return ", ".join(f"{c} agree across steps {v['across_steps']:.2f}" for c, v in self.summary["agreement"].items()
                         if v["across_steps"] is not None)

    def figure(self, out, n: int = 4) -> Path:
        from ._figures import pyplot, save

        plt = pyplot()
        keys = list(self.labels)
        n = min(n, next(iter(self.labels.values())).shape[0])
        first = 0 if self.masks is None else 1
        fig, axes = plt.subplots(n, len(keys) + first, figsize=(1.3 * (len(keys) + first), 1.4 * n), squeeze=False)
        for i in range(n):
            if self.masks is not None:
                axes[i, 0].imshow(self.masks[i], cmap="gray")
                axes[i, 0].set_title("subject" if i == 0 else "", fontsize=6)
            for j, key in enumerate(keys):
                axes[i, j + first].imshow(self.labels[key][i], cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
                if i == 0:
                    axes[i, j + first].set_title(f"{key[0].rsplit('.', 2)[0]}\nstep {key[1]}", fontsize=6)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        return save(fig, out, "cluster_masks.png",
                    f"k-means (K={self.params['K']}) on the top-{self.params['k']} channels")


def _masks(ds, masks, scorer, done, grid) -> tuple:
    """(complete samples, rows, cols) subject masks, or None; and where they came from."""
    from .. import models
    from ..scoring import implements, load_masks, pool_masks, resolve_scorer

    if masks is not None:
        return load_masks(masks, int(done.sum()), grid), "argument"
    judge = resolve_scorer(scorer, models.for_pipeline(ds.attrs.get("pipeline_class", "")))
    if not implements(judge, "masks") or "image" not in ds:
        return None, None
    return pool_masks(judge.masks(ds.image.values[done]), grid), judge.name


def cluster(store, *, names: str = "*.*.img.resid_post", k: int = 4, K: int = 2, steps=None, masks=None,
            scorer=None, detection=None, random_seed: int = 0, storage_options: dict | None = None) -> Clustering:
    import xarray as xr
    from sklearn.cluster import KMeans

    from ..names import expand
    from ..store import open_store
    from .detect import detect

    ds = store if isinstance(store, xr.Dataset) else open_store(str(store), **(storage_options or {}))
    if K < 2:
        raise RecipeError(f"K={K}: clustering needs at least 2 clusters")
    chosen = expand(names, ds.dit.names)
    if any(".img." not in n for n in chosen):
        raise RecipeError("cluster works on image-stream names (*.*.img.*)")
    if ds.attrs.get("mode") != "full" or "token_row" not in ds.coords:
        raise RecipeError("cluster needs a full store with a token grid (record without --stats-only)")
    C = ds.sizes["channel"]
    if not 1 <= k <= C // 2:
        raise RecipeError(f"k={k} out of range 1..{C // 2}")
    grid = (int(ds.token_row.max()) + 1, int(ds.token_col.max()) + 1)
    if "token_frame" in ds.coords:  # video: the frames stacked along the rows
        grid = ((int(ds.token_frame.max()) + 1) * grid[0], grid[1])
    if ds.sizes["img_token"] != grid[0] * grid[1]:
        raise RecipeError("cluster needs every image token (the store holds a subset)")
    done = ds.complete.values.all(1)
    if not done.any():
        raise RecipeError("the store has no complete sample")
    step_values = list(ds.step.values) if steps is None else list(steps)
    missing = [s for s in step_values if s not in set(ds.step.values.tolist())]
    if missing:
        raise RecipeError(f"steps {missing} are not in the store (it holds {ds.step.values.tolist()})")
    masks, masks_from = _masks(ds, masks, scorer, done, grid)
    det = detection or detect(ds, names=chosen, k=k)
    rng = np.random.default_rng(random_seed)
    iou: dict = {c: {} for c in CONTROLS} if masks is not None else {}
    all_labels: dict = {}  # (control, name, step index) -> (sample, rows, cols)
    from .disrupt import progress

    for name in progress(chosen, "cluster"):
        sets = {"massive": det.massive(name), "all": list(range(C)), "low": det.low(name, k),
                "random": det.random(name, k, rng)}
        x = ds.dit.sel(name).sel(step=step_values).values[done]  # (sample, step, tokens, channels)
        for control, chans in sets.items():
            per_step = []
            for si in range(len(step_values)):
                labels = np.stack([KMeans(n_clusters=K, n_init=2, random_state=random_seed)
                                   .fit_predict(x[i, si][:, chans]).reshape(grid) for i in range(x.shape[0])])
                all_labels[control, name, si] = labels
                if masks is not None:
                    per_step.append(float(np.mean([best_iou(lab, m, K) for lab, m in zip(labels, masks)])))
            if masks is not None:
                iou[control][name] = {"mean": float(np.mean(per_step)), "per_step": per_step}
    summary: dict = {}
    if masks is not None:
        summary = {c: float(np.mean([v["mean"] for v in iou[c].values()])) for c in CONTROLS}
        best = max(((n, v["mean"]) for n, v in iou["massive"].items()), key=lambda t: t[1])
        summary["best_layer_massive"] = {"name": best[0], "iou": best[1]}
    summary["agreement"] = _agreements(all_labels, chosen, len(step_values), K)
    shown = sorted({0, len(step_values) // 2, len(step_values) - 1})
    labels_out = {(n, int(step_values[si])): all_labels["massive", n, si] for n in chosen for si in shown}
    params = dict(names=names, k=k, K=K, steps=[int(s) for s in step_values], random_seed=random_seed,
                  samples=int(done.sum()), masks=masks_from)
    return Clustering(iou=iou, summary=summary, params=params, labels=labels_out, masks=masks)


def _agreements(labels: dict, names: list, n_steps: int, K: int) -> dict:
    """Per control: mean label agreement across consecutive steps, consecutive layers, and with all channels."""
    def mean(pairs):
        scores = [agreement(a, b, K) for x, y in pairs for a, b in zip(labels[x], labels[y])]
        return float(np.mean(scores)) if scores else None

    out = {}
    for control in CONTROLS:
        out[control] = dict(
            across_steps=mean([((control, n, s), (control, n, s + 1)) for n in names for s in range(n_steps - 1)]),
            across_layers=mean([((control, a, s), (control, b, s)) for a, b in zip(names, names[1:])
                                for s in range(n_steps)]),
            with_all_channels=None if control == "all" else mean([((control, n, s), ("all", n, s)) for n in names
                                                                  for s in range(n_steps)]))
    return out
