"""Training runs towards an embedded model v2 whose massive activations are Flux-like, side by side: the same
budget per run, one lever changed at a time, each evaluated as it trains (shape accuracy and the image stream's
top-1/median channel ratio per block); then bench/tiny_ablation.py's table and figure over their logs.

    python bench/tiny_v2_ablation.py --out runs/v2 --device cuda --batch-size 128 --workers 2 \\
        --time-limit 420 --eval-every 60 --parallel 5                      # a GPU: ~8 minutes for the five runs
    python bench/tiny_v2_ablation.py --out /tmp/v2 --steps 3 --batch-size 4 --eval-n 4    # a CPU smoke run

Runs (``--runs`` picks some): A the v1 recipe (CLIP's pooled output modulates every block); B no pooled
modulation, the prompt travels through the text tokens alone, as T5's do in Flux; C B + 4 register tokens (candidate
attention sinks); D a weak pooled path (zeroed for half the training rows); E C at twice the width (width doubled
the ratio in the v1 ablation). Writes ``OUT/<run>/`` (checkpoints, ``ema.safetensors``, ``log.jsonl``) and
``OUT/logs/`` (the logs and ``hparams.json`` as tiny_ablation.py reads them), and ``OUT/ablation.png``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RUNS = {
    "A": [],
    "B": ["--pooled", "none"],
    "C": ["--pooled", "none", "--registers", "4"],
    "D": ["--pooled-dropout", "0.5"],
    "E": ["--pooled", "none", "--registers", "4", "--heads", "8"],
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--runs", default=",".join(RUNS), help=f"which of {','.join(RUNS)}")
    p.add_argument("--parallel", type=int, default=1, help="runs trained at once (one GPU can hold several)")
    p.add_argument("--steps", type=int, default=10**6)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=None)
    p.add_argument("--eval-every", type=float, default=0.0, help="seconds between evaluations (0: every step)")
    p.add_argument("--eval-n", type=int, default=100)
    a = p.parse_args(argv)
    names = [r for r in a.runs.split(",") if r]
    unknown = [r for r in names if r not in RUNS]
    if unknown or not names:
        p.error(f"--runs: choose from {','.join(RUNS)} (got {unknown or 'none'})")
    if a.time_limit is None and a.steps == 10**6:
        p.error("give --steps or --time-limit: a run would not end")
    common = ["--steps", str(a.steps), "--batch-size", str(a.batch_size), "--device", a.device, "--workers",
              str(a.workers), "--eval-every", str(a.eval_every), "--eval-n", str(a.eval_n), "--log-every", "1",
              "--ckpt-every", str(max(1, min(a.steps, 1000)))]
    if a.time_limit is not None:
        common += ["--time-limit", str(a.time_limit)]
    pending, running, failed = list(names), {}, []
    t0 = time.time()
    while pending or running:
        while pending and len(running) < a.parallel:
            name = pending.pop(0)
            (a.out / name).mkdir(parents=True, exist_ok=True)
            log = open(a.out / name / "train.out", "ab")
            running[name] = subprocess.Popen([sys.executable, "-m", "dit_lens.tiny.train", "--out",
                                              str(a.out / name), *common, *RUNS[name]], stdout=log,
                                             stderr=subprocess.STDOUT)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                del running[name]
                if proc.returncode:
                    failed.append(name)
                print(f"run {name} {'failed' if proc.returncode else 'done'} at {time.time() - t0:.0f} s "
                      f"({a.out / name / 'train.out'})", flush=True)
        time.sleep(0.5)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
        return 1
    logs = a.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    hparams = {}
    for name in names:
        (logs / f"{name}.jsonl").write_text((a.out / name / "log.jsonl").read_text())
        hparams[name] = json.loads((a.out / name / "hparams.json").read_text())
    (logs / "hparams.json").write_text(json.dumps(hparams, indent=2))
    sys.path.insert(0, str(Path(__file__).parent))
    import tiny_ablation

    tiny_ablation.main(["--logs", str(logs), "--png", str(a.out / "ablation.png"), "--base", names[0]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
