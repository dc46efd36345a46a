"""Activation store benchmark, ratios measured side by side in one run (not a test).

  1. recording overhead: plain generation vs record (full image stream, every block, every step) vs stats-only
  2. write throughput: the recorder's chunk writes (zarr, the store's codec) vs np.tofile of the same bytes; then the
     chunk writer's own file writes vs zarr's store calls onto a local disk (wall and CPU of all threads)
  3. per-channel max/mean/median over a >= 2 GB store (channel_reduce, Dask threads) vs the same numpy reduction
     of the same values held in RAM

    python bench/store_bench.py [--gb 2.0] [--prompts 32] [--batch 8] [--steps 20] [--repeats 3]
                                [--dir /tmp/dit-lens-bench] [--only recording|writes|reductions]
                                [--model tiny|flux|flux-dev] [--shrink] [--device cpu|cuda]
                                [--kinds plain,full,full-none,full-buffered,full-traced,stats,stats-traced,empty]
                                [--names PATTERN|A,B,...] [--malloc fixed|default]

The script re-executes itself under fixed glibc malloc thresholds unless ``--malloc default`` (bench/README.md,
"the allocator"): with glibc's own, whether large tensors cost a page fault per page changes from run to run.

Recording variants run interleaved (forwards, then backwards in the next round) after a one-batch warm-up of each;
besides the ratio of median times it prints the median of each run's ratio to the plain run of its round, with a
distribution-free 95% confidence interval (order statistics), since single runs on a shared machine swing by 10-30%.

``--model flux-dev`` is a random-weight transformer of Flux.1-dev's size (19 + 38 blocks, width 3072, bf16) at
1024 x 1024 (4096 image tokens, 512 text tokens): it needs a GPU (``--device cuda``, ~24 GB), and its full
recording of every image-stream name writes 1.4 GB per step: record a few (``--names A,B,C,D``) or choose ``--kinds
plain,stats,empty`` there (``bench/gpu_record.sh`` runs the prepared GPU set). ``--shrink`` keeps its depth, so the
same names resolve, at width 64 and 64 image tokens: the GPU run's commands checked on a CPU in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import resource
import shutil
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch


def _timeit(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _median_ci(values, level: float = 0.95) -> tuple:
    """A distribution-free confidence interval for the median of ``values``: the order statistics whose ranks a
    Binomial(n, 1/2) count falls between with probability >= ``level`` ((None, None) below 6 values)."""
    from math import comb

    x, n = sorted(values), len(values)
    cdf = np.cumsum([comb(n, i) for i in range(n + 1)]) / 2 ** n
    j = int(np.searchsorted(cdf, (1 - level) / 2, side="right"))  # P(count < j) <= (1 - level) / 2
    if j < 1:
        return None, None
    return x[j - 1], x[n - j]


_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(4 << 30)}


def add_malloc_option(p) -> None:
    p.add_argument("--malloc", choices=("fixed", "default"), default="fixed",
                   help="run under fixed glibc malloc thresholds (the default: bench/README.md, 'the allocator') or "
                        "glibc's own, which moves them as the process runs")


def fixed_malloc(how: str) -> str:
    """With ``how="fixed"``, re-execute this script once under fixed glibc malloc thresholds (the mmap threshold at
    its 32 MiB maximum, memory given back to the system only past 4 GiB free at the heap's top); returns a line for
    the output's header. glibc's own thresholds move as large blocks are freed, and whether a process then takes a
    page fault per page of every large tensor it allocates changes from run to run: in one process 16-prompt runs of
    the tiny model took 27 thousand faults in one run and 1.1 million in the next (0.07 vs 2.0 s of system CPU),
    whatever kind ran: noise in every paired ratio. Under fixed thresholds a run takes almost none."""
    fixed = all(os.environ.get(k) == v for k, v in _MALLOC.items())
    if how == "fixed" and not fixed:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_MALLOC})
    if fixed:
        return "glibc malloc: fixed thresholds (" + ", ".join(f"{k}={v}" for k, v in _MALLOC.items()) + ")"
    return "glibc malloc: its own moving thresholds (--malloc default)"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _tiny(n_prompts: int, batch: int, device: str):
    from dit_lens import Lens
    from dit_lens.tiny.demo import demo_prompts

    lens = Lens("tiny")
    lens.pipeline.to(device)
    prompts = demo_prompts(n_prompts)

    def plain(b, steps):
        lens.pipeline([prompts[i] for i in b], num_inference_steps=steps,
                      generator=[torch.Generator().manual_seed(i) for i in b])
    return lens, prompts, plain, {}, "tiny model"


def _flux(n_prompts: int, batch: int, device: str):
    """The random-weight Flux of dit_lens.testing.medium_flux at 512 x 512: 1024 image tokens, width 384, 4 + 8
    blocks, driven by embeddings (one row per sample; the recorder cuts each batch's rows)."""
    from dit_lens.testing import medium_flux

    pipe, kw = medium_flux(n_prompts, size=512)
    return _embedded(pipe, kw, n_prompts, device, "random Flux, 1024 image tokens, width 384")


def _flux_dev(n_prompts: int, batch: int, device: str, shrink: bool = False):
    """dit_lens.testing.flux_dev: a random-weight transformer of Flux.1-dev's configuration in bf16 at 1024 x 1024
    (4096 image tokens, 512 text tokens), built on ``device`` directly; no VAE (latents out), embeddings in.
    ``shrink``: its depth at width 64 and 64 image tokens (checks a script on the CPU)."""
    from dit_lens.testing import flux_dev

    pipe, kw = flux_dev(n_prompts, device, shrink=shrink)
    label = ("Flux.1-dev's depth shrunk to width 64, bf16, 64 image tokens (a check, not a measurement)" if shrink
             else "random Flux.1-dev-sized transformer, bf16, 4096 image tokens")
    return _embedded(pipe, kw, n_prompts, device, label)


def _embedded(pipe, kw, n_prompts, device, label):
    from dit_lens import Lens
    from dit_lens.record import _batch_embeds

    pipe.to(device)
    kw = {k: v.to(device) if torch.is_tensor(v) else v for k, v in kw.items()}
    pipe.set_progress_bar_config(disable=True)
    one = {k: v[:1] if k.endswith("embeds") else v for k, v in kw.items()}
    lens = Lens(pipe, example=dict(one, num_inference_steps=1))

    def plain(b, steps):  # the batch's rows, cut as the recorder cuts them
        pipe(**_batch_embeds(kw, b, n_prompts), num_inference_steps=steps,
             generator=[torch.Generator().manual_seed(i) for i in b])
    return lens, [f"prompt {i}" for i in range(n_prompts)], plain, kw, label


@contextlib.contextmanager
def buffered_files(on: bool = True):
    """Within: new stores write their chunk files through the page cache (``on``), not past it with O_DIRECT."""
    from dit_lens.store import _files

    direct = _files.DIRECT
    _files.DIRECT = direct and not on
    try:
        yield
    finally:
        _files.DIRECT = direct


@contextlib.contextmanager
def traced(on: bool = True):
    """Within: local recordings read their values in an nnsight trace (``on``), as remote ones do, not by plain
    torch hooks (``dit_lens.record._TRACED``)."""
    rec = importlib.import_module("dit_lens.record")  # the module: the package exports the function by its name
    before = rec._TRACED
    rec._TRACED = on or before
    try:
        yield
    finally:
        rec._TRACED = before


def _value_bytes(url) -> int:
    """Bytes of the recorded activation values in a store (uncompressed): what was copied off the model."""
    import zarr

    g = zarr.open_group(str(url), mode="r")
    return sum(int(np.prod(a.shape)) * a.dtype.itemsize for name, a in g.arrays()
               if a.ndim == 5 and not name.endswith(".stats"))


def recording(root: Path, model: str, n_prompts: int, steps: int, repeats: int, batch: int, device: str = "cpu",
              kinds=("plain", "full", "stats", "empty"), write_threads: int = 1,
              names="*.*.img.resid_post", shrink: bool = False) -> None:
    from dit_lens.record import record

    if shrink and model != "flux-dev":
        raise SystemExit("--shrink: only --model flux-dev has a shrunken version")
    build = {"tiny": _tiny, "flux": _flux, "flux-dev": partial(_flux_dev, shrink=shrink)}[model]
    lens, prompts, plain_batch, kw, label = build(n_prompts, batch, device)
    batches = [list(range(i, min(i + batch, n_prompts))) for i in range(0, n_prompts, batch)]
    names = lens.names(names)  # checked before any run

    def plain(warm=False):  # the same batches the recorder runs
        for b in batches[:1] if warm else batches:
            plain_batch(b, steps)

    def rec(kind):
        url = str(root / f"{kind}.zarr")

        def clear():  # the last run's store goes before the clock starts (removing 462 MB is not recording)
            shutil.rmtree(url, ignore_errors=True)
            shutil.rmtree(url + ".claims", ignore_errors=True)  # left by a run that was stopped

        def fn(warm=False):
            opts = dict(seeds=[0], names=names, num_inference_steps=steps, batch_size=batch,
                        stats_only=kind.startswith("stats"), progress=False, write_threads=write_threads)
            if kind == "full-none":  # the values stored uncompressed
                opts["compression"] = "none"
            samples = [] if kind == "empty" else batches[0] if warm else None
            with buffered_files(kind == "full-buffered"), traced(kind.endswith("-traced")):
                record(lens, url, prompts, samples=samples, **opts, **kw)
        return fn, clear

    variants = {"plain": (plain, lambda: None), **{k: rec(k) for k in ("full", "full-none", "full-buffered",
                                                                       "full-traced", "stats", "stats-traced",
                                                                       "empty")}}
    variants = {k: v for k, v in variants.items() if k in kinds or k == "plain"}

    def flush():  # a run's written pages reach the disk before the next run starts, not during it
        t0 = time.perf_counter()
        os.sync()
        return time.perf_counter() - t0

    for f, clear in variants.values():
        clear()
        f(warm=True)  # warm-up: the first batch
        _sync(device)
        flush()
    times = {k: [] for k in variants}
    flushes = {k: [] for k in variants}
    faults = {k: [] for k in variants}  # minor page faults of the process during each run (the allocator's state)
    for r in range(repeats):  # interleaved, forwards then backwards, so drift of a shared machine hits every
        for k in (list(variants) if r % 2 == 0 else list(variants)[::-1]):  # variant alike and cancels in pairs
            f, clear = variants[k]
            clear()
            flush()
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            f()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
            faults[k].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
            flushes[k].append(flush())
    t = {k: statistics.median(v) for k, v in times.items()}
    where = "CPU" if device == "cpu" else torch.cuda.get_device_name(device) if device.startswith("cuda") else device
    print(f"\n1. recording ({n_prompts} prompts in batches of {batch} x {steps} steps, {label}, on {where}, "
          f"{len(names)} names, interleaved, median of {repeats})")
    for k, v in t.items():
        print(f"   {k:<6} {v:7.2f} s   (each run: {' '.join(f'{x:.2f}' for x in times[k])}; page faults "
              f"{min(faults[k])}-{max(faults[k])} per run)")

    def paired(k):  # each run against the plain run of its round: drift of a shared machine cancels
        r = sorted(a / b for a, b in zip(times[k], times["plain"]))
        lo, hi = _median_ci(r)
        ci = f", 95% CI {lo:.3f}-{hi:.3f}" if lo is not None else ""
        return (f"paired {statistics.median(r):.3f}x (quartiles {np.percentile(r, 25):.3f}-"
                f"{np.percentile(r, 75):.3f}{ci})")
    if "full" in t:
        size = sum(p.stat().st_size for p in (root / "full.zarr").rglob("*") if p.is_file())
        print(f"   full/plain  {t['full'] / t['plain']:.3f}x  {paired('full')}  (goals: tiny <= 1.15, random Flux "
              f"<= 1.20)   store {size / 1e6:.1f} MB; then flushing it to disk (os.sync, untimed above) took "
              f"{statistics.median(flushes['full']):.2f} s")
        raw = _value_bytes(root / "full.zarr")  # what crossed to host memory: compare bench/d2h_bench.py's loop
        added = t["full"] - t["plain"]
        rate = f"{raw / added / 1e9:.2f} GB per added second" if added > 0 else "no time added (within the spread)"
        print(f"   values taken to host memory {raw / 1e9:.2f} GB in {added:.2f} s more than plain: {rate}")
    if "full-none" in t:
        size = sum(p.stat().st_size for p in (root / "full-none.zarr").rglob("*") if p.is_file())
        print(f"   full-none/plain  {t['full-none'] / t['plain']:.3f}x  {paired('full-none')}  (compression='none')"
              f"   store {size / 1e6:.1f} MB")
    if "full-buffered" in t:
        print(f"   full-buffered/plain  {t['full-buffered'] / t['plain']:.3f}x  {paired('full-buffered')}  (chunk "
              f"files through the page cache)")
    if "full-traced" in t:
        print(f"   full-traced/plain  {t['full-traced'] / t['plain']:.3f}x  {paired('full-traced')}  (values read "
              f"in an nnsight trace, as before plain hooks)")
    if "stats" in t:
        print(f"   stats/plain {t['stats'] / t['plain']:.3f}x  {paired('stats')}  (goal <= 1.03)")
    if "stats-traced" in t:
        print(f"   stats-traced/plain {t['stats-traced'] / t['plain']:.3f}x  {paired('stats-traced')}  (in an nnsight "
              f"trace)")
    if "empty" in t:
        print(f"   a full store's fixed cost (template, claims; 'empty' records no sample): {t['empty']:.2f} s")


def writes(root: Path, mb: int) -> None:
    import zarr

    from dit_lens.store.schema import compressors

    rng = np.random.default_rng(0)
    chunk = (rng.standard_normal((4096, 256)).astype(np.float32) * 3)  # 4 MiB, bf16-like precision below
    chunk = (chunk.view(np.uint32) & 0xFFFF0000).view(np.float32)
    n = max(1, mb // 4)
    arr = zarr.create_array(str(root / "w.zarr"), shape=(n, 4096, 256), chunks=(1, 4096, 256), dtype="float32",
                            compressors=compressors(), overwrite=True)
    plain = zarr.create_array(str(root / "nocrc.zarr"), shape=(n, 4096, 256), chunks=(1, 4096, 256),
                              dtype="float32", compressors=compressors()[:1], overwrite=True)  # Blosc, no checksum

    def z():
        for i in range(n):
            arr[i] = chunk

    def z8():  # how the recorder writes: one call per (batch of samples, step), here 8 samples
        block = np.broadcast_to(chunk, (8,) + chunk.shape)
        for i in range(0, n - n % 8, 8):
            arr[i:i + 8] = block

    def direct(target=arr):  # how the recorder writes: whole chunks encoded on its writer thread, bytes to the store
        import threading

        from dit_lens.store._chunks import chunk_writer

        w, errors = chunk_writer(target), []

        def work():
            try:
                for i in range(n):
                    w.write_many([((i, 0, 0), chunk[None])])
                w.wait()
            except BaseException as e:  # noqa: BLE001 - re-raised on the calling thread
                errors.append(e)
        t = threading.Thread(target=work)
        t.start()
        t.join()
        if errors:
            raise errors[0]

    def codec_only():  # the same Blosc frames from numcodecs on the calling thread, no zarr, no file
        from numcodecs import Blosc

        c = Blosc(cname="lz4", clevel=5, shuffle=Blosc.BITSHUFFLE)
        for _ in range(n):
            c.encode(chunk)

    def tofile():
        with open(root / "w.bin", "wb") as f:
            for _ in range(n):
                chunk.tofile(f)

    def direct_nocrc():
        direct(plain)

    z(), z8(), direct(), direct_nocrc(), codec_only(), tofile()
    tz, tz8, tc, tt = (_timeit(f, 3) for f in (z, z8, codec_only, tofile))
    paired = {"with": [], "without": []}  # checksums on and off, interleaved: the disk's phases hit both alike
    for _ in range(5):
        for label, f in (("with", direct), ("without", direct_nocrc)):
            paired[label].append(_timeit(f, 1))
    td, tn = statistics.median(paired["with"]), statistics.median(paired["without"])
    n8 = n - n % 8
    print(f"\n2. writes: {n} chunks of 4 MiB (float32 with bf16 precision), the store's codec {compressors()}")
    print(f"   zarr, 1 chunk per call   {n * 4 / tz:7.0f} MiB/s   ratio to np.tofile {tt / tz:.2f} (goal >= 0.50)")
    print(f"   zarr, 8 chunks per call  {n8 * 4 / tz8:7.0f} MiB/s   ratio {tt / tz8 * n8 / n:.2f}")
    print(f"   direct chunk writes      {n * 4 / td:7.0f} MiB/s   ratio {tt / td:.2f} (the recorder's path)")
    print(f"   the same without crc32c  {n * 4 / tn:7.0f} MiB/s   throughput with checksums / without {tn / td:.2f} "
          f"(goal >= 0.90; 5 interleaved rounds, medians)")
    print(f"   np.tofile                {n * 4 / tt:7.0f} MiB/s")
    print(f"   codec alone (numcodecs)  {n * 4 / tc:7.0f} MiB/s   "
          f"(compression is not the bottleneck when this is high)")


def write_threads(root: Path, mb: int, rounds: int = 5) -> None:
    """The recorder's chunk path as ``record(write_threads=k)`` runs it: rounds of 8 chunks of 768 KiB (a tiny-model
    step's worth) encoded and written by a pool of k threads, interleaved; wall throughput and CPU of all threads."""
    import resource
    from concurrent.futures import ThreadPoolExecutor

    import zarr

    from dit_lens.store._chunks import chunk_writer
    from dit_lens.store.schema import compressors

    rng = np.random.default_rng(1)
    block = (rng.standard_normal((8, 192, 1024)) * 3).astype(np.float32)  # 8 chunks of 768 KiB
    n = max(8, mb * 4 // 3 // 8 * 8)
    counts = [k for k in (1, 2, 4) if k <= max(2, os.cpu_count() or 1)]
    res = {k: [] for k in counts}
    for r in range(rounds):
        for k in counts if r % 2 == 0 else counts[::-1]:
            arr = zarr.create_array(str(root / f"t{k}.zarr"), shape=(n, 192, 1024), chunks=(1, 192, 1024),
                                    dtype="float32", compressors=compressors(), overwrite=True)
            pool = ThreadPoolExecutor(k) if k > 1 else None
            w = chunk_writer(arr, pool=pool)
            ru, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for i in range(0, n, 8):
                w.write_many([((i + j, 0, 0), block[j:j + 1]) for j in range(8)])
            w.close()
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_SELF)
            res[k].append((wall, after.ru_utime + after.ru_stime - ru.ru_utime - ru.ru_stime))
            if pool is not None:
                pool.shutdown()
            shutil.rmtree(root / f"t{k}.zarr", ignore_errors=True)
    print(f"\n4. write threads: {n} chunks of 768 KiB in rounds of 8, the store's codec; {rounds} interleaved rounds, "
          f"medians ({os.cpu_count()} CPUs)")
    base = statistics.median(w for w, _ in res[1])
    for k in counts:
        wall, cpu = statistics.median(w for w, _ in res[k]), statistics.median(c for _, c in res[k])
        print(f"   {k} thread{'s' if k > 1 else ' '}  {n * 0.75 / wall:7.0f} MiB/s   {base / wall:.2f}x one thread's   "
              f"CPU {cpu * 1e3 / n:5.2f} ms per chunk (all threads)")


def local_paths(root: Path, mb: int, rounds: int = 5) -> None:
    """The chunk writer's two ways onto a local disk, interleaved: its own file writes (temporary file, rename) vs
    zarr's store calls (the same, through zarr's event loop and a worker thread per chunk). Chunks the size of the
    tiny model's (one sample's six layers of 256 tokens x 128 channels: 768 KiB); wall time and the CPU time of the
    whole process (every thread: the writer's, zarr's loop and its workers)."""
    import zarr
    from zarr.storage import LocalStore

    from dit_lens.store import _chunks
    from dit_lens.store.schema import compressors

    class ViaZarr(LocalStore):  # not LocalStore itself: the chunk writer goes through zarr's store calls
        pass

    rng = np.random.default_rng(0)
    block = rng.standard_normal((1, 6, 256, 128)).astype(np.float32)
    n = max(8, mb * 1024 // 768)

    def run(store) -> tuple:
        shutil.rmtree(store.root, ignore_errors=True)
        arr = zarr.create_array(store, shape=(n, 6, 256, 128), chunks=(1, 6, 256, 128), dtype="float32",
                                fill_value=np.nan, compressors=compressors())
        w = _chunks.chunk_writer(arr)
        t, c = time.perf_counter(), time.process_time()
        for i in range(0, n, 8):  # as the recorder calls it: a step's 8 samples per call
            w.write_many([((j, 0, 0, 0), block) for j in range(i, min(i + 8, n))])
        w.close()
        return time.perf_counter() - t, time.process_time() - c

    paths = {"files": LocalStore(root / "files.zarr"), "zarr's store calls": ViaZarr(root / "calls.zarr")}
    for store in paths.values():
        run(store)  # warm-up
    got: dict = {k: [] for k in paths}
    for r in range(rounds):
        for k in (list(paths) if r % 2 == 0 else list(paths)[::-1]):
            got[k].append(run(paths[k]))
    print(f"\n3. the chunk writer onto a local disk: {n} chunks of 768 KiB, 8 per call; {rounds} interleaved "
          f"rounds, medians")
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in got.items()}
    for k, (wall, cpu) in med.items():
        print(f"   {k:<20} {n * 0.75 / wall:7.0f} MiB/s   CPU {cpu * 1e3 / n:6.2f} ms per chunk (all threads)")
    (wf, cf), (wz, cz) = med.values()
    print(f"   files / store calls: wall {wf / wz:.2f}, CPU {cf / cz:.2f}")
    for store in paths.values():
        shutil.rmtree(store.root, ignore_errors=True)


def reductions(root: Path, gb: float) -> None:
    import xarray as xr

    from dit_lens.reduce import channel_reduce
    from dit_lens.store import Layout, create, open_group

    T, C = 4096, 512
    n = int(np.ceil(gb * 2**30 / (T * C * 4)))
    layout = Layout(prompts=[f"p{i}" for i in range(n)], seeds=[0] * n, steps=1, step_index=[0],
                    layers=["double.0"], depth=[0], names=["double.0.img.resid_post"], tokens={"img": T},
                    channels=C, grid=[64, 64])
    url = str(root / "big.zarr")
    shutil.rmtree(url, ignore_errors=True)
    create(url, layout)
    g = open_group(url)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((T, C)).astype(np.float32)
    base[:, :4] *= 300  # a few massive channels
    for i in range(n):
        x = base * np.float32(1 + 0.01 * i)
        g["img.resid_post"][i, 0, 0] = (x.view(np.uint32) & 0xFFFF0000).view(np.float32)
        g["complete"][i, 0] = True
    gbytes = n * T * C * 4 / 2**30
    t0 = time.perf_counter()
    r = channel_reduce(url, "double.0.img.resid_post")
    t_store = time.perf_counter() - t0
    t0 = time.perf_counter()
    ram = xr.open_zarr(url, consolidated=False)["img.resid_post"].values.reshape(-1, C)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    a = np.abs(ram)
    mx, mean, med = a.max(0), a.mean(0, dtype=np.float64), np.median(a, 0)
    t_np = time.perf_counter() - t0
    assert np.array_equal(r.max_abs.values, mx)
    print(f"\n3. per-channel max/mean/median over {gbytes:.2f} GiB ({n} chunks of {T}x{C} float32)")
    print(f"   channel_reduce from the store {gbytes / t_store:6.2f} GiB/s ({t_store:.1f} s)")
    print(f"   numpy from RAM                {gbytes / t_np:6.2f} GiB/s ({t_np:.1f} s; loading it took "
          f"{t_load:.1f} s)")
    lower = np.partition(a, (a.shape[0] - 1) // 2, axis=0)[(a.shape[0] - 1) // 2]
    print(f"   ratio {t_np / t_store:.2f} (goal >= 0.50); exact median equals numpy's lower median: "
          f"{bool(np.array_equal(r.median_abs.values, lower))}")
    del ram, a
    _ = (mean, med)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gb", type=float, default=2.0)
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--write-mb", type=int, default=512)
    p.add_argument("--dir", default="/tmp/dit-lens-bench")
    p.add_argument("--only", choices=("recording", "writes", "reductions"), help="run one part")
    p.add_argument("--model", choices=("tiny", "flux", "flux-dev"), default="tiny",
                   help="the recording part's model: the embedded tiny DiT, a random-weight Flux (1024 tokens), or "
                        "a random-weight Flux.1-dev-sized transformer (4096 tokens, bf16; needs a GPU)")
    p.add_argument("--shrink", action="store_true", help="with --model flux-dev: its depth (the same names) at width "
                   "64 and 64 image tokens, to check a GPU run's commands on the CPU")
    p.add_argument("--device", default="cpu", help="where the recording part's model runs (cpu, cuda)")
    p.add_argument("--kinds", default="plain,full,stats,empty",
                   help="the recording part's variants, comma-separated (plain is always run; full-none: full with "
                        "compression='none'; full-buffered: chunk files through the page cache, not O_DIRECT; "
                        "-traced: values read in an nnsight trace, not by plain hooks)")
    p.add_argument("--names", default="*.*.img.resid_post", help="the recorded names: a pattern or a comma-separated "
                   "list (e.g. 4 names of Flux.1-dev at real size on a GPU)")
    p.add_argument("--write-threads", type=int, default=1, help="the recordings' write_threads (chunks encoded and "
                   "files written at once)")
    add_malloc_option(p)
    a = p.parse_args()
    allocator = fixed_malloc(a.malloc)
    kinds = set(a.kinds.split(","))
    known = {"plain", "full", "full-none", "full-buffered", "full-traced", "stats", "stats-traced", "empty"}
    if not kinds <= known:
        raise SystemExit(f"--kinds: unknown {sorted(kinds - known)}")
    root = Path(a.dir)
    root.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {allocator}")
    if a.only in (None, "recording"):
        recording(root, a.model, a.prompts, a.steps, a.repeats, a.batch, a.device, kinds, a.write_threads,
                  a.names.split(",") if "," in a.names else a.names, a.shrink)
    if a.only in (None, "writes"):
        writes(root, a.write_mb)
        local_paths(root, min(a.write_mb, 192))
        write_threads(root, min(a.write_mb, 192))
    if a.only in (None, "reductions"):
        reductions(root, a.gb)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
