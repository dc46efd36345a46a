"""Cluster: image tokens restricted to the massive channels, k-means with K clusters, per layer and step -> token
masks on the latent grid, scored by best-assignment IoU against subject masks; controls with all, random and
lowest-statistic channels. Runs offline from a full store.

    cluster(store, names=..., k=4, K=2, steps=None, masks=None, detection=None) -> Clustering
        masks: (sample, rows, cols) booleans on the token grid; default (embedded-model stores): the subject mask the
        evaluator segments from each stored image, pooled to the token grid
    Clustering.figure(out)   mask overlays per layer for a few samples
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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


def subject_masks(images: np.ndarray, grid) -> np.ndarray:
    """Evaluator subject masks of uint8 images (n, H, W, 3), pooled to the token grid by majority."""
    from ..tiny.evaluate import analyse

    rows, cols = grid
    out = []
    for img in images:
        m = analyse(img).mask.astype(np.float32)
        ph, pw = m.shape[0] // rows, m.shape[1] // cols
        out.append(m.reshape(rows, ph, cols, pw).mean((1, 3)) >= 0.5)
    return np.stack(out)


@dataclass
class Clustering:
    iou: dict  # control -> name -> {mean, per_step}
    summary: dict  # control -> mean IoU over names, steps, samples
    params: dict
    labels: dict = field(repr=False, default_factory=dict)  # (name, step) -> (sample, rows, cols) massive labels
    masks: np.ndarray | None = field(repr=False, default=None)

    def to_dict(self) -> dict:
        return {"params": self.params, "summary": self.summary, "iou": self.iou}

    def figure(self, out, n: int = 4) -> Path:
        from ._figures import pyplot, save

        plt = pyplot()

        keys = list(self.labels)
        n = min(n, self.masks.shape[0])
        fig, axes = plt.subplots(n, len(keys) + 1, figsize=(1.3 * (len(keys) + 1), 1.4 * n), squeeze=False)
        for i in range(n):
            axes[i, 0].imshow(self.masks[i], cmap="gray")
            axes[i, 0].set_title("subject" if i == 0 else "", fontsize=6)
            for j, key in enumerate(keys):
                axes[i, j + 1].imshow(self.labels[key][i], cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
                if i == 0:
                    axes[i, j + 1].set_title(f"{key[0].rsplit('.', 2)[0]}\nstep {key[1]}", fontsize=6)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        return save(fig, out, "cluster_masks.png",
                    f"k-means (K={self.params['K']}) on the top-{self.params['k']} channels")


def cluster(store, *, names: str = "*.*.img.resid_post", k: int = 4, K: int = 2, steps=None, masks=None,
            detection=None, random_seed: int = 0, storage_options: dict | None = None) -> Clustering:
    import xarray as xr
    from sklearn.cluster import KMeans

    from ..names import expand
    from ..store import open_store
    from .detect import detect

    ds = store if isinstance(store, xr.Dataset) else open_store(str(store), **(storage_options or {}))
    if K < 2:
        raise ValueError(f"K={K}: clustering needs at least 2 clusters")
    chosen = expand(names, ds.dit.names)
    if any(".img." not in n for n in chosen):
        raise ValueError("cluster works on image-stream names (*.*.img.*)")
    if ds.attrs.get("mode") != "full" or "token_row" not in ds.coords:
        raise ValueError("cluster needs a full store with a token grid (record without --stats-only)")
    C = ds.sizes["channel"]
    if not 1 <= k <= C // 2:
        raise ValueError(f"k={k} out of range 1..{C // 2}")
    grid = (int(ds.token_row.max()) + 1, int(ds.token_col.max()) + 1)
    if ds.sizes["img_token"] != grid[0] * grid[1]:
        raise ValueError("cluster needs every image token (the store holds a subset)")
    done = ds.complete.values.all(1)
    if masks is None:
        if "image" not in ds:
            raise ValueError("no masks given and the store has no images to segment")
        masks = subject_masks(ds.image.values[done], grid)
    masks = np.asarray(masks, bool)
    if masks.shape != (int(done.sum()),) + grid:
        raise ValueError(f"masks of shape {masks.shape}; expected (complete samples, rows, cols) = "
                         f"{(int(done.sum()),) + grid}")
    det = detection or detect(ds, names=chosen, k=k)
    step_values = list(ds.step.values) if steps is None else list(steps)
    missing = [s for s in step_values if s not in set(ds.step.values.tolist())]
    if missing:
        raise ValueError(f"steps {missing} are not in the store (it holds {ds.step.values.tolist()})")
    rng = np.random.default_rng(random_seed)
    iou: dict = {c: {} for c in CONTROLS}
    labels_out = {}
    for name in chosen:
        sets = {"massive": det.massive(name), "all": list(range(C)), "low": det.low(name, k),
                "random": sorted(rng.choice([c for c in range(C) if c not in det.massive(name)], k, replace=False))}
        x = ds.dit.sel(name).sel(step=step_values).values[done]  # (sample, step, tokens, channels)
        for control, chans in sets.items():
            per_step = []
            for si, s in enumerate(step_values):
                scores = []
                for i in range(x.shape[0]):
                    feats = x[i, si][:, chans]
                    lab = KMeans(n_clusters=K, n_init=2, random_state=random_seed).fit_predict(feats)
                    lab = lab.reshape(grid)
                    scores.append(best_iou(lab, masks[i], K))
                    if control == "massive" and si in (0, len(step_values) // 2, len(step_values) - 1):
                        labels_out.setdefault((name, int(s)), np.zeros((x.shape[0],) + grid, int))[i] = lab
                per_step.append(float(np.mean(scores)))
            iou[control][name] = {"mean": float(np.mean(per_step)), "per_step": per_step}
    summary = {c: float(np.mean([v["mean"] for v in iou[c].values()])) for c in CONTROLS}
    best = max(((n, v["mean"]) for n, v in iou["massive"].items()), key=lambda t: t[1])
    summary["best_layer_massive"] = {"name": best[0], "iou": best[1]}
    params = dict(names=names, k=k, K=K, steps=[int(s) for s in step_values], random_seed=random_seed,
                  samples=int(done.sum()))
    return Clustering(iou=iou, summary=summary, params=params, labels=labels_out, masks=masks)
