"""Where a recording's time goes, by sampling every Python thread with py-spy (a benchmark, not a test).

Each kind (plain generation, a stats-only recording, a full recording, a full recording stored uncompressed) runs in
its own process: the model is built and warmed up on one batch of that kind, then py-spy attaches (``--threads``,
active samples only) and the timed workload runs. Samples are attributed by thread (the model's
thread; the recorder's writer thread; its chunk I/O thread; any other) and, on the model's thread, by the innermost
frame that belongs to a known part:

    statistics   dit_lens/_stats*.py           per-channel reductions on the model's thread
    hand-off     dit_lens/_handoff.py, host_array, record._check_shape   the value to the writer's queue
    waiting      a lock or a queue (the writer's queue full)
    dit-lens     the rest of dit_lens (reads by name, the step loop, the store's template and claims)
    tracer       nnsight (its hooks, envoys, interleaving, the traced block's compilation)
    model        diffusers, transformers, dit_lens/tiny (the pipeline's own Python and the torch kernels it calls)
    other        the standard library and anything else
(torch's own Python frames count for their caller: a reduction dit-lens calls is dit-lens's). Other threads count
only samples that are not waiting on a lock, a queue or a socket. Last, per kind, the model thread's busiest frames among the
recording's parts (``--top``).

Times are shares of the run's wall time: the model thread runs throughout the timed workload, so one of its samples
stands for wall / (its samples); the other threads' active samples are scaled alike (py-spy does not see torch's
OpenMP workers, which run only inside kernels the model thread is in). The workload is the same
batches ``bench/store_bench.py`` times. py-spy is not a dependency of dit-lens: ``pip install py-spy``.

    python bench/record_profile.py [--model tiny|flux] [--kinds plain,stats,full,full-none] [--prompts 16]
                                   [--batch 8] [--steps 20] [--rate 50] [--rounds 1] [--top 5]
                                   [--dir /tmp/dit-lens-profile]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PARTS = ("statistics", "hand-off", "waiting", "dit-lens", "tracer", "model", "other")
THREADS = ("model thread", "writer thread", "I/O thread", "other threads")


def _file(frame: str) -> str:
    return frame[frame.rfind("(") + 1:]


def _idle(leaf: str) -> bool:
    """A sample of a thread waiting on a lock, a queue or a socket (py-spy's own idle test misses these)."""
    return any(f in _file(leaf) for f in ("threading.py", "selectors.py", "queue.py")) or \
        leaf.startswith("_worker (concurrent/futures/thread.py")


def _part(frames: list) -> tuple[str, str]:
    """(the part a model-thread sample belongs to, the frame that decided it) (frames root first): waiting, else the
    innermost frame of dit-lens or the model's libraries; nnsight's when its own code runs (a module's kernels
    under its hooks are the model's); torch's and the standard library's frames count for their caller."""
    if not frames:
        return "other", ""
    if _idle(frames[-1]):
        return "waiting", frames[-2] if len(frames) > 1 else frames[-1]
    kernel = "torch/nn/" in _file(frames[-1])  # a module's forward or a functional op: compute, whoever wraps it
    for frame in reversed(frames):
        where = _file(frame)
        if "dit_lens/_stats" in where:
            return "statistics", frame
        if "dit_lens/_handoff.py" in where or frame.startswith(("host_array ", "_check_shape ")):
            return "hand-off", frame
        if "diffusers/" in where or "transformers/" in where or "dit_lens/tiny/" in where:  # the tiny pipeline's
            return "model", frame
        if "dit_lens/" in where:
            return "dit-lens", frame
        if "nnsight/" in where and not kernel:
            return "tracer", frame
    return "other", frames[-1]


def _thread(name: str) -> str:
    if name == "MainThread":
        return "model thread"
    if name.startswith("dit-lens-writer"):
        return "writer thread"
    if name.startswith("dit-lens-chunks"):
        return "I/O thread"
    return "other threads"


def summarise(raw: Path) -> tuple[collections.Counter, collections.Counter, collections.Counter]:
    """(samples per thread, samples per part of the model thread, samples per (part, deciding frame)) from py-spy's
    raw output: the model thread's samples inside the timed workload only (not the wait for the profiler, nor the
    interpreter's exit)."""
    threads, parts, frames_of = collections.Counter(), collections.Counter(), collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        role = _thread(frames[0].split(": ", 1)[-1])
        if role == "model thread":
            # the workload's frames, or the traced block's, which nnsight runs on this thread from its own root
            if not any(f.startswith(("child.<locals>.run ", "Mediator._run ")) for f in frames):
                continue
            part, frame = _part(frames[1:])
            parts[part] += int(n)
            frames_of[part, frame] += int(n)
        elif len(frames) < 2 or _idle(frames[-1]):
            continue
        threads[role] += int(n)
    return threads, parts, frames_of


def child(a) -> None:
    """Build the model, warm up, say so, wait for the profiler, run the workload, print its wall time."""
    sys.path.insert(0, str(Path(__file__).parent))
    import store_bench
    from dit_lens.record import record

    build = {"tiny": store_bench._tiny, "flux": store_bench._flux}[a.model]
    lens, prompts, plain_batch, kw, _ = build(a.prompts, a.batch, "cpu")
    batches = [list(range(i, min(i + a.batch, a.prompts))) for i in range(0, a.prompts, a.batch)]
    url = str(Path(a.dir) / f"{a.child}.zarr")

    def run(warm: bool) -> None:
        if a.child == "plain":
            for b in batches[:1] if warm else batches:
                plain_batch(b, a.steps)
            return
        record(lens, url, prompts, seeds=[0], names="*.*.img.resid_post", num_inference_steps=a.steps,
               batch_size=a.batch, stats_only=a.child == "stats", progress=False, samples=batches[0] if warm else None,
               **({"compression": "none"} if a.child == "full-none" else {}), **kw)

    run(warm=True)
    shutil.rmtree(url, ignore_errors=True)  # the warm-up's store goes before the clock starts
    Path(a.dir, "ready").touch()
    while not Path(a.dir, "go").exists():
        time.sleep(0.05)
    t = time.perf_counter()
    run(warm=False)
    print(f"{time.perf_counter() - t:.3f}", flush=True)
    shutil.rmtree(url, ignore_errors=True)


def profile(a, kind: str) -> tuple:
    for f in ("ready", "go"):
        Path(a.dir, f).unlink(missing_ok=True)
    args = [sys.executable, __file__, "--child", kind, "--model", a.model, "--prompts", str(a.prompts),
            "--batch", str(a.batch), "--steps", str(a.steps), "--dir", a.dir]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not Path(a.dir, "ready").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{kind}: the workload process ended (or took 10 min) before it was ready")
        time.sleep(0.1)
    raw = Path(a.dir, f"{kind}.raw")
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(proc.pid), "--threads", "--rate",
                            str(a.rate), "--format", "raw", "--output", str(raw)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attached
    Path(a.dir, "go").touch()
    out, _ = proc.communicate(timeout=1800)
    spy.wait(timeout=120)
    if proc.returncode != 0 or not raw.exists():
        raise SystemExit(f"{kind}: the workload (exit {proc.returncode}) or py-spy (exit {spy.returncode}) failed")
    return float(out.split()[-1]), *summarise(raw)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("tiny", "flux"), default="tiny")
    p.add_argument("--kinds", default="plain,stats,full,full-none")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rate", type=int, default=50, help="samples per second per thread")
    p.add_argument("--rounds", type=int, default=1, help="profiles of each kind, interleaved, summed")
    p.add_argument("--top", type=int, default=5, help="the busiest frames of the recording's parts, per kind")
    p.add_argument("--dir", default="/tmp/dit-lens-profile")
    p.add_argument("--child", help=argparse.SUPPRESS)
    sys.path.insert(0, str(Path(__file__).parent))
    from store_bench import add_malloc_option, fixed_malloc

    add_malloc_option(p)
    a = p.parse_args()
    Path(a.dir).mkdir(parents=True, exist_ok=True)
    if a.child:  # under the parent's allocator settings (its environment)
        return child(a)
    print(fixed_malloc(a.malloc))
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    kinds = a.kinds.split(",")
    if not set(kinds) <= {"plain", "stats", "full", "full-none"}:
        raise SystemExit(f"--kinds: unknown {sorted(set(kinds) - {'plain', 'stats', 'full', 'full-none'})}")
    steps = -(-a.prompts // a.batch) * a.steps
    print(f"{a.model} model, {a.prompts} prompts in batches of {a.batch} x {a.steps} steps ({steps} batch-steps); "
          f"py-spy at {a.rate} Hz; {os.cpu_count()} CPUs")
    rows = {}
    for r in range(a.rounds):  # interleaved; each kind's samples and wall times summed over rounds
        for kind in kinds if r % 2 == 0 else kinds[::-1]:
            wall, *counts = profile(a, kind)
            old = rows.get(kind, (0.0, collections.Counter(), collections.Counter(), collections.Counter()))
            rows[kind] = (old[0] + wall, *(x + y for x, y in zip(old[1:], counts)))
    steps *= a.rounds
    # one sample in ms per batch-step: the model thread runs throughout the timed workload, so its samples span it
    ms = {k: rows[k][0] * 1000 / steps / max(1, rows[k][1]["model thread"]) for k in kinds}
    print(f"\n{'ms per batch-step':<22}" + "".join(f"{k:>11}" for k in kinds))
    print(f"{'wall':<22}" + "".join(f"{rows[k][0] * 1000 / steps:11.1f}" for k in kinds))
    if "plain" in rows:
        print(f"{'  / plain':<22}" + "".join(f"{rows[k][0] / rows['plain'][0]:10.3f}x" for k in kinds))
    for t in THREADS:
        print(f"{t:<22}" + "".join(f"{rows[k][1][t] * ms[k]:11.1f}" for k in kinds))
        if t == "model thread":
            for part in PARTS:
                print(f"{'  ' + part:<22}" + "".join(f"{rows[k][2][part] * ms[k]:11.1f}" for k in kinds))
    own = ("statistics", "hand-off", "waiting", "dit-lens", "tracer")
    print(f"{'recording, model thr.':<22}" + "".join(f"{sum(rows[k][2][p] for p in own) * ms[k]:11.1f}" for k in kinds))
    print(f"{'samples (model)':<22}" + "".join(f"{rows[k][1]['model thread']:11d}" for k in kinds))
    print("(kinds ran in separate processes, not interleaved runs: bench/store_bench.py measures ratios to plain)")
    for k in kinds:  # where the recording's parts of the model thread are spent
        top = [(part, frame, n) for (part, frame), n in rows[k][3].most_common() if part in own][:a.top]
        if top:
            print(f"\n{k}: the model thread's busiest recording frames (ms per batch-step)")
            for part, frame, n in top:
                print(f"   {n * ms[k]:7.1f}  {part:<11} {frame}")
    shutil.rmtree(a.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
