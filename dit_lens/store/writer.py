"""Writing a recording into a store: everything that touches zarr arrays and chunks (the seam for another backend).

    StoreWriter.check_new(url, storage_options)   raise where ``create`` would for the place (before a recording)
    StoreWriter.create(url, layout, storage_options, timeout, threads)   a new store's template, and a writer of it
    StoreWriter.resume(url, layout, storage_options, timeout, threads)   a writer of an existing store recorded the
                                   same way (``threads``: how many encode chunks and write files at once)
    StoreWriter                    what the recorder calls, from one thread, per batch of samples:
      .done()                      which samples are complete (their every unit and image flagged)
      .data(samples, step, name, value)   one name's value at one step, (samples, tokens, channels)
      .commit(samples, step, stats, nonfinite, timestep)   a step's per-channel statistics {name: (4, samples,
                                   channels)}, its inf/nan count and its timestep, once its data is queued
      .image(samples, images)      the batch's final images, uint8 (samples, H, W, 3)
      .flush(samples)              the batch's statistics, timesteps and counts, then its ``complete`` flags (and
                                   ``image_complete``, for the images given since the last flush)
      .nonfinite                   [(samples, step, count)] of steps that held inf/nan values
      .stored                      samples this writer flagged complete and saw stored (what a failure leaves)
      .close(abandon=False)        wait for every write; raise the first error (abandon: drop queued writes)

A backend that stores recordings elsewhere implements the same methods (see docs/extending.md). This one writes
whole chunks only: a variable's layer group once all its recorded layers for a (batch, step) arrived, encoded here
and stored by ``ChunkWriter`` (concurrently, on an I/O thread); statistics, timesteps and flags once per batch, one
chunk per sample row, after the batch's data. A flag is written only after every chunk it vouches for is stored.
Each round of chunk writes is bounded by ``timeout`` seconds (None: unbounded); zarr's own calls by its
``async.timeout`` setting, which ``record`` sets to the same bound.
"""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import StoreError
from ._chunks import chunk_writer
from .schema import Layout, check_new, compressors, create, open_group, read_layout

__all__ = ["StoreWriter"]

_RESUME_KEYS = ("prompts", "seeds", "step_index", "names", "mode", "encoding", "cfg", "tokens")
# the run's identity in the store's attributes: what must match for a resumed recording to be the same experiment
_RUN_KEYS = ("config_hash", "weights_hash", "scheduler_hash", "num_inference_steps", "pipeline_kwargs",
             "dit_lens_version")


class StoreWriter:
    def __init__(self, group, layout: Layout, timeout: float | None = None, threads: int = 1):
        self.group, self.layout, self.timeout = group, layout, timeout
        # chunks encoded (and a local disk's files written) ``threads`` at a time; one: on the writer's own thread
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="dit-lens-encode") if threads > 1 else None
        self.nonfinite: list = []
        self._stored: list = []  # samples whose complete flags this writer saw stored
        self._flagged: list = []  # (samples, futures of the rounds that store their flags), not yet seen stored
        self.layer_pos = {name: i for i, name in enumerate(layout.layers)}
        self.step_pos = {s: i for i, s in enumerate(layout.step_index)}
        Lc = layout.layers_per_chunk
        self.groups = {}  # (var, group index) -> set of recorded layer positions in it
        for var, layers in layout.variables().items():
            for x in layers:
                pos = self.layer_pos[x]
                self.groups.setdefault((var, pos // Lc), set()).add(pos)
        self._values: dict = {}  # (var, group) -> {layer position: (rows, tokens, channels)}
        self._blocks: dict = {}  # (shape, dtype) -> one block reused for every chunk group of that shape (fresh
        # memory for each costs page faults: 4.6 vs 0.3 ms to lay out a step of 6.3 MB, measured)
        self._arrays: dict = {}  # var -> zarr array
        self._chunk_writers: dict = {}  # var -> ChunkWriter (or None: write through zarr)
        self._steps: list = []  # committed steps of the batch: (step position, timestep, nonfinite, stats)
        self._imaged: list = []  # samples whose image chunks are queued: flagged with the batch, after a wait

    @staticmethod
    def check_new(url: str, storage_options: dict | None = None) -> None:
        check_new(url, storage_options)

    @classmethod
    def create(cls, url: str, layout: Layout, storage_options: dict | None = None,
               timeout: float | None = None, threads: int = 1) -> "StoreWriter":
        create(url, layout, storage_options)
        return cls(open_group(url, storage_options), layout, timeout, threads)

    @classmethod
    def resume(cls, url: str, layout: Layout, storage_options: dict | None = None,
               timeout: float | None = None, threads: int = 1) -> "StoreWriter":
        """A writer of the store at ``url``, which must have been recorded the same way as ``layout``: the same
        samples, steps, names, mode, encoding and branch (and compression, when ``layout`` names one: None takes
        the store's), and the same run (model config, weights, scheduler, pipeline arguments, steps, dit-lens
        version); every difference is listed in the refusal."""
        group = open_group(url, storage_options)
        old = read_layout(group)
        diffs = [f"{key}: {getattr(old, key)!r:.80} in the store, {getattr(layout, key)!r:.80} now"
                 for key in _RESUME_KEYS if getattr(old, key) != getattr(layout, key)]
        if layout.compression not in (None, old.compression):  # None: the store's own
            diffs.append(f"compression: {old.compression!r} in the store, {layout.compression!r} now")
        for key in _RUN_KEYS:
            before, now = old.attrs.get(key), layout.attrs.get(key)
            if key == "pipeline_kwargs":
                before, now = json.loads(before or "{}"), json.loads(now or "{}")
                diffs += [f"pipeline argument {k}: {before.get(k)!r:.80} in the store, {now.get(k)!r:.80} now"
                          for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
            elif key in old.attrs and before != now:
                label = {"config_hash": "model config (hash)", "weights_hash": "weights (hash)",
                         "scheduler_hash": "scheduler (hash)"}.get(key, key)
                diffs.append(f"{label}: {before!r} in the store, {now!r} now")
        if diffs:
            raise StoreError(f"cannot resume {url}: this recording differs from the one that made it — "
                             + "; ".join(diffs))
        # its chunks were laid out and compressed when it was made: write them the same way
        return cls(group, dataclasses.replace(layout, layers_per_chunk=old.layers_per_chunk,
                                              compression=old.compression), timeout, threads)

    def done(self) -> np.ndarray:
        done = np.asarray(self.group["complete"][:]).all(1)
        if "image_complete" in self.group:
            done &= np.asarray(self.group["image_complete"][:])
        return done

    def _array(self, var):
        if var not in self._arrays:  # opening an array reads its metadata from the store: once per writer
            self._arrays[var] = self.group[var]
        return self._arrays[var]

    def _chunks(self, var):
        """``var``'s ChunkWriter, or None where its codec needs zarr's own write path."""
        if var not in self._chunk_writers:
            self._chunk_writers[var] = chunk_writer(self._array(var), self.timeout, self._pool)
        return self._chunk_writers[var]

    def _wait(self) -> None:
        for writer in self._chunk_writers.values():
            if writer is not None:
                writer.wait()
        self._stored += [s for samples, _ in self._flagged for s in samples]
        self._flagged = []

    def _rows(self, var, samples, block, rest=()) -> list:
        """``var[samples, *rest] = block`` where each sample's part is one whole chunk: encoded here and handed to
        the store (zarr's write path, one call when the samples are contiguous, for codecs the direct path lacks)."""
        arr, writer = self._array(var), self._chunks(var)
        if writer is not None:
            at = tuple(i.start // c if isinstance(i, slice) else i // c for i, c in zip(rest, arr.chunks[1:]))
            at += (0,) * (arr.ndim - 1 - len(at))
            ints = [axis for axis, i in enumerate(rest, 1) if not isinstance(i, slice)]  # dims the block lacks
            return writer.write_many([((sample, *at), np.expand_dims(np.asarray(block[r]), [0, *ints]))
                                      for r, sample in enumerate(samples)])
        if samples == list(range(samples[0], samples[0] + len(samples))):
            arr[(slice(samples[0], samples[0] + len(samples)), *rest)] = block
        else:
            for r, sample in enumerate(samples):
                arr[(sample, *rest)] = block[r]
        return []  # stored already: zarr's write path returns when its chunks are in the store

    def _where(self, name) -> tuple:
        """A canonical name's variable ("{stream}.{site}") and layer position in the store."""
        fam, i, stream, site = name.split(".")
        return f"{stream}.{site}", self.layer_pos[f"{fam}.{i}"]

    def data(self, samples, step, name, value) -> None:
        (var, pos), s = self._where(name), self.step_pos[step]
        Lc = self.layout.layers_per_chunk
        key = (var, pos // Lc)
        got = self._values.setdefault(key, {})
        got[pos] = value
        if set(got) == self.groups[key]:  # the layer group is whole: write it as whole chunks
            arr = self._array(var)
            lo, hi = key[1] * Lc, min((key[1] + 1) * Lc, arr.shape[2])
            shape = (len(samples), hi - lo) + value.shape[1:]
            block = self._blocks.get((shape, arr.dtype))
            if block is None:
                block = self._blocks[(shape, arr.dtype)] = np.empty(shape, dtype=arr.dtype)
            for p in range(lo, hi):  # encoded before the block is used again; layers not recorded: the fill value
                block[:, p - lo] = got.get(p, arr.fill_value)
            # chunks (sample, step, layer group, all tokens, all channels)
            self._rows(var, samples, block, (s, slice(lo, hi)))
            del self._values[key]

    def commit(self, samples, step, stats: dict, nonfinite: int, timestep: float) -> None:
        """A step's data is written or queued; its statistics, count and timestep wait for ``flush``."""
        if nonfinite:
            self.nonfinite.append((samples, step, nonfinite))
        per_var: dict = {}
        for name, v in stats.items():
            var, pos = self._where(name)
            per_var.setdefault(var, {})[pos] = v
        self._steps.append((self.step_pos[step], timestep, nonfinite, per_var))

    def flush(self, samples) -> None:
        """Write the batch's statistics, timesteps and non-finite counts for all its recorded steps, then its
        ``complete`` flags: per sample, one chunk of each, after every other chunk of the batch is in the store."""
        n, S = len(samples), self.layout.steps
        done = np.zeros((n, S), bool)
        t = np.full((n, S), np.nan, np.float32)
        bad = np.zeros((n, S), np.int64)
        stats = {}
        for s, timestep, nonfinite, per_var in self._steps:
            done[:, s], t[:, s], bad[:, s] = True, timestep, nonfinite
            for var, per_layer in per_var.items():
                if var not in stats:
                    stats[var] = np.full((n,) + self._array(f"{var}.stats").shape[1:], np.nan, np.float32)
                for p, v in per_layer.items():
                    stats[var][:, s, p] = v.transpose(1, 0, 2)
        self._steps = []
        for var, block in stats.items():
            self._rows(f"{var}.stats", samples, block)
        self._rows("timestep", samples, t)
        self._rows("nonfinite", samples, bad)
        self._wait()  # data, images, statistics: all in the store before the flags that vouch for them
        if self._imaged:  # both kinds of flag in one round of writes
            self._rows("image_complete", self._imaged, np.ones(len(self._imaged), bool))
            self._imaged = []
        rounds = self._rows("complete", samples, done)
        self._flagged.append(([s for s, row in zip(samples, done) if row.all()], rounds))

    @property
    def stored(self) -> list:
        """Samples whose complete flags this writer wrote and the store took (what a failure leaves complete)."""
        return self._stored + [s for samples, rounds in self._flagged
                               if all(f.done() and not f.cancelled() and f.exception() is None for f in rounds)
                               for s in samples]

    def image(self, samples, images) -> None:
        if "image_complete" not in self.group:
            _ensure_images(self.group, len(self.layout.prompts), images.shape[1:])
        self._rows("image", samples, images)
        self._imaged += list(samples)  # flagged by ``flush``, once the image is in the store

    def close(self, abandon: bool = False) -> None:
        """Wait for every queued write and stop the I/O threads; raise the first error. ``abandon`` (the recording
        failed): drop the queued writes instead of waiting for them; no flag of theirs was queued after them."""
        error = None
        for writer in self._chunk_writers.values():
            if writer is not None:
                try:
                    writer.close(abandon)
                except BaseException as e:  # noqa: BLE001 - every writer is closed; the first error is raised
                    error = error or e
        if self._pool is not None:  # its tasks ran inside the writers' rounds, all ended or dropped by now
            self._pool.shutdown(wait=not abandon, cancel_futures=True)
        if error is not None:
            raise error
        if not abandon:  # every flag round was waited for; abandoned ones are judged by their futures (``stored``)
            self._stored += [s for samples, _ in self._flagged for s in samples]
            self._flagged = []


def _ensure_images(group, n: int, shape: tuple) -> None:
    """Create ``image`` (sample, y, x, rgb) uint8 and ``image_complete`` (sample) the first time a writer has images
    of ``shape`` (H, W, 3): the run's own output decides it, not a guess made before the run. Writers sharing a
    store may race to create them; the loser checks that the shapes agree."""
    import zarr

    H, W, _ = shape
    try:
        group.create_array("image", shape=(n, H, W, 3), chunks=(1, H, W, 3), dtype="uint8", fill_value=0,
                           compressors=compressors(), dimension_names=("sample", "y", "x", "rgb"))
        group.create_array("image_complete", shape=(n,), chunks=(1,), dtype="bool", fill_value=False,
                           compressors=compressors(), dimension_names=("sample",))
    except zarr.errors.ContainsArrayError:
        pass
    have = tuple(group["image"].shape)
    if have != (n, H, W, 3):
        raise StoreError(f"this store's images are {have[1:]}, this run made {tuple(shape)}")
