"""Recording: run a Lens over prompts x seeds and stream chosen names/steps into a store, crash-safely.

    record(lens, url, prompts, seeds=(0,), names=..., num_inference_steps=..., ...) -> url
    record_distributed(model, url, prompts, seeds, client=...) -> url   disjoint samples on dask.distributed workers

Each (name, step) is taken as its block returns it — by plain torch hooks on the named blocks for a local run
(``_collect.Hooked``; the same values, bit for bit, as an nnsight trace reads, tested on every architecture, and
without the trace's per-call interleaving), inside an nnsight trace for a remote one — and put on a bounded queue;
one background thread (``_handoff``) hands each message to the store's writer (``dit_lens.store.StoreWriter``: whole
chunks, then flags). Memory is bounded by the queue, not by the number of prompts or steps. Statistics (``_stats``)
are reduced on the model's thread and device before any transfer, and travel with the step's commit message.
``resume=True`` regenerates exactly the samples with unflagged units. Writers on disjoint ``samples`` of one store
may run at once; overlapping ones are refused by claim files next to the store.

Heavy imports (torch, zarr, xarray) happen on first use, so ``import dit_lens`` stays light.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings

import numpy as np

from . import __version__, _samples
from ._checks import index as _index
from ._checks import seconds, whole
from ._handoff import OnHost, Rows, WriterThread
from ._host_copy import HostCopies, host_array
from .errors import ArgumentError, OutOfRangeError, RunError, StoreTimeoutError

__all__ = ["record", "record_distributed"]

_TRACED = False  # True: a local pipeline's batches run in an nnsight trace, as remote ones do, instead of under plain
# torch hooks (the same values, tested; bench/store_bench.py's "-traced" kinds measure the difference)

def _describe(v) -> str:
    """A pipeline argument that JSON cannot hold, as provenance: a tensor or array by shape, dtype and a hash of its
    bytes (embeddings: which ones made this store), anything else by ``str``."""
    import torch

    if torch.is_tensor(v) or isinstance(v, np.ndarray):
        a = v.detach().cpu().reshape(-1).contiguous() if torch.is_tensor(v) else np.ascontiguousarray(v).reshape(-1)
        raw = a.view(torch.uint8).numpy() if torch.is_tensor(a) else a.view(np.uint8)
        return f"{type(v).__name__}{tuple(v.shape)} {v.dtype} sha256:{hashlib.sha256(raw.tobytes()).hexdigest()[:16]}"
    return str(v)


def _layout(lens, prompts, seeds, names, n_steps, step_index, cfg, stats_only, img_tokens, pipeline_kwargs):
    """The store's Layout for this recording, every index checked."""
    import torch

    from .store import Layout
    from .store.schema import layers_per_chunk

    layers = list(dict.fromkeys(n.rsplit(".", 2)[0] for n in names))
    channels = {lens.shape(n)[1] for n in names}
    if len(channels) != 1:
        raise ArgumentError(f"names with different channel counts {sorted(channels)} cannot share a store")
    channels_n = channels.pop()
    # this call's token counts (the image's scale with height x width; text from its embeddings), where known before
    # the run, else the validation dry run's; the first recorded step checks them (``_check_shape``)
    tokens = {n.split(".")[2]: lens.tokens(n, cfg, pipeline_kwargs) or lens.shape(n)[0] for n in names}
    full_img = tokens.get("img")
    if img_tokens is not None:
        if "img" not in tokens or not 0 <= img_tokens[0] <= img_tokens[-1] < tokens["img"]:
            raise OutOfRangeError(f"img_tokens out of range 0..{tokens.get('img', 0) - 1}")
        tokens["img"] = len(img_tokens)
    encoding = {torch.bfloat16: "bfloat16-bits", torch.float16: "float16"}.get(lens.pipeline.transformer.dtype,
                                                                               "float32")
    from .models import scheduler_hash, weights_hash

    attrs = dict(model_class=type(lens.pipeline.transformer).__name__, pipeline_class=type(lens.pipeline).__name__,
                 config_hash=lens.config_hash, weights_hash=weights_hash(lens.pipeline.transformer),
                 scheduler_hash=scheduler_hash(lens.pipeline), dit_lens_version=__version__,
                 num_inference_steps=n_steps,
                 pipeline_kwargs=json.dumps(pipeline_kwargs, sort_keys=True, default=_describe))
    grid = lens.token_grid(pipeline_kwargs.get("height"), pipeline_kwargs.get("width"), tokens=full_img)
    depth = [lens.depth(x + ".img.resid_post") if f"{x}.img.resid_post" in lens else lens.depth(x + ".txt.resid_post")
             for x in layers]
    return Layout(prompts=prompts, seeds=seeds, steps=len(step_index), step_index=step_index, layers=layers,
                  depth=depth, names=names, tokens=tokens, channels=channels_n, grid=list(grid) if grid else None,
                  mode="stats" if stats_only else "full", encoding=encoding, cfg=cfg, img_token_index=img_tokens,
                  attrs=attrs, layers_per_chunk=layers_per_chunk(max(tokens.values()), channels_n, encoding,
                                                                 layers=len(layers)))


def record(lens, url: str, prompts, seeds=(0,), *, names="*.*.img.resid_post", num_inference_steps=None,
           steps=None, cfg: str = "cond", stats_only: bool = False, img_tokens=None, batch_size: int = 4,
           samples=None, resume: bool = False, takeover: bool = False, storage_options: dict | None = None,
           queue_size: int = 16, progress: bool = True, storage_timeout: float | None = 120.0, loop=None,
           remote=False, compression: str | None = None, write_threads: int = 1, **pipeline_kwargs) -> str:
    """Record ``names`` at ``steps`` (default all) of branch ``cfg`` for every (prompt, seed) into ``url``.

    An embeddings-driven pipeline (``prompt_embeds=``, ``pooled_prompt_embeds=``, ...) takes one row per sample
    (prompts x seeds, in that order; ``prompts`` then only label the samples): each batch gets its rows.
    ``samples`` restricts the work to those sample indices (``samples=[]`` only writes the template);
    ``resume=True`` opens the existing store and records those of its samples that are not complete (also how
    several writers share one store); claims of a writer that is provably gone (its pid ended on this host, or
    its lease ran out) are taken over, ``takeover=True`` overrides any claim (a writer you know died).
    ``storage_timeout`` bounds every storage call (seconds; None waits forever): a store that stops answering
    ends the recording with a StoreTimeoutError naming the endpoint and the samples that are complete.
    A lens over a bare transformer records through your sampling ``loop(prompts, generators, num_inference_steps,
    **pipeline_kwargs) -> images or None`` (each transformer call one step, as the lens's ``cfg`` says).
    ``remote=`` runs each batch as one nnsight request (True: NDIF or the server nnsight is configured for;
    "local": nnsight's serialization round trip here): statistics are reduced on the server and only they travel
    back when ``stats_only``, else the batch's values too (``batch_size`` bounds them); the store is written here,
    crash-safe and resumable as always.
    ``compression`` of the activation values, lossless either way: "lz4" (the default for a new store: Blosc LZ4
    with bit-shuffle) or "none" (stored uncompressed: ~10% more bytes of float32, ~25% of bf16 bits, for less CPU
    beside the model); None resumes with the store's own. ``write_threads``: how many threads encode chunks and
    write a local disk's files at once (1: the writer's own thread encodes while one I/O thread writes, ~1.2 GB/s
    with LZ4 — less than a large GPU model's full recording makes; more pays only with idle cores: on 2 cores,
    2 threads wrote 0.79x as fast, bench/README.md)."""
    from .store.schema import COMPRESSIONS

    n_steps = lens.check_steps(num_inference_steps)
    storage_timeout = seconds("storage_timeout", storage_timeout)
    if compression is not None and compression not in COMPRESSIONS:
        raise ArgumentError(f"compression={compression!r}: one of {sorted(COMPRESSIONS)} (None: 'lz4' for a new "
                            f"store, the store's own when resuming)")
    if compression is not None and stats_only:
        raise ArgumentError("compression= applies to the activation values, which a stats-only store does not hold")
    if remote and loop is not None:
        raise ArgumentError("remote= records a pipeline's lens; a bare transformer's loop runs here")
    if (lens.model is None) != (loop is not None):
        raise ArgumentError("a lens over a bare transformer records through your sampling loop: pass loop=fn(prompts, "
                            "generators, num_inference_steps, **kwargs); a pipeline's lens runs the pipeline itself")
    ran = lens.steps_of(n_steps, **pipeline_kwargs)  # img2img strength or custom sigmas run fewer or other steps
    names = lens.names(names)
    step_index = list(range(ran)) if steps is None else sorted({_index("steps", s) for s in steps})
    if not step_index:
        raise ArgumentError("steps=[]: a store of no steps would record nothing")
    if not 0 <= step_index[0] <= step_index[-1] < ran:
        raise OutOfRangeError(f"steps {step_index} out of range: the run has steps 0..{ran - 1}")
    if cfg not in ("cond", "uncond"):
        raise ArgumentError(f"cfg={cfg!r}: a store records one branch, 'cond' or 'uncond'")
    batch_size = whole("batch_size", batch_size)
    write_threads = whole("write_threads", write_threads)
    all_prompts, all_seeds = _samples.grid(prompts, seeds)
    if samples is not None:
        samples = sorted({_index("samples", s) for s in samples})
        bad = [s for s in samples if not 0 <= s < len(all_prompts)]
        if bad:
            raise OutOfRangeError(f"samples {bad[:10]} out of range: the store has samples 0..{len(all_prompts) - 1} "
                                  f"(prompts x seeds)")
    if "prompt_embeds" in pipeline_kwargs:  # the embeddings' rows, checked before anything is written
        first = (list(range(len(all_prompts))) if samples is None else samples)[:batch_size]
        if first:
            _batch_embeds(pipeline_kwargs, first, len(all_prompts))
    img_tokens = None if img_tokens is None else sorted({_index("img_tokens", t) for t in img_tokens})
    if img_tokens == []:
        raise ArgumentError("img_tokens=[]: give the image tokens to keep, or None for all")
    layout = _layout(lens, all_prompts, all_seeds, names, n_steps, step_index, cfg, stats_only, img_tokens,
                     pipeline_kwargs)
    layout.compression = compression or (None if resume else "lz4")
    work = dict(layout=layout, steps=(n_steps, ran), keep_steps=set(step_index), cfg=cfg, stats_only=stats_only,
                img_tokens=img_tokens, kwargs=pipeline_kwargs, loop=loop, remote=remote)
    with _bounded(storage_timeout):
        _write(lens, url, work, samples, batch_size, resume, takeover, storage_options, storage_timeout, queue_size,
               progress, write_threads)
    return url


@contextlib.contextmanager
def _bounded(timeout):
    """zarr's own storage calls (opening arrays, the template, flags on codecs the direct path lacks) bounded too."""
    import zarr

    with zarr.config.set({"async.timeout": timeout}):
        yield


def _endpoint(url: str, storage_options: dict | None) -> str:
    opts = storage_options or {}
    where = opts.get("endpoint_url") or (opts.get("client_kwargs") or {}).get("endpoint_url")
    return f"{url} (endpoint {where})" if where else url


def _write(lens, url, work, samples, batch_size, resume, takeover, storage_options, timeout, queue_size, progress,
           write_threads=1):
    """Claim the samples still to record, run them batch by batch into the store, release the claims. A store that
    stops answering ends the recording within about three ``timeout``s, saying which samples are complete."""
    from tqdm.auto import tqdm

    from .store import StoreWriter
    from .store._claims import claim

    layout = work["layout"]
    n = len(layout.prompts)
    make = None  # a new store's template is written on the writer's thread, beside the first batch's steps
    try:
        if resume:
            writer = StoreWriter.resume(url, layout, storage_options, timeout, write_threads)
        else:
            StoreWriter.check_new(url, storage_options)  # a store or a file already there: refused before the run
            writer = None
            make = lambda: StoreWriter.create(url, layout, storage_options, timeout, write_threads)  # noqa: E731
        order = list(range(n)) if samples is None else samples
        done = writer.done() if resume else np.zeros(n, bool)
        wanted = [s for s in order if not done[s]]
        claims = claim(url, wanted, storage_options, takeover=takeover, timeout=timeout)
    except TimeoutError as e:
        raise StoreTimeoutError(f"{_endpoint(url, storage_options)} did not answer within {timeout:g} s while "
                                f"opening the store and claiming its samples; nothing was recorded") from e
    thread = WriterThread(writer, queue_size, timeout, make=make)
    thread.start()
    bar = tqdm(total=len(wanted) * work["steps"][1], desc="record", unit="step", disable=not progress)
    try:
        for batch in _batches(order, set(wanted), batch_size):
            _record_batch(lens, thread, batch, keep=[s for s in batch if not done[s]], bar=bar, **work)
        thread.finish()
    except BaseException as e:
        with contextlib.suppress(Exception):  # a writer that stops cleanly releases its claims (a killed one's stay)
            claims.release()
        timed_out = isinstance(e, TimeoutError) or isinstance(thread.error, TimeoutError)
        if not timed_out:
            raise
        stored = sorted(set(np.flatnonzero(done).tolist()) | set(thread.writer.stored if thread.writer else ()))
        complete = f"samples {_samples.ranges(stored)} ({len(stored)} of {n})" if stored else f"none of {n} samples"
        raise StoreTimeoutError(
            f"recording stopped: {_endpoint(url, storage_options)} did not answer within {timeout:g} s "
            f"({thread.error or e}); complete in the store: {complete}; once it answers, resume=True (--resume) "
            f"records the rest") from (thread.error or e)
    finally:
        bar.close()
        if thread.is_alive():
            with contextlib.suppress(Exception):
                thread.finish()
    if thread.writer.nonfinite:
        warnings.warn(f"non-finite values recorded (samples, step, count): {thread.writer.nonfinite[:10]}; see the "
                      f"store's 'nonfinite' variable", RuntimeWarning, stacklevel=3)
    claims.release(complete=sorted(set(np.flatnonzero(done).tolist()) | set(wanted)))


def _batches(order: list, wanted: set, batch_size: int) -> list:
    """The batches of an uninterrupted recording of ``order`` that hold a wanted sample: a resumed sample runs in its
    own batch again, so it equals an uninterrupted recording bit for bit (CPU kernels round by batch composition)."""
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [g for g in groups if wanted.intersection(g)]


def _record_batch(lens, thread, batch, *, layout, steps, keep_steps, cfg, stats_only, img_tokens, kwargs, bar,
                  loop=None, remote=False, keep=None):
    """One batch: under plain hooks around the pipeline's call (or the user's ``loop``, for a bare transformer), or
    through an nnsight trace (remote, or ``_TRACED``); ``steps`` is
    (num_inference_steps, the steps the run makes); only the samples in ``keep`` (default all) are written. A run
    that made other steps than expected raises before its flags are written."""
    import torch

    from ._stats import StepReducer
    from .store import uint8_images

    prompts = [layout.prompts[s] for s in batch]
    gens = _samples.generators([layout.seeds[s] for s in batch])
    tok_index = None if img_tokens is None else torch.tensor(img_tokens)
    names = layout.names
    reducer = StepReducer(len(names))  # its host buffers are reused at every step
    copies = HostCopies()  # each value to host memory (from a GPU: without stopping the model's stream)
    if "prompt_embeds" in kwargs:  # an embeddings-driven pipeline: prompts are labels, embeds rows are samples
        kwargs = _batch_embeds(kwargs, batch, len(layout.prompts))
        prompts = None
    n_steps, ran = steps
    if keep is not None and list(keep) != list(batch):
        thread = Rows(thread, batch, keep)

    from . import _collect
    from ._call import prompt_args
    from .lens import pipeline_images

    def deliver(item, seen, shipped=False) -> None:  # one call's collection to the writer (a server's: checked here)
        if item is None:
            return  # sequential CFG: the other branch's call
        index, t, stats, values = item
        for name, value in (values or {}).items():
            _check_shape(layout, name, value, index, selected=True)
            thread.put(("data", batch, index, name, host_array(value)))
        if stats is not None:
            thread.put(("commit", batch, index, OnHost(*stats) if shipped else stats))
        bar.update(len(batch) if keep is None else len(keep))
        seen.append((index, t))

    def take(run, step, seen) -> None:  # one transformer call, here: its values go to the writer as they are read
        deliver(_collect.collect(run, step, names, cfg, keep_steps, tok_index, stats_only, reducer,
                                 emit=lambda name, h: thread.put(("data", batch, step.index, name, copies.take(h))),
                                 check=lambda name, h: _check_shape(layout, name, h, step.index)), seen)

    if remote:  # the server runs the block and sends back what it collected: statistics, and values unless stats_only
        model, out = lens.model, None  # out stays None if the server's run ended before the block did
        with lens.trace(prompts, num_inference_steps=n_steps, generator=gens, remote=remote, **kwargs) as tracer:
            run = tracer.dit
            got = list().save()
            for step in run.steps():
                got.append(_collect.collect(run, step, names, cfg, keep_steps, tok_index, stats_only, reducer))
            out = model.output.save()
        if out is None:
            raise RunError(f"the server's run of batch {batch} ended before its traced block did (fewer transformer "
                           f"calls than {ran} steps): nothing of it was written")
        seen = []
        for item in got:
            deliver(item, seen, shipped=True)
        out_images = pipeline_images(out)
        made = len({s for s, _ in seen})
    elif lens.model is not None and _TRACED:  # the same through an nnsight trace (bench/store_bench.py compares)
        with lens.trace(prompts, num_inference_steps=n_steps, generator=gens, **kwargs) as tracer:
            run = tracer.dit
            seen = list().save()
            for step in run.steps():
                take(run, step, seen)
            out = lens.model.output.save()
        out_images = pipeline_images(out)
        made = len({s for s, _ in seen})
    else:  # here: plain torch hooks on the named blocks, each value taken as its block returns it
        seen = []
        hooked = _collect.Hooked(names, cfg, keep_steps, ran, tok_index, stats_only, reducer,
                                 emit=lambda name, h: thread.put(("data", batch, hooked.step, name, copies.take(h))),
                                 check=lambda name, h: _check_shape(layout, name, h, hooked.step))
        with lens._call_hooks(prompts, kwargs, watch=names, on_value=hooked.value,
                              on_call=lambda run: deliver(hooked.end(run), seen)) as run:
            if lens.model is None:  # a bare transformer: the user's loop
                out_images = loop(prompts, gens, num_inference_steps=n_steps, **kwargs)
            else:
                out_images = pipeline_images(lens.pipeline(*prompt_args(prompts), num_inference_steps=n_steps,
                                                           generator=gens, **kwargs))
        made = run.steps_run
    if made != ran:
        raise RunError(f"{type(lens.pipeline).__name__} ran {made} steps, {ran} expected from "
                       f"num_inference_steps={n_steps} and the call's strength / sigmas / timesteps: no sample of "
                       f"batch {batch} is flagged complete")
    images = None if out_images is None else uint8_images(out_images)
    if images is not None:  # before the flags: a sample flagged complete has its image
        thread.put(("image", batch, images))
    thread.put(("flush", batch))


def _check_shape(layout, name: str, h, step: int, selected: bool = False) -> None:
    """A value must fill its place in the store exactly: a run whose token count differs from the layout's (a call
    at another size than the one the store was laid out for) is an error, never a partly filled store."""
    stream = name.split(".")[2]
    want = layout.tokens[stream]
    if stream == "img" and layout.img_token_index is not None and not selected:  # check the whole grid
        want = int(np.prod(layout.grid)) if layout.grid else None
    got = tuple(h.shape[1:])
    if (want is not None and got[0] != want) or got[1] != layout.channels:
        raise RunError(f"{name} has {got[0]} tokens x {got[1]} channels at step {step}, but the store is laid out "
                       f"for {want} x {layout.channels} (the lens's validation call, scaled to this call's height x "
                       f"width where both are given): pass height= and width=, or validate the lens with a call of "
                       f"this size (Lens(..., example=...)); nothing of this batch is flagged complete")


def _batch_embeds(kwargs: dict, batch: list, n_samples: int) -> dict:
    """An embeddings-driven batch's pipeline arguments: ``*embeds`` tensors with one row per sample of the store are
    cut to the batch's rows; tensors with exactly the batch's rows are passed as they are."""
    import torch

    rows = kwargs["prompt_embeds"].shape[0]
    if rows == len(batch) and rows != n_samples:
        return kwargs
    if rows != n_samples:
        raise ArgumentError(f"prompt_embeds has {rows} rows: give one row per sample of the store ({n_samples}: "
                            f"prompts x seeds), or record one batch of exactly {len(batch)} samples at a time")
    out = dict(kwargs)
    for key, v in kwargs.items():
        if key.endswith("embeds") and torch.is_tensor(v):
            if v.shape[0] != n_samples:
                raise ArgumentError(f"{key} has {v.shape[0]} rows but prompt_embeds has {n_samples} (one per "
                                    f"sample)")
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
    n = len(_samples.grid(prompts, seeds)[0])
    blocks = [b.tolist() for b in np.array_split(np.arange(n), parts or len(workers)) if len(b)]
    futures = [client.submit(_record_part, model, url, list(prompts), list(seeds), b, kwargs,
                             workers=[workers[i % len(workers)]], pure=False) for i, b in enumerate(blocks)]
    client.gather(futures)
    return url
