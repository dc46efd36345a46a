"""The prepared GPU check runs end to end on shrunken configs, so it is ready when a GPU is (not a benchmark)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_shrunken_configs(tmp_path):
    out = tmp_path / "rows.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--shrink", "--models",
                    "flux-dev,flux2-klein,qwen-image,sana", "--json", str(out)], check=True, capture_output=True)
    rows = {r["model"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"flux-dev", "flux2-klein", "qwen-image", "sana"}
    assert rows["flux2-klein"]["calls_per_step"] == rows["qwen-image"]["calls_per_step"] == 2
    assert rows["flux-dev"]["calls_per_step"] == rows["sana"]["calls_per_step"] == 1
    assert all(r["steps_run"] == 3 and len(r["top_channels_last_block"]) == 4 for r in rows.values())


def test_v2_ablation_trains_each_lever_and_tabulates_them(tmp_path):
    """The v2 training sweep at smoke scale on the CPU (its real run needs a GPU): each run trains, evaluates, and
    the shared table describes it by the one lever it changes."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "tiny_v2_ablation.py"), "--out", str(tmp_path),
                          "--steps", "2", "--batch-size", "2", "--eval-n", "2", "--runs", "A,C"],
                         check=True, capture_output=True, text=True).stdout
    assert "run C: pooled=none, registers=4" in out and "last-block top1/median" in out
    assert (tmp_path / "ablation.png").stat().st_size > 1000
    hp = json.loads((tmp_path / "logs" / "hparams.json").read_text())
    assert hp["C"]["conditioning"] == {"pooled": "none", "registers": 4}
