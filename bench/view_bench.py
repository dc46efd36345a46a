"""How fast ``dit-lens view`` answers over a large store: the latency of each view through its HTTP API, as the page
asks for them, at random names, steps, samples and channels.

    python bench/view_bench.py [--store /tmp/view-2g.zarr] [--gb 2] [--requests 40]

Records the store first if it is not there (the embedded model, every image-stream block output at every one of 20
steps: ~15.7 MB a sample, so --gb 2 is ~128 samples, a few minutes on 2 cores), then starts the server and times
each request from the client: median, 95th percentile and the slowest, per view, and the first (cold) request.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, default=Path("/tmp/view-2g.zarr"))
    p.add_argument("--gb", type=float, default=2.0)
    p.add_argument("--requests", type=int, default=40)
    a = p.parse_args(argv)
    if not (a.store / "zarr.json").is_file():
        from dit_lens.tiny.demo import demo_prompts

        n = max(1, round(a.gb * 1e9 / 15.7e6))
        prompts = demo_prompts(n)
        t = time.time()
        subprocess.run(["dit-lens", "record", str(a.store), "--prompts", *prompts, "--num-inference-steps", "20",
                        "--batch-size", "8"], check=True)
        print(f"recorded {n} samples in {time.time() - t:.0f} s")
    print(f"store {a.store}: {_size(a.store) / 1e9:.2f} GB on disk")

    from dit_lens.view import serve

    t = time.time()
    server = serve(str(a.store))
    opened = time.time() - t
    with urllib.request.urlopen(server.url + "api/info") as r:
        import json

        info = json.loads(r.read())
    rng = random.Random(0)

    def url(view: str) -> str:
        name = rng.choice(info["names"])
        q = f"name={name}&step={rng.randrange(len(info['steps']))}&sample={rng.randrange(len(info['samples']))}&k=4"
        if view == "heatmap":
            q += f"&channel={rng.randrange(info['channels'])}"
        if view == "consistency":
            q = f"name={name}&k=4"
        return f"{server.url}api/{view}?{q}"

    def timed(u: str) -> float:
        t0 = time.perf_counter()
        with urllib.request.urlopen(u) as r:
            r.read()
        return (time.perf_counter() - t0) * 1000

    cold = timed(url("heatmap"))
    time.sleep(3)  # the scorer's import finishes in the background (cluster IoU)
    print(f"open {opened * 1000:.0f} ms; first heat map {cold:.0f} ms")
    print(f"{'view':<12} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}  ({a.requests} requests each)")
    for view in ("heatmap", "profile", "clusters", "consistency"):
        ms = sorted(timed(url(view)) for _ in range(a.requests))
        print(f"{view:<12} {statistics.median(ms):>10.0f} {ms[int(0.95 * (len(ms) - 1))]:>8.0f} {ms[-1]:>8.0f}")
    page = sorted(timed(server.url) for _ in range(10))
    print(f"{'page':<12} {statistics.median(page):>10.0f} {page[-2]:>8.0f} {page[-1]:>8.0f}")
    server.close()


if __name__ == "__main__":
    main()
