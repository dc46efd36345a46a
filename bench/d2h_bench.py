"""A recorded value's way to host memory vs the copy limit (a benchmark, not a test).

Values of one shape (default: one image-stream value of Flux.1-dev at 1024 x 1024, (1, 4096, 3072) bf16, 24 MiB),
interleaved rounds of:

  pinned loop   the copy limit: each value copied into a reused pinned buffer (``non_blocking``), synchronised once
  blocking      ``value.to("cpu")``: a synchronising copy into fresh pageable memory per value (what a recording did
                before ``dit_lens._host_copy``)
  recorder      ``HostCopies.take`` per value and the writer's ``get()`` (here on this thread, at most ``--queue``
                values in flight, as the writer's bounded queue allows)
and the same beside a model's work (unless ``--no-compute``): one matmul of ``--width`` standing in for a block
before each value is taken: compute alone, compute + blocking copies, compute + the recorder's copies. Prints bytes per second of each and the recorder's share of the pinned loop's bandwidth (#23's goal: >= 70%),
and the time each copy mode adds to the compute.

On a CPU the "pinned" buffers are plain memory and the recorder copies at once: the script runs (and is tested)
there, but the numbers that matter are a GPU's: ``python bench/d2h_bench.py --device cuda``.

    python bench/d2h_bench.py [--device cuda] [--shape 1,4096,3072] [--dtype bf16] [--values 64] [--rounds 5]
                              [--queue 16] [--no-compute] [--width 8192]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from store_bench import _sync  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def variants(values: list, device, queue: int, compute: bool, width: int) -> dict:
    """{name: fn() -> seconds} over ``values`` (device tensors)."""
    from collections import deque

    from dit_lens._host_copy import HostCopies, on_host

    pinned = device.type == "cuda"
    bufs = [torch.empty(values[0].shape, dtype=values[0].dtype, pin_memory=pinned) for _ in range(2)]

    def timed(fn):
        def run():
            _sync(device.type)
            t = time.perf_counter()
            fn()
            _sync(device.type)
            return time.perf_counter() - t
        return run

    def pinned_loop():
        for i, v in enumerate(values):
            bufs[i % 2].copy_(v, non_blocking=pinned)

    def blocking():
        for v in values:
            v.to("cpu", copy=True)

    def recorder(between=None):
        copies, flight = HostCopies(), deque()
        for v in values:
            if between is not None:
                between()
            flight.append(copies.take(v))
            if len(flight) > queue:
                on_host(flight.popleft())
        while flight:
            on_host(flight.popleft())

    out = {"pinned loop": timed(pinned_loop), "blocking": timed(blocking), "recorder": timed(recorder)}
    if compute:
        w = torch.randn(width, width, device=device, dtype=values[0].dtype) / width ** 0.5
        state = {"x": torch.randn(width, width, device=device, dtype=values[0].dtype)}

        def block():  # one stand-in block per value
            state["x"] = state["x"] @ w

        def compute_only():
            for _ in values:
                block()

        def compute_blocking():
            for v in values:
                block()
                v.to("cpu", copy=True)

        out.update({"compute": timed(compute_only), "compute + blocking": timed(compute_blocking),
                    "compute + recorder": timed(lambda: recorder(block))})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--shape", default="1,4096,3072")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    p.add_argument("--values", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--queue", type=int, default=16, help="values in flight at most (record's queue_size)")
    p.add_argument("--no-compute", action="store_true", help="the copies alone, no stand-in blocks beside them")
    p.add_argument("--width", type=int, default=8192, help="the stand-in block's square matmul")
    a = p.parse_args()
    device = torch.device(a.device)
    shape = tuple(int(s) for s in a.shape.split(","))
    g = torch.Generator(device=device).manual_seed(0)
    values = [torch.randn(shape, generator=g, device=device).mul_(1e3).to(DTYPES[a.dtype]) for _ in range(a.values)]
    nbytes = sum(v.numel() * v.element_size() for v in values)
    fns = variants(values, device, a.queue, not a.no_compute, a.width)
    for fn in fns.values():  # warm-up: pinned buffers, the side stream, kernels
        fn()
    times = {k: [] for k in fns}
    for r in range(a.rounds):  # interleaved, forwards then backwards
        for k in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            times[k].append(fns[k]())
    t = {k: statistics.median(v) for k, v in times.items()}
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{a.values} values of {shape} {a.dtype} ({nbytes / 2**20:.0f} MiB) to host memory on {where}, "
          f"median of {a.rounds} interleaved rounds")
    for k in ("pinned loop", "blocking", "recorder"):
        print(f"   {k:<12} {t[k] * 1e3:8.1f} ms  {nbytes / t[k] / 1e9:6.2f} GB/s  "
              f"{t['pinned loop'] / t[k]:.2f} of the pinned loop")
    if "compute" in t:
        c = t["compute"]
        print(f"   beside compute ({a.width}x{a.width} matmul per value): compute alone {c * 1e3:.1f} ms")
        for k in ("compute + blocking", "compute + recorder"):
            added = t[k] - c
            print(f"   {k:<20} {t[k] * 1e3:8.1f} ms  adds {added * 1e3:7.1f} ms ({t[k] / c:.3f}x); the copies "
                  f"alone at the pinned loop's rate: {t['pinned loop'] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
