"""Recording: run a Lens over prompts x seeds and stream chosen names/steps into a store, crash-safely.

    record(lens, url, prompts, seeds=(0,), names=..., num_inference_steps=..., ...) -> url

The model thread reads each (name, step) inside the trace and puts it on a bounded queue; one background thread
encodes whole chunks and hands them to the store (``_chunks``) and, once every variable of a (sample, step) unit is
in the store, sets its ``complete`` flag. Memory is bounded by the queue, not by the number of prompts or steps.
Statistics (``STATS``, ``_stats``) are reduced on the model's thread and device before any transfer, and travel
with the step's commit message. ``resume=True`` regenerates exactly the samples with unflagged units.
Writers on disjoint ``samples`` of one store may run at once; overlapping ones are refused by claim files.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import socket
import threading
import time
import warnings

import numpy as np
import torch

from . import __version__
from ._chunks import chunk_writer
from ._stats import StepReducer
from .store import Layout, StoreError, create, ensure_images, open_group, read_layout, uint8_images

_STOP = object()


def config_hash(pipeline) -> str:
    cfg = dict(pipeline.transformer.config)
    blob = json.dumps({"pipeline": type(pipeline).__name__, "transformer": cfg}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _Writer(threading.Thread):
    """Writes whole chunks: a variable's layer group once all its recorded layers for a (batch, step) arrived;
    statistics, timesteps and ``complete`` flags once per batch (``flush``), one chunk per sample row, after the
    batch's data. The model thread never waits on compression (only on the queue)."""

    def __init__(self, group, layout: Layout, maxsize: int):
        super().__init__(daemon=True)
        self.group, self.layout = group, layout
        self.q: queue.Queue = queue.Queue(maxsize=maxsize)
        self.error: BaseException | None = None
        self.nonfinite: list = []
        self.layer_pos = {name: i for i, name in enumerate(layout.layers)}
        self.step_pos = {s: i for i, s in enumerate(layout.step_index)}
        Lc = layout.layers_per_chunk
        self.groups = {}  # (var, group index) -> set of recorded layer positions in it
        for var, layers in layout.variables().items():
            for x in layers:
                pos = self.layer_pos[x]
                self.groups.setdefault((var, pos // Lc), set()).add(pos)
        self._values: dict = {}  # (var, group) -> {layer position: (rows, tokens, channels)}
        self._arrays: dict = {}  # var -> zarr array
        self._chunk_writers: dict = {}  # var -> ChunkWriter (or None: write through zarr)
        self._steps: list = []  # committed steps of the batch: (step position, timestep, nonfinite, stats)

    def put(self, item) -> None:
        while True:
            if self.error is not None:
                raise StoreError(f"the store writer failed: {type(self.error).__name__}: {self.error}") \
                    from self.error
            try:
                self.q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        try:
            while (item := self.q.get()) is not _STOP:
                getattr(self, "_" + item[0])(*item[1:])
        except BaseException as e:  # noqa: BLE001 - reported to the model thread on its next put
            self.error = e
        finally:
            for writer in self._chunk_writers.values():
                if writer is not None:
                    try:
                        writer.close()
                    except BaseException as e:  # noqa: BLE001
                        self.error = self.error or e

    def _array(self, var):
        if var not in self._arrays:  # opening an array reads its metadata from the store: once per writer
            self._arrays[var] = self.group[var]
        return self._arrays[var]

    def _chunks(self, var):
        """``var``'s ChunkWriter, or None where its codec needs zarr's own write path."""
        if var not in self._chunk_writers:
            self._chunk_writers[var] = chunk_writer(self._array(var))
        return self._chunk_writers[var]

    def _wait(self) -> None:
        for writer in self._chunk_writers.values():
            if writer is not None:
                writer.wait()

    def _rows(self, var, samples, block, rest=()) -> None:
        """``var[samples, *rest] = block`` where each sample's part is one whole chunk: encoded here and handed to
        the store (zarr's write path, one call when the samples are contiguous, for codecs the direct path lacks)."""
        arr, writer = self._array(var), self._chunks(var)
        if writer is not None:
            at = tuple(i.start // c if isinstance(i, slice) else i // c for i, c in zip(rest, arr.chunks[1:]))
            at += (0,) * (arr.ndim - 1 - len(at))
            ints = [axis for axis, i in enumerate(rest, 1) if not isinstance(i, slice)]  # dims the block lacks
            writer.write_many([((sample, *at), np.expand_dims(np.asarray(block[r]), [0, *ints]))
                               for r, sample in enumerate(samples)])
        elif samples == list(range(samples[0], samples[0] + len(samples))):
            arr[(slice(samples[0], samples[0] + len(samples)), *rest)] = block
        else:
            for r, sample in enumerate(samples):
                arr[(sample, *rest)] = block[r]

    def _where(self, name) -> tuple:
        """A canonical name's variable ("{stream}.{site}") and layer position in the store."""
        fam, i, stream, site = name.split(".")
        return f"{stream}.{site}", self.layer_pos[f"{fam}.{i}"]

    def _data(self, samples, step, name, value):
        (var, pos), s = self._where(name), self.step_pos[step]
        Lc = self.layout.layers_per_chunk
        key = (var, pos // Lc)
        got = self._values.setdefault(key, {})
        got[pos] = value
        if set(got) == self.groups[key]:  # the layer group is whole: write it as whole chunks
            arr = self._array(var)
            lo, hi = key[1] * Lc, min((key[1] + 1) * Lc, arr.shape[2])
            block = np.full((len(samples), hi - lo) + value.shape[1:], arr.fill_value, dtype=arr.dtype)
            for p, v in got.items():
                block[:, p - lo] = v
            # chunks (sample, step, layer group, all tokens, all channels)
            self._rows(var, samples, block, (s, slice(lo, hi)))
            del self._values[key]

    def _commit(self, samples, step, step_stats):
        """A step's data is queued; its statistics, non-finite count and timestep (``StepStats``) and flags wait
        for ``_flush`` (one write per sample row)."""
        stats, nonfinite, timestep = step_stats.get()
        if nonfinite:
            self.nonfinite.append((samples, step, nonfinite))
        per_var: dict = {}
        for name, v in stats.items():
            var, pos = self._where(name)
            per_var.setdefault(var, {})[pos] = v
        self._steps.append((self.step_pos[step], timestep, nonfinite, per_var))

    def _flush(self, samples):
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
        self._rows("complete", samples, done)

    def _image(self, samples, images):
        if "image_complete" not in self.group:
            ensure_images(self.group, len(self.layout.prompts), images.shape[1:])
        self._rows("image", samples, images)
        if (writer := self._chunks("image")) is not None:
            writer.wait()  # the image is in the store before the flag that vouches for it
        self._rows("image_complete", samples, np.ones(len(samples), bool))


def _claim(url, samples, storage_options, takeover: bool) -> list:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url + ".claims", **(storage_options or {}))
    fs.makedirs(root, exist_ok=True)
    me = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}).encode()
    taken, paths = [], []
    for s in samples:
        path = f"{root}/sample-{s}"
        if fs.exists(path) and not takeover:
            taken.append(s)
            continue
        with fs.open(path, "wb") as f:
            f.write(me)
        paths.append(path)
    if taken:
        raise StoreError(f"samples {taken[:10]}{'...' if len(taken) > 10 else ''} of {url} are claimed by another "
                         f"writer ({url}.claims/); record disjoint samples, or pass resume=True to take over the "
                         f"claims of a writer that died")
    return paths


def _describe(v) -> str:
    """A pipeline argument that JSON cannot hold, as provenance: a tensor or array by shape, dtype and a hash of its
    bytes (embeddings: which ones made this store), anything else by ``str``."""
    if torch.is_tensor(v) or isinstance(v, np.ndarray):
        a = v.detach().cpu().reshape(-1).contiguous() if torch.is_tensor(v) else np.ascontiguousarray(v).reshape(-1)
        raw = a.view(torch.uint8).numpy() if torch.is_tensor(a) else a.view(np.uint8)
        return f"{type(v).__name__}{tuple(v.shape)} {v.dtype} sha256:{hashlib.sha256(raw.tobytes()).hexdigest()[:16]}"
    return str(v)


def _layers_per_chunk(tokens: int, channels: int, encoding: str, target: int = 8 << 20) -> int:
    """Layers per chunk so one chunk holds about ``target`` bytes (at least one layer)."""
    per_layer = tokens * channels * (4 if encoding == "float32" else 2)
    return max(1, target // per_layer)


def _grid(lens, kwargs) -> list | None:
    n = lens._probe.img_tokens
    h, w = kwargs.get("height"), kwargs.get("width")
    ratio = (h / w) if h and w else 1.0
    rows = int(round((n * ratio) ** 0.5))
    return [rows, n // rows] if rows and rows * (n // rows) == n else None


def record(lens, url: str, prompts, seeds=(0,), *, names="*.*.img.resid_post", num_inference_steps=None,
           steps=None, cfg: str = "cond", stats_only: bool = False, img_tokens=None, batch_size: int = 4,
           samples=None, resume: bool = False, takeover: bool = False, storage_options: dict | None = None,
           queue_size: int = 16, progress: bool = True, **pipeline_kwargs) -> str:
    """Record ``names`` at ``steps`` (default all) of branch ``cfg`` for every (prompt, seed) into ``url``.

    An embeddings-driven pipeline (``prompt_embeds=``, ``pooled_prompt_embeds=``, ...) takes one row per sample
    (prompts x seeds, in that order; ``prompts`` then only label the samples): each batch gets its rows.
    ``samples`` restricts the work to those sample indices (``samples=[]`` only writes the template);
    ``resume=True`` opens the existing store and records those of its samples that are not complete (also how
    several writers share one store); ``takeover=True`` overrides claims left by a writer that died."""
    from tqdm.auto import tqdm

    n_steps = lens._need_steps(num_inference_steps)
    names = lens.names(names)
    step_index = list(range(n_steps)) if steps is None else sorted({int(s) for s in steps})
    if step_index and not 0 <= step_index[0] <= step_index[-1] < n_steps:
        raise IndexError(f"steps {step_index} out of range: the run has steps 0..{n_steps - 1}")
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    all_prompts = [p for p in prompts for _ in seeds]
    all_seeds = [int(s) for _ in prompts for s in seeds]
    if "prompt_embeds" in pipeline_kwargs:  # the embeddings' rows, checked before anything is written
        first = (list(range(len(all_prompts))) if samples is None else sorted(int(s) for s in samples))[:batch_size]
        if first:
            _batch_embeds(pipeline_kwargs, first, len(all_prompts))
    layers = list(dict.fromkeys(n.rsplit(".", 2)[0] for n in names))
    channels = {lens.shape(n)[1] for n in names}
    if len(channels) != 1:
        raise ValueError(f"names with different channel counts {sorted(channels)} cannot share a store")
    channels_n = channels.pop()
    tokens = {n.split(".")[2]: lens.shape(n)[0] for n in names}
    if img_tokens is not None:
        img_tokens = sorted(int(t) for t in img_tokens)
        if "img" not in tokens or not 0 <= img_tokens[0] <= img_tokens[-1] < tokens["img"]:
            raise IndexError(f"img_tokens out of range 0..{tokens.get('img', 0) - 1}")
        tokens["img"] = len(img_tokens)
    dtype = lens.pipeline.transformer.dtype
    encoding = {torch.bfloat16: "bfloat16-bits", torch.float16: "float16"}.get(dtype, "float32")
    attrs = dict(model_class=type(lens.pipeline.transformer).__name__, pipeline_class=type(lens.pipeline).__name__,
                 config_hash=config_hash(lens.pipeline), dit_lens_version=__version__,
                 num_inference_steps=n_steps,
                 pipeline_kwargs=json.dumps(pipeline_kwargs, sort_keys=True, default=_describe))
    layout = Layout(prompts=all_prompts, seeds=all_seeds, steps=len(step_index), step_index=step_index,
                    layers=layers, depth=[lens.depth(x + ".img.resid_post") if f"{x}.img.resid_post" in lens
                                          else lens.depth(x + ".txt.resid_post") for x in layers],
                    names=names, tokens=tokens, channels=channels_n, grid=_grid(lens, pipeline_kwargs),
                    image_shape=None,  # the image variables appear with the run's first images
                    mode="stats" if stats_only else "full", encoding=encoding, cfg=cfg,
                    img_token_index=img_tokens, attrs=attrs,
                    layers_per_chunk=_layers_per_chunk(max(tokens.values()), channels_n, encoding))
    if resume:
        group = open_group(url, storage_options)
        old = read_layout(group)
        for key in ("prompts", "seeds", "step_index", "names", "mode", "encoding", "cfg", "tokens"):
            if getattr(old, key) != getattr(layout, key):
                raise StoreError(f"cannot resume {url}: its {key} differs from this recording's")
        if old.attrs.get("config_hash") != attrs["config_hash"]:
            raise StoreError(f"cannot resume {url}: recorded from another model/config "
                             f"(hash {old.attrs.get('config_hash')} != {attrs['config_hash']})")
    else:
        create(url, layout, storage_options)
        group = open_group(url, storage_options)
    wanted = list(range(len(all_prompts))) if samples is None else sorted(int(s) for s in samples)
    if resume:
        done = np.asarray(group["complete"][:]).all(1)
        if "image_complete" in group:
            done &= np.asarray(group["image_complete"][:])
        wanted = [s for s in wanted if not done[s]]
    claims = _claim(url, wanted, storage_options, takeover=takeover)
    writer = _Writer(group, layout, queue_size)
    writer.start()
    bar = tqdm(total=len(wanted) * n_steps, desc="record", unit="step", disable=not progress)
    try:
        for i in range(0, len(wanted), batch_size):
            batch = wanted[i:i + batch_size]
            _record_batch(lens, writer, layout, batch, n_steps, set(step_index), cfg, stats_only, img_tokens,
                          pipeline_kwargs, bar)
        writer.put(_STOP)
        writer.join()
        if writer.error is not None:
            raise StoreError(f"the store writer failed: {writer.error}") from writer.error
    finally:
        bar.close()
        if writer.is_alive():
            writer.put(_STOP)
            writer.join(timeout=60)
    if writer.nonfinite:
        warnings.warn(f"non-finite values recorded (samples, step, count): {writer.nonfinite[:10]}; see the store's "
                      f"'nonfinite' variable", RuntimeWarning, stacklevel=2)
    import fsspec

    fs, root = fsspec.core.url_to_fs(url + ".claims", **(storage_options or {}))
    for path in claims:
        fs.rm(path)
    try:
        if not fs.ls(root):
            fs.rmdir(root)
    except (FileNotFoundError, OSError):
        pass  # another writer still holds claims, or the store has no directories (object storage)
    return url


def _record_batch(lens, writer, layout, batch, n_steps, keep_steps, cfg, stats_only, img_tokens, kwargs, bar):
    prompts = [layout.prompts[s] for s in batch]
    gens = [torch.Generator().manual_seed(layout.seeds[s]) for s in batch]
    tok_index = None if img_tokens is None else torch.tensor(img_tokens)
    names = layout.names
    reducer = StepReducer(len(names))  # its host buffers are reused at every step
    if "prompt_embeds" in kwargs:  # an embeddings-driven pipeline: prompts are labels, embeds rows are samples
        kwargs = _batch_embeds(kwargs, batch, len(layout.prompts))
        prompts = None
    with lens.trace(prompts, num_inference_steps=n_steps, generator=gens, **kwargs) as tracer:
        run = tracer.dit
        for step in run.steps():
            if step.branch not in ("batch", cfg):
                continue  # sequential CFG: the other branch's call
            if step.index in keep_steps:
                for name in names:
                    h = run.read(name, cfg)
                    if tok_index is not None and ".img." in name:
                        h = h[:, tok_index.to(h.device)]
                    # reduced where h lives: only per-channel numbers cross from a device to the host
                    reducer.add(name, h)
                    if not stats_only:
                        value = h.detach().to("cpu", copy=True)
                        value = value.view(torch.int16).numpy().view(np.uint16) \
                            if value.dtype == torch.bfloat16 else value.numpy()
                        writer.put(("data", batch, step.index, name, value))
                writer.put(("commit", batch, step.index, reducer.finish(step.timestep)))
            bar.update(len(batch))
        out = lens.model.output.save()
    images = uint8_images(out.images)
    if images is not None:  # before the flags: a sample flagged complete has its image
        writer.put(("image", batch, images))
    writer.put(("flush", batch))


def _batch_embeds(kwargs: dict, batch: list, n_samples: int) -> dict:
    """An embeddings-driven batch's pipeline arguments: ``*embeds`` tensors with one row per sample of the store are
    cut to the batch's rows; tensors with exactly the batch's rows are passed as they are."""
    rows = kwargs["prompt_embeds"].shape[0]
    if rows == len(batch) and rows != n_samples:
        return kwargs
    if rows != n_samples:
        raise ValueError(f"prompt_embeds has {rows} rows: give one row per sample of the store ({n_samples}: "
                         f"prompts x seeds), or record one batch of exactly {len(batch)} samples at a time")
    out = dict(kwargs)
    for key, v in kwargs.items():
        if key.endswith("embeds") and torch.is_tensor(v):
            if v.shape[0] != n_samples:
                raise ValueError(f"{key} has {v.shape[0]} rows but prompt_embeds has {n_samples} (one per sample)")
            out[key] = v[torch.tensor(batch, device=v.device)]
    return out


def _record_part(model, url, prompts, seeds, samples, kwargs) -> list:
    from .lens import Lens

    record(Lens(model), url, prompts, seeds, samples=samples, resume=True, progress=False, **kwargs)
    return samples


def record_distributed(model, url: str, prompts, seeds=(0,), *, client, parts: int | None = None, **kwargs) -> str:
    """Record with several dask.distributed workers, each loading ``model`` (e.g. "tiny" or a folder) and writing
    a disjoint block of samples of one store (created here first)."""
    from .lens import Lens

    record(Lens(model), url, prompts, seeds, samples=[], progress=False, **kwargs)
    workers = list(client.scheduler_info()["workers"])
    n = len(prompts) * len(seeds)
    blocks = [b.tolist() for b in np.array_split(np.arange(n), parts or len(workers)) if len(b)]
    futures = [client.submit(_record_part, model, url, list(prompts), list(seeds), b, kwargs,
                             workers=[workers[i % len(workers)]], pure=False) for i, b in enumerate(blocks)]
    client.gather(futures)
    return url
