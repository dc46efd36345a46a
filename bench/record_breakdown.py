"""Where a stats-only recording spends its time, timed inside the recording itself (not a test).

Whole-run ratios (bench/store_bench.py) swing by 10-30% on a shared machine; the recorder's own work, timed as it
runs, does not cancel against anything and so shows its share directly. Each run records the tiny model's image
stream, stats-only, and prints, per step (the first five) or per run (the last three) and as a share of the run:
  copies     |x| laid out tokens-last in the step's buffer (``_abs_tokens_last``)
  sums       mean, max, rms over tokens (``_sums``)
  median     the exact median's selection (``_median_into``)
  nonfinite  the inf/nan check (``_nonfinite``)
  stats      all of the statistics, with the reducer's own bookkeeping (``StepReducer.add`` and ``finish``)
  template   creating the store (``create``)
  last wait  waiting for the writer thread's last writes (``join``)
  writer     CPU time of the writer thread (it runs beside the model)
With ``--group-mb 16,2,1`` it then runs interleaved rounds with the reducer's buffer capped at each size (16 MB
holds a step's six values; 1 MB one value) and prints the statistics' share for each.

``--mode full`` records the activations too and splits the recording's own work by thread, per step:
  model thread   host       the value's host copy as the store keeps it (``HostCopies.take``)
                 check      the value's shape against the store's layout (``_check_shape``)
                 queue      handing the value to the writer thread (``WriterThread.put``; waits when it is full)
  writer thread  assemble   a layer group's block from its values (``StoreWriter.data``, less its encode)
                 encode     Blosc LZ4 + bit-shuffle of whole chunks (``ChunkWriter.write_many``)
                 flags      statistics, timesteps and complete flags of each batch (``StoreWriter.flush``)
  I/O thread     store      checksums and the chunk writes (``ChunkWriter._put_many``)
and, in interleaved rounds, times variants of the same batches that each add one part, as the recorder takes values
(plain torch hooks on the named blocks): plain pipeline calls; the hooks, taking nothing; each value's statistics;
a stats-only recording (the statistics and the store's template, flags and images); the statistics and the host
copies; the full recording. The overhead is split by difference into the hooks, the statistics, a stats-only store,
the copies and the full recording's writer and store.

    python bench/record_breakdown.py [--mode stats|full] [--model tiny|flux] [--runs 3] [--prompts 32] [--batch 8]
                                     [--steps 20] [--group-mb 16,2,1] [--rounds 4] [--dir /tmp/dit-lens-bench]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

PER_STEP = ("copies", "sums", "median", "nonfinite", "stats")
PER_RUN = ("template", "last wait", "writer")


def _instrument(acc: dict) -> None:
    """Wrap the recorder's parts so each adds its wall time and its thread's CPU time (``"<part> cpu"``) to ``acc``
    (the writer thread's whole run: its CPU time)."""
    from importlib import import_module

    import dit_lens._stats as st
    import dit_lens.store.writer as writer

    rec = import_module("dit_lens.record")  # the module: the attribute dit_lens.record is the function

    def timed(owner, attr, part):
        f = getattr(owner, attr)

        def g(*a, **k):
            t, c = time.perf_counter(), time.thread_time()
            try:
                return f(*a, **k)
            finally:
                acc[part] = acc.get(part, 0.0) + time.perf_counter() - t
                acc[part + " cpu"] = acc.get(part + " cpu", 0.0) + time.thread_time() - c
        setattr(owner, attr, g)

    for attr, part in (("_abs_tokens_last", "copies"), ("_sums", "sums"), ("_median_into", "median"),
                       ("_nonfinite", "nonfinite")):
        timed(st, attr, part)
    timed(st.StepReducer, "add", "stats")
    timed(st.StepReducer, "finish", "stats")  # add reduces a full buffer; finish what is left
    timed(writer, "create", "template")
    import dit_lens.store._chunks as chunks

    from dit_lens._host_copy import HostCopies

    for owner, attr, part in ((HostCopies, "take", "host"), (rec, "_check_shape", "check"),
                              (rec.WriterThread, "put", "queue"), (writer.StoreWriter, "data", "assemble"),
                              (chunks.ChunkWriter, "write_many", "encode"), (writer.StoreWriter, "flush", "flags"),
                              (chunks.ChunkWriter, "_put_many", "store")):
        timed(owner, attr, part)
    timed(rec.WriterThread, "join", "last wait")
    run = rec.WriterThread.run

    def writer_run(self):
        t = time.thread_time()
        try:
            run(self)
        finally:
            acc["writer"] = acc.get("writer", 0.0) + time.thread_time() - t
    rec.WriterThread.run = writer_run


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--group-mb", default="", help="compare the reducer's buffer caps, e.g. 16,2,1 (MB)")
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds of the --group-mb comparison")
    p.add_argument("--dir", default="/tmp/dit-lens-bench")
    p.add_argument("--mode", choices=("stats", "full"), default="stats")
    p.add_argument("--model", choices=("tiny", "flux"), default="tiny",
                   help="--mode full's model: the embedded tiny DiT, or the random Flux of 1024 image tokens "
                        "(bench/store_bench.py's, driven by embeddings)")
    sys.path.insert(0, str(Path(__file__).parent))
    from store_bench import add_malloc_option, fixed_malloc

    add_malloc_option(p)
    a = p.parse_args()
    print(fixed_malloc(a.malloc))

    root = Path(a.dir)
    root.mkdir(parents=True, exist_ok=True)
    url = str(root / "breakdown.zarr")
    acc: dict = {}
    _instrument(acc)
    n_steps = -(-a.prompts // a.batch) * a.steps
    if a.mode == "full":
        return _full(a, url, acc, n_steps)
    if a.model != "tiny":
        raise SystemExit("--model flux: only with --mode full")

    import dit_lens._stats as st
    from dit_lens import Lens
    from dit_lens.record import record
    from dit_lens.tiny.demo import demo_prompts

    lens, prompts = Lens("tiny"), demo_prompts(a.prompts)

    def once() -> float:
        shutil.rmtree(url, ignore_errors=True)
        acc.clear()
        t = time.perf_counter()
        record(lens, url, prompts, seeds=[0], num_inference_steps=a.steps, batch_size=a.batch, stats_only=True,
               progress=False)
        return time.perf_counter() - t

    once()  # warm-up: imports, first allocations
    print(f"stats-only recordings of the tiny model ({a.prompts} prompts in batches of {a.batch} x {a.steps} steps); "
          f"per step of {a.batch} images or per run, and % of the run")
    for _ in range(a.runs):
        total = once()
        step = [f"{k} {acc.get(k, 0) * 1e3 / n_steps:.2f} ms ({acc.get(k, 0) / total * 100:.2f}%)" for k in PER_STEP]
        run = [f"{k} {acc.get(k, 0) * 1e3:.0f} ms ({acc.get(k, 0) / total * 100:.2f}%)" for k in PER_RUN]
        print(f"  run {total:5.2f} s; per step: {', '.join(step)}; per run: {', '.join(run)}")
    sizes = [int(x) for x in a.group_mb.split(",") if x]
    if sizes:
        share = {s: [] for s in sizes}
        default = st._GROUP_BYTES
        for r in range(a.rounds):  # forwards, then backwards: drift hits every size alike
            for s in (sizes if r % 2 == 0 else sizes[::-1]):
                st._GROUP_BYTES = s << 20
                total = once()
                share[s].append(acc["stats"] / total * 100)
        st._GROUP_BYTES = default
        print(f"the statistics' share of the run by the reducer's buffer cap ({a.rounds} interleaved rounds, median)")
        for s, v in share.items():
            print(f"  {s:3d} MB: {statistics.median(v):.2f}%   (each: {' '.join(f'{x:.2f}' for x in v)})")
    shutil.rmtree(root, ignore_errors=True)


def _once(lens, url, prompts, kw, a, acc, stats_only=False) -> float:
    from dit_lens.record import record

    shutil.rmtree(url, ignore_errors=True)
    acc.clear()
    t = time.perf_counter()
    record(lens, url, prompts, seeds=[0], num_inference_steps=a.steps, batch_size=a.batch, progress=False,
           stats_only=stats_only, **kw)
    return time.perf_counter() - t


def _full(a, url, acc, n_steps) -> None:
    """Interleaved variants of the same batches, each adding one part of a full recording: plain pipeline calls;
    hooks (on the named blocks, taking nothing); statistics (every value's, at every step); a stats-only recording;
    copies (statistics, and the values copied to host memory, then dropped); the full recording."""
    from dit_lens import _collect, _samples
    from dit_lens._host_copy import HostCopies
    from dit_lens._stats import StepReducer
    from dit_lens.record import _batch_embeds

    from store_bench import _flux, _tiny  # the same models as the whole-run benchmark

    lens, prompts, _, kw, label = (_tiny if a.model == "tiny" else _flux)(a.prompts, a.batch, "cpu")
    names = lens.names("*.*.img.resid_post")
    batches = [list(range(i, min(i + a.batch, a.prompts))) for i in range(0, a.prompts, a.batch)]

    def args(b) -> tuple:  # (prompts, kwargs) of one batch, as the recorder calls the pipeline
        if kw:
            return None, _batch_embeds(kw, b, a.prompts)
        return [prompts[i] for i in b], {}

    def plain() -> float:
        t = time.perf_counter()
        for b in batches:
            text, extra = args(b)
            lens.pipeline(*([text] if text else []), num_inference_steps=a.steps,
                          generator=_samples.generators([0] * len(b)), **extra)
        return time.perf_counter() - t

    def hooked(read: bool, copy: bool) -> float:  # what the recorder does per value, without its store
        keep, reducer, copies = set(range(a.steps)), StepReducer(len(names)), HostCopies()
        t = time.perf_counter()
        for b in batches:
            text, extra = args(b)
            take = _collect.Hooked(names, "cond", keep, a.steps, None, not copy, reducer,
                                   emit=lambda n, v: copies.take(v), check=None)
            with lens._call_hooks(text, extra, watch=names, on_value=take.value if read else lambda *x: None,
                                  on_call=lambda run: take.end(run) if read else None):
                lens.pipeline(*([text] if text else []), num_inference_steps=a.steps,
                              generator=_samples.generators([0] * len(b)), **extra)
        return time.perf_counter() - t

    variants = {"plain": plain, "hooks": lambda: hooked(False, False), "statistics": lambda: hooked(True, False),
                "stats-only": lambda: _once(lens, url, prompts, kw, a, acc, stats_only=True),
                "copies": lambda: hooked(True, True), "recording": lambda: _once(lens, url, prompts, kw, a, acc)}
    for f in variants.values():
        f()  # warm-up
    print(f"full recordings of the {label} ({a.prompts} prompts in batches of {a.batch} x {a.steps} steps, all "
          f"{len(names)} image-stream block outputs), {a.runs} interleaved rounds; ms per step of {a.batch} images")
    times: dict = {k: [] for k in variants}
    parts: list = []
    for r in range(a.runs):
        for k in (list(variants) if r % 2 == 0 else list(variants)[::-1]):  # forwards, then backwards
            times[k].append(variants[k]())
            if k == "recording":
                parts.append(dict(acc))
    med = {k: statistics.median(v) * 1e3 / n_steps for k, v in times.items()}
    for k in variants:
        q = sorted(x / p for x, p in zip(times[k], times["plain"]))
        print(f"  {k:<10} {med[k]:7.1f} ms/step   paired {statistics.median(q):.3f}x (quartiles "
              f"{q[len(q) // 4]:.3f}-{q[(3 * len(q)) // 4]:.3f})")
    rows = [("hooks on the named blocks, taking nothing", med["hooks"] - med["plain"]),
            ("statistics (every value, every step)", med["statistics"] - med["hooks"]),
            ("a stats-only store (template, flags, images)", med["stats-only"] - med["statistics"]),
            ("copies to host memory", med["copies"] - med["statistics"]),
            ("full: writer, store and flags (the rest)", med["recording"] - med["copies"])]
    for label, v in rows:
        print(f"  {label:<46} {v:7.2f} ms/step  ({v / med['plain'] * 100:5.1f}% of plain)")
    print("  inside the recording (timed where they run; the writer and I/O threads run beside the model, so their "
          "wall time\n  includes waiting for a core: their thread's CPU time is what they take from the model):")
    for part, thread in (("host", "model"), ("check", "model"), ("queue", "model"), ("assemble", "writer"),
                         ("encode", "writer"), ("flags", "writer"), ("store", "I/O")):
        cols = []
        for key in (part, part + " cpu"):
            sub = key.replace(part, "encode") if part == "assemble" else None  # assemble calls encode: its own part
            vals = [p.get(key, 0) - (p.get(sub, 0) if sub else 0) for p in parts]
            cols.append(statistics.median(vals) * 1e3 / n_steps)
        print(f"    {part:<9} {thread:<7} {cols[0]:7.2f} ms/step wall, {cols[1]:6.2f} ms/step CPU")
    shutil.rmtree(Path(a.dir), ignore_errors=True)


if __name__ == "__main__":
    main()
