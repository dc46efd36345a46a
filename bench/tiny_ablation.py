"""What makes massive activations grow in the embedded model: the training logs of one GPU sweep, side by side.

    python bench/tiny_ablation.py [--logs bench/tiny_ablation] [--png out/tiny_ablation.png]

Each log is ``log.jsonl`` of ``python -m dit_lens.tiny.train ... --eval-every 60``: every minute the EMA model was
scored on 100 held-out prompts and the image stream's top-1/median channel ratio (mean |x| over tokens, conditional
rows, all 20 steps) was logged per block. The four runs shared one H100 (four processes, 450 s each); run A (the
shipped weights) was then resumed alone for 170 s. Runs differ from A in one setting each (``hparams.json``).
Prints, per run, the ratio of the last block and the shape accuracy against training samples seen, and the ratios
of all runs at the same number of samples.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).with_suffix("")


def load(folder: Path) -> dict[str, list[dict]]:
    runs = {}
    for f in sorted(folder.glob("*.jsonl")):
        runs[f.stem] = [r for r in map(json.loads, f.read_text().splitlines()) if "scores" in r]
    if not runs:
        raise SystemExit(f"no *.jsonl training logs in {folder}")
    return runs


def describe(h: dict, base: dict) -> str:
    diff = [f"{k}={h[k]}" for k in ("lr", "weight_decay", "batch_size") if h[k] != base[k]]
    cfg, bcfg = h["transformer_config"], base["transformer_config"]
    if cfg["num_attention_heads"] != bcfg["num_attention_heads"]:
        diff.append(f"width={32 * cfg['num_attention_heads']}")
    cond, bcond = h.get("conditioning", {}), base.get("conditioning", {})
    for key, default in (("pooled", "clip"), ("registers", 0)):
        if cond.get(key, default) != bcond.get(key, default):
            diff.append(f"{key}={cond.get(key, default)}")
    if h.get("pooled_dropout", 0.0) != base.get("pooled_dropout", 0.0):
        diff.append(f"pooled_dropout={h['pooled_dropout']}")
    return ", ".join(diff) or f"baseline (width {32 * bcfg['num_attention_heads']}, lr {base['lr']:g}, wd " \
        f"{base['weight_decay']:g}, batch {base['batch_size']})"


def at(rows: list[dict], samples: int, value) -> float:
    """``value(row)`` linearly interpolated at ``samples`` training samples."""
    import numpy as np

    return float(np.interp(samples, [r["samples"] for r in rows], [value(r) for r in rows]))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--logs", type=Path, default=HERE)
    p.add_argument("--png", type=Path, default=None)
    p.add_argument("--base", default="A", help="the run the others are described against")
    a = p.parse_args(argv)
    runs = load(a.logs)
    hp = json.loads((a.logs / "hparams.json").read_text())
    last = lambda r: r["top1_over_median"][max(r["top1_over_median"])]  # noqa: E731  (single.N sorts last)
    for name, rows in runs.items():
        print(f"run {name}: {describe(hp[name], hp[a.base])}")
        print(f"  {'samples':>8} {'steps':>6} {'shape':>6} {'IoU':>6} {'last-block top1/median':>23} {'max|x|':>7}")
        for r in rows:
            print(f"  {r['samples']:>8} {r['step']:>6} {r['scores']['shape']:>6.2f} {r['scores']['iou']:>6.3f} "
                  f"{last(r):>23.2f} {max(r['max_abs'].values()):>7.2f}")
    common = min(rows[-1]["samples"] for rows in runs.values())
    print(f"\nat {common} training samples (the shortest run's end; linear interpolation between evaluations):")
    for name, rows in runs.items():
        print(f"  {name}: {describe(hp[name], hp[a.base]):<45} last-block top1/median {at(rows, common, last):6.2f}  "
              f"shape {at(rows, common, lambda r: r['scores']['shape']):.2f}")
    if a.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
        for name, rows in runs.items():
            label = f"{name}: {describe(hp[name], hp[a.base])}"
            ax1.plot([r["samples"] for r in rows], [last(r) for r in rows], marker="o", label=label)
            ax2.plot([r["samples"] for r in rows], [r["scores"]["shape"] for r in rows], marker="o", label=label)
        ax1.set(xlabel="training samples", ylabel="last block top-1 / median", title="massive-activation ratio")
        ax2.set(xlabel="training samples", ylabel="shape accuracy (100 prompts)", title="quality")
        ax1.legend(fontsize=7)
        fig.tight_layout()
        a.png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(a.png, dpi=120)
        print(f"wrote {a.png}")


if __name__ == "__main__":
    main()
