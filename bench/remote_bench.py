"""Remote recording: what travels back per step, and what the request round trip costs (not a test).

One request per batch: ``record(..., remote=...)`` runs the batch on the server, which reduces the statistics there
and sends back, per recorded step, (4, rows, channels) float32 statistics per name, plus every value unless
``stats_only``. This measures, on the random Flux of ``medium_flux`` (width 384, 4 + 8 blocks, every
``*.*.img.resid_post``):
  bytes    the serialized size of one step's collected result (torch.save, as a server returns saves), stats-only vs
           full, and their ratio
  time     record(remote="local") (nnsight's serialization round trip, no network) against a local record, both
           modes, interleaved over repeats (median)

    python bench/remote_bench.py [--size 512] [--batch 4] [--steps 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import tempfile
import time

import torch

from dit_lens import Lens, _collect, record
from dit_lens._stats import StepReducer
from dit_lens.testing import medium_flux


def step_bytes(lens, kw, names, stats_only: bool) -> int:
    """Serialized size of the first step a server would send back."""
    reducer = StepReducer(len(names))
    with lens.trace(num_inference_steps=1, seed=0, remote="local", **kw) as tracer:
        got = list().save()
        for step in tracer.dit.steps():
            got.append(_collect.collect(tracer.dit, step, names, "cond", {0}, None, stats_only, reducer))
    buffer = io.BytesIO()
    torch.save(got[0], buffer)
    return buffer.getbuffer().nbytes


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    pipe, kw = medium_flux(a.batch, a.size)
    pipe.set_progress_bar_config(disable=True)
    lens = Lens(pipe, example=dict(kw, num_inference_steps=1))
    names = lens.names("*.*.img.resid_post")
    print(f"random Flux, width 384, {len(names)} names, {lens.img_tokens} image tokens, batch {a.batch}")
    full, stats = step_bytes(lens, kw, names, False), step_bytes(lens, kw, names, True)
    print(f"bytes back per step: full {full:,}  stats-only {stats:,}  ratio {full / stats:.0f}x")
    times = {k: [] for k in ("local full", "remote full", "local stats", "remote stats")}
    root = tempfile.mkdtemp()
    try:
        for r in range(a.repeats):
            for key in times:
                where, mode = key.split()
                url = f"{root}/{r}_{where}_{mode}.zarr"
                t0 = time.perf_counter()
                record(lens, url, [f"p{i}" for i in range(a.batch)], names=names, num_inference_steps=a.steps,
                       stats_only=mode == "stats", batch_size=a.batch, progress=False,
                       remote="local" if where == "remote" else False, **kw)
                times[key].append(time.perf_counter() - t0)
                shutil.rmtree(url)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    for mode in ("full", "stats"):
        print(f"{mode:5s}: local {med['local ' + mode]:.2f} s  remote='local' {med['remote ' + mode]:.2f} s  "
              f"ratio {med['remote ' + mode] / med['local ' + mode]:.2f}x")


if __name__ == "__main__":
    main()
