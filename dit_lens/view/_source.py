"""What the explorer shows, read lazily: each answer reads the few chunks it needs, never a whole variable.

    StoreSource(url, storage_options)   a full or stats-only store
      .info()                           names, steps, samples (prompt, seed, complete), channels, grid, mode
      .heatmap(name, step, sample, channel=None)   |x| over the token grid (one channel, or the mean over channels)
      .profile(name, step, sample, k)   per-channel mean |x| over tokens (full) or a statistic (stats-only), top-k
      .consistency(name, k)             top-k channels per step (over samples) and per sample (over steps), from
                                        the store's statistics, and how often each channel is in a top-k
      .clusters(name, step, sample, k)  K=2 k-means of the tokens on the top-k channels, and IoU with the subject
                                        mask where the model's scorer gives one
      .image(sample)                    the stored image as PNG bytes
    ReportSource(folder)                a recipe's output folder (report.json) or a demo folder (scores.json,
                                        report.md): its report as HTML, its figures by name
    open_source(path, storage_options)  the one that fits the path
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np

from ..errors import ArgumentError, StoreError

__all__ = ["StoreSource", "ReportSource", "open_source"]


def _index(label: str, value, size: int) -> int:
    try:
        i = int(value)
    except (TypeError, ValueError):
        raise ArgumentError(f"{label}={value!r} is not an integer") from None
    if not 0 <= i < size:
        raise ArgumentError(f"{label}={i} out of range 0..{size - 1}")
    return i


class StoreSource:
    kind = "store"

    def __init__(self, url: str, storage_options: dict | None = None):
        import zarr

        from ..store import open_store
        from ..store._checked import checked_store

        self.url = url
        self.ds = open_store(url, complete_only=False, **(storage_options or {}))  # coordinates and attributes
        # values are read through zarr itself (every chunk still checked): xarray's lazy selection over a store of
        # thousands of chunks costs more than the chunk it reads
        self.g = zarr.open_group(checked_store(url, storage_options or {}), mode="r", zarr_format=3)
        self.full = self.ds.attrs.get("mode") == "full"
        self.encoding = self.ds.attrs.get("encoding", "float32")
        self.layers = [str(v) for v in self.ds.layer.values]
        self.stats = [str(v) for v in self.ds.stat.values] if "stat" in self.ds.coords else []
        self.names = self.ds.dit.names
        if not self.names:
            raise StoreError(f"{url} holds no recorded names")
        self._masks: dict = {}
        self._flags()
        self._judge = None
        self._warm = threading.Thread(target=self._scorer, daemon=True, name="dit-lens-view-warm")
        self._warm.start()  # the model's scorer imports its model package: seconds, once, not in a view

    def _scorer(self):
        if self._judge is None:
            from .. import models
            from ..scoring import resolve_scorer

            self._judge = resolve_scorer(None, models.for_pipeline(self.ds.attrs.get("pipeline_class", ""))) or False
        return self._judge or None

    def _flags(self) -> None:
        """The complete flags, read once (and again with every ``info()``: a store may still be recording)."""
        self.complete = np.asarray(self.g["complete"][:], bool)
        self.imaged = np.asarray(self.g["image_complete"][:], bool) if "image" in self.ds else None

    def _name(self, name: str) -> str:
        if name not in self.names:
            raise ArgumentError(f"{name!r} is not in this store; it holds {self.names[:8]}"
                                f"{' ...' if len(self.names) > 8 else ''}")
        return name

    def _where(self, name: str) -> tuple[str, int]:
        fam, i, stream, site = self._name(name).split(".")
        return f"{stream}.{site}", self.layers.index(f"{fam}.{i}")

    def _at(self, step, sample) -> tuple[int, int]:
        return _index("step", step, self.ds.sizes["step"]), _index("sample", sample, self.ds.sizes["sample"])

    def _grid(self) -> tuple[int, int] | None:
        if "token_row" not in self.ds.coords:
            return None
        rows, cols = int(self.ds.token_row.max()) + 1, int(self.ds.token_col.max()) + 1
        if "token_frame" in self.ds.coords:  # video: frames stacked along the rows
            rows *= int(self.ds.token_frame.max()) + 1
        return rows, cols

    def info(self) -> dict:
        ds = self.ds
        self._flags()
        complete = self.complete
        return dict(kind="store", url=self.url, mode=ds.attrs.get("mode"), names=self.names,
                    steps=[int(s) for s in ds.step.values], channels=int(ds.sizes["channel"]),
                    samples=[dict(prompt=str(p), seed=int(s), complete=int(c.sum()), of=int(c.size),
                                  steps=c.astype(int).tolist())
                             for p, s, c in zip(ds.prompt.values, ds.seed.values, complete)],
                    grid=self._grid(), image="image" in ds, model_class=ds.attrs.get("model_class"),
                    stats=self.stats,
                    img_tokens=int(ds.sizes.get("img_token", 0)))

    def _unit(self, name: str, step: int, sample: int) -> np.ndarray:
        """(tokens, channels) of one unit: the chunk that holds it is the only one read."""
        if not self.full:
            raise ArgumentError("this store holds statistics only (recorded with stats_only): no token values")
        if not self.complete[sample, step]:
            raise StoreError(f"sample {sample} step {self.ds.step.values[step]} is not complete in this store: "
                             f"never recorded, or its recording was interrupted (resume it to fill it)")
        from ..store.schema import decode

        var, layer = self._where(name)
        return np.asarray(decode(self.g[var][sample, step, layer], encoding=self.encoding), np.float32)

    def heatmap(self, name, step, sample, channel=None) -> dict:
        step, sample = self._at(step, sample)
        x = self._unit(name, step, sample)
        grid = self._grid()
        if grid is None or grid[0] * grid[1] != x.shape[0]:
            raise StoreError(f"{name}: {x.shape[0]} stored tokens do not fill the token grid {grid}")
        if channel in (None, "", "mean"):
            values, what = np.abs(x).mean(1), "mean |x| over channels"
        else:
            c = _index("channel", channel, x.shape[1])
            values, what = np.abs(x[:, c]), f"|x| of channel {c}"
        return dict(rows=grid[0], cols=grid[1], values=values.round(5).tolist(), what=what,
                    max=float(values.max()), min=float(values.min()))

    def profile(self, name, step, sample, k=8, stat="mean_abs") -> dict:
        step, sample = self._at(step, sample)
        k = _index("k", k, self.ds.sizes["channel"] + 1)
        if self.full and self.complete[sample, step]:
            m, what = np.abs(self._unit(name, step, sample)).mean(0), "mean |x| over tokens"
        else:
            if stat not in self.stats:
                raise ArgumentError(f"stat={stat!r}: one of {self.stats}")
            if not self.complete[sample, step]:
                raise StoreError(f"sample {sample} step {self.ds.step.values[step]} is not complete in this store")
            var, layer = self._where(name)
            m = np.asarray(self.g[f"{var}.stats"][sample, step, layer, self.stats.index(stat)], np.float64)
            what = f"{stat} (stored statistic)"
        top = [int(c) for c in np.argsort(-np.nan_to_num(m, nan=-np.inf))[:k]]
        med = float(np.nanmedian(m))
        return dict(values=np.nan_to_num(m).round(5).tolist(), top=top, what=what, median=med,
                    top1_over_median=float(m[top[0]] / med) if med > 0 else None)

    def consistency(self, name, k=4) -> dict:
        """From the mean |x| statistic (every store has it): small, read whole for one name."""
        k = _index("k", k, self.ds.sizes["channel"] + 1)
        var, layer = self._where(name)
        m = np.asarray(self.g[f"{var}.stats"][:, :, layer, self.stats.index("mean_abs")], np.float64)
        done = self.complete & np.isfinite(m).all(-1)  # (sample, step)
        m[~done] = np.nan
        top = np.argsort(-np.nan_to_num(m, nan=-np.inf), axis=-1)[..., :k]  # (sample, step, k)
        counts = np.zeros(m.shape[-1], int)
        for s, t in zip(*np.nonzero(done)):
            counts[top[s, t]] += 1
        per_step = [sorted(np.argsort(-np.nanmean(m[:, t], 0))[:k].tolist()) if done[:, t].any() else None
                    for t in range(m.shape[1])]
        per_sample = [sorted(np.argsort(-np.nanmean(m[s], 0))[:k].tolist()) if done[s].any() else None
                      for s in range(m.shape[0])]
        order = np.argsort(-counts)[: max(k * 3, 8)]
        return dict(k=k, units=int(done.sum()), per_step=per_step, per_sample=per_sample,
                    frequent=[dict(channel=int(c), share=float(counts[c] / max(done.sum(), 1))) for c in order
                              if counts[c]])

    def clusters(self, name, step, sample, k=4) -> dict:
        from ..recipes.cluster import best_iou, subject_tokens

        step, sample = self._at(step, sample)
        x = self._unit(name, step, sample)
        chans = self.profile(name, step, sample, k)["top"]
        grid = self._grid()
        labels = subject_tokens(x[None, :, chans], grid)[0]
        mask = self._mask(sample, grid)
        iou = None if mask is None else best_iou(labels.reshape(grid).astype(int), mask, 2)
        return dict(rows=grid[0], cols=grid[1], channels=chans, subject=labels.astype(int).tolist(),
                    mask=None if mask is None else mask.astype(int).ravel().tolist(), iou=iou)

    def _mask(self, sample: int, grid) -> np.ndarray | None:
        """The subject mask of a stored image on the token grid, from the model's scorer (None without either)."""
        if sample not in self._masks:
            from ..scoring import implements, pool_masks

            mask = None
            if self.imaged is not None and self.imaged[sample]:
                self._warm.join()
                judge = self._scorer()
                if implements(judge, "masks"):
                    mask = pool_masks(judge.masks(np.asarray(self.g["image"][sample:sample + 1])), grid)[0]
            self._masks[sample] = mask
        return self._masks[sample]

    def image(self, sample) -> bytes:
        from PIL import Image

        sample = _index("sample", sample, self.ds.sizes["sample"])
        if self.imaged is None or not self.imaged[sample]:
            raise StoreError(f"sample {sample} has no stored image")
        buf = io.BytesIO()
        Image.fromarray(np.asarray(self.g["image"][sample], np.uint8)).save(buf, "PNG")
        return buf.getvalue()


class ReportSource:
    kind = "report"

    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.report = None
        for f in ("report.json", "scores.json"):
            if (self.folder / f).is_file():
                try:
                    self.report = json.loads((self.folder / f).read_text())
                except json.JSONDecodeError as e:
                    raise StoreError(f"{self.folder / f} is not valid JSON: {e}") from None
                self.file = f
                break
        if self.report is None:
            raise StoreError(f"{folder} holds neither a recipe's report.json nor a demo's scores.json")

    def info(self) -> dict:
        return dict(kind="report", folder=str(self.folder), file=self.file,
                    figures=sorted(p.name for p in self.folder.rglob("*.png")))

    def html(self) -> str:
        from ._render import report_html

        md = self.folder / "report.md"
        return report_html(self.report, md.read_text() if md.is_file() else None)

    def figure(self, name: str) -> bytes:
        path = (self.folder / name).resolve()
        if self.folder.resolve() not in path.parents or path.suffix != ".png" or not path.is_file():
            raise ArgumentError(f"no figure {name!r} in {self.folder}")
        return path.read_bytes()


def open_source(path: str, storage_options: dict | None = None):
    """A store (a zarr group: local or a URL) or a report folder, by what the path holds."""
    local = Path(path)
    if "://" not in path and local.is_dir() and not (local / "zarr.json").is_file():
        return ReportSource(path)
    if "://" not in path and not local.exists():
        raise StoreError(f"{path}: no such store or report folder")
    return StoreSource(path, storage_options)
