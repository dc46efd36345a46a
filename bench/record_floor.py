"""The least a full recording can cost on this machine: its unavoidable work replayed alone (not a test).

Per step, a full recording must copy each value off the model, reduce its per-channel statistics, lay the values out
as whole chunks, encode them with the store's codec, checksum them and write the chunk files (then, per batch, the
statistics and flags). This script records one batch to get real values and the store's layout, then replays that
work alone, phase by phase, with the recorder's own code on the same values — ``HostCopies.take``, ``StepReducer``,
``StoreWriter.data`` / ``commit`` / ``flush`` / ``close`` into a fresh store — and times each phase's CPU (all
threads) and wall per batch-step. Beside it, interleaved: plain generation of the same batch, stats-only and full
recordings, wall and process CPU, so the recordings' extra CPU in place can be set against the floor's. The store's
phase is also replayed with its chunk files written through the page cache (the store writes them past it, with
O_DIRECT, where the filesystem allows), for comparison.

Where plain generation already keeps every core busy, W ms of added CPU per step costs between W / cores ms of wall
(shared perfectly) and W ms (serial; or an OpenMP team waiting for its slowest thread while another thread holds a
core): the floor lies between 1 + W / (cores * T) and 1 + W / T, T the plain step's wall time.

    python bench/record_floor.py [--model tiny|flux] [--prompts 8] [--steps 20] [--repeats 5]
                                 [--dir /tmp/dit-lens-floor]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import (_flux, _median_ci, _tiny, add_malloc_option, buffered_files,  # noqa: E402 - a sibling
                         fixed_malloc)


def _clock():
    return time.perf_counter(), time.process_time()


def _since(t0) -> tuple:
    wall, cpu = _clock()
    return wall - t0[0], cpu - t0[1]


def _values(url: str, n: int) -> tuple:
    """The recorded store's layout and its values: [(timestep, {name: (n, tokens, channels) float32})] per step."""
    from dit_lens.store import open_group, open_store, read_layout

    layout = read_layout(open_group(url, mode="r"))
    ds = open_store(url)
    values = {name: ds.dit.sel(name).values[:n] for name in layout.names}  # (n, step, tokens, channels)
    times = ds["timestep"].values[0]
    steps = [(float(times[s]), {name: np.ascontiguousarray(v[:, s]) for name, v in values.items()})
             for s in range(layout.steps)]
    return layout, steps


def replay(layout, steps, url: str, write_threads: int) -> dict:
    """Each phase of a full recording's own work over every step, alone: {phase: (wall s, CPU s)}."""
    from dit_lens._host_copy import HostCopies
    from dit_lens._stats import StepReducer
    from dit_lens.store import StoreWriter

    batch = list(range(next(iter(steps[0][1].values())).shape[0]))
    out = {}
    copies = HostCopies()
    t0 = _clock()
    for _, values in steps:
        for v in values.values():
            copies.take(torch.from_numpy(v))
    out["host copies"] = _since(t0)
    reducer, stats = StepReducer(len(layout.names)), []
    t0 = _clock()
    for t, values in steps:
        for name, v in values.items():
            reducer.add(name, torch.from_numpy(v))
        stats.append(reducer.finish(torch.tensor(t)).get())
    out["statistics"] = _since(t0)
    for label, buffered in (("store: chunks, encode, checksums, files, flags", False),
                            ("  the same, files through the page cache", True)):
        shutil.rmtree(url, ignore_errors=True)
        with buffered_files(buffered):
            writer = StoreWriter.create(url, layout, None, None, write_threads)  # the template: fixed, not timed
            t0 = _clock()
            for (_, values), got, step in zip(steps, stats, layout.step_index):
                for name, v in values.items():
                    writer.data(batch, step, name, v)
                writer.commit(batch, step, *got)
            writer.flush(batch)
            writer.close()
            out[label] = _since(t0)
        shutil.rmtree(url, ignore_errors=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("tiny", "flux"), default="tiny")
    p.add_argument("--prompts", type=int, default=8, help="one batch of this many")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--write-threads", type=int, default=1)
    p.add_argument("--dir", default="/tmp/dit-lens-floor")
    add_malloc_option(p)
    a = p.parse_args()
    print(fixed_malloc(a.malloc))
    from dit_lens.record import record

    root = Path(a.dir)
    root.mkdir(parents=True, exist_ok=True)
    n, cores = a.prompts, torch.get_num_threads()
    lens, prompts, plain_batch, kw, label = {"tiny": _tiny, "flux": _flux}[a.model](n, n, "cpu")
    names = lens.names("*.*.img.resid_post")

    def rec(kind):
        url = str(root / f"{kind}.zarr")
        shutil.rmtree(url, ignore_errors=True)
        record(lens, url, prompts, seeds=[0], names=names, num_inference_steps=a.steps, batch_size=n,
               stats_only=kind == "stats", progress=False, write_threads=a.write_threads, **kw)
        return url

    runs = {"plain": lambda: plain_batch(list(range(n)), a.steps), "stats": lambda: rec("stats"),
            "full": lambda: rec("full")}
    url = runs["full"]()  # also the warm-up: real values and the store's layout
    layout, steps = _values(url, n)
    for f in runs.values():
        f()
    mb = sum(v.nbytes for _, values in steps for v in values.values()) / 1e6
    print(f"torch {torch.__version__}, {cores} threads; {label}: one batch of {n} x {a.steps} steps, "
          f"{len(names)} names, {mb / a.steps:.1f} MB of values per step")

    parts = {}
    times = {k: [] for k in runs}
    for r in range(a.repeats):  # interleaved, forwards then backwards
        for k in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            os.sync()
            t0 = _clock()
            runs[k]()
            times[k].append(_since(t0))
        os.sync()
        for k, v in replay(layout, steps, str(root / "replay.zarr"), a.write_threads).items():
            parts.setdefault(k, []).append(v)
    S = a.steps
    T = statistics.median(w for w, _ in times["plain"]) / S * 1e3
    T_cpu = statistics.median(c for _, c in times["plain"]) / S * 1e3
    print(f"\nplain step: {T:.1f} ms wall, {T_cpu:.1f} ms CPU ({T_cpu / T:.2f} cores busy); median of {a.repeats}")
    print("\nthe recording's own work replayed alone, per batch-step (median of each phase):")
    print(f"   {'part':<50} {'CPU ms':>8} {'wall ms':>8} {'CPU / T':>8}")
    W = {}
    for k, v in parts.items():
        W[k] = statistics.median(c for _, c in v) / S * 1e3
        wall = statistics.median(w for w, _ in v) / S * 1e3
        print(f"   {k:<50} {W[k]:8.2f} {wall:8.2f} {W[k] / T:8.1%}")
    W.pop("  the same, files through the page cache")  # shown beside the store's own way, not part of the floor
    for kind, work in (("full", sum(W.values())), ("stats", W["statistics"])):
        lo, hi = 1 + work / (cores * T), 1 + work / T
        print(f"   {kind + ' recording: W':<50} {work:8.2f}          {work / T:8.1%}   floor {lo:.3f}x-{hi:.3f}x")
    print(f"\nmeasured, interleaved (median of {a.repeats}; paired: each run against the plain run of its round):")
    for k in ("stats", "full"):
        r = sorted(x[0] / y[0] for x, y in zip(times[k], times["plain"]))
        lo, hi = _median_ci(r)
        ci = f", 95% CI {lo:.3f}-{hi:.3f}" if lo is not None else ""
        extra = statistics.median(x[1] - y[1] for x, y in zip(times[k], times["plain"])) / S * 1e3
        print(f"   {k:<6} paired {statistics.median(r):.3f}x (quartiles {np.percentile(r, 25):.3f}-"
              f"{np.percentile(r, 75):.3f}{ci}); CPU beyond plain's {extra:.1f} ms per step "
              f"({extra / T:.1%} of T; the call's fixed costs, its store's template among them, included), the floor's "
              f"{sum(W.values()) if k == 'full' else W['statistics']:.1f} ms")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
