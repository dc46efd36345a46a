"""The prepared GPU check runs end to end on shrunken configs, so it is ready when a GPU is (not a benchmark)."""

from __future__ import annotations

import json
import os
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


def test_record_profile_attributes_each_sample_to_its_thread_and_part(tmp_path):
    """The profile's attribution, on py-spy's raw format: the model thread counted only inside the workload (or the
    traced block nnsight runs from its own root); a kernel under nnsight's hooks is the model's, nnsight's own code
    the tracer's, a reduction dit-lens calls dit-lens's; other threads only when not waiting."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import record_profile
    finally:
        sys.path.remove(str(ROOT / "bench"))
    run = "MainThread;<module> (record_profile.py:1);child (record_profile.py:2);child.<locals>.run (record_profile.py:3)"
    lines = [
        f"thread (1): {run};__call__ (diffusers/pipe.py:9);run_body (nnsight/intervention/x.py:1);"
        "Linear.forward (torch/nn/modules/linear.py:125) 7",
        f"thread (1): {run};__call__ (diffusers/pipe.py:9);Controller.__call__ (nnsight/intervention/x.py:2) 3",
        "thread (1): MainThread;Mediator._run (nnsight/intervention/interleaver.py:245);collect (dit_lens/_collect.py:31);"
        "_sums (dit_lens/_stats.py:75);mean (torch/_tensor.py:1) 5",
        "thread (1): MainThread;Mediator._run (nnsight/intervention/interleaver.py:245);collect (dit_lens/_collect.py:31)"
        ";to (torch/_tensor.py:1) 2",
        f"thread (1): {run};record (dit_lens/record.py:1);put (dit_lens/_handoff.py:45);put (queue.py:140) 4",
        "thread (1): MainThread;<module> (record_profile.py:1);child (record_profile.py:2);sleep (time.py:1) 50",
        "thread (1): MainThread 9",
        "thread (2): dit-lens-writer;Thread._bootstrap (threading.py:1);run (dit_lens/_handoff.py:1);"
        "write_many (dit_lens/store/_chunks.py:94) 6",
        "thread (2): dit-lens-writer;Thread._bootstrap (threading.py:1);run (dit_lens/_handoff.py:1);"
        "Condition.wait (threading.py:331) 40",
        "thread (3): dit-lens-chunks_0;Thread._bootstrap (threading.py:1);_worker (concurrent/futures/thread.py:81) 30",
        "thread (3): dit-lens-chunks_0;Thread._bootstrap (threading.py:1);_put_file (dit_lens/store/_chunks.py:154) 8",
    ]
    raw = tmp_path / "full.raw"
    raw.write_text("\n".join(lines) + "\n")
    threads, parts, frames = record_profile.summarise(raw)
    assert threads == {"model thread": 21, "writer thread": 6, "I/O thread": 8}
    assert parts == {"model": 7, "tracer": 3, "statistics": 5, "dit-lens": 2, "waiting": 4}
    assert frames[("statistics", "_sums (dit_lens/_stats.py:75)")] == 5  # the frame that decided each part
    assert frames[("dit-lens", "collect (dit_lens/_collect.py:31)")] == 2
    assert frames[("waiting", "put (dit_lens/_handoff.py:45)")] == 4


def test_d2h_bench_runs_every_copy_mode_on_small_values():
    """The device-to-host benchmark (its numbers are a GPU's) runs on the CPU with small values and prints each
    copy mode's bandwidth and what each adds beside compute."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "d2h_bench.py"), "--device", "cpu", "--shape",
                          "1,64,32", "--values", "6", "--rounds", "2", "--queue", "2", "--width",
                          "32"], check=True, capture_output=True, text=True).stdout
    for line in ("pinned loop", "blocking", "recorder", "compute + blocking", "compute + recorder"):
        assert f"   {line}" in out
    assert "6 values of (1, 64, 32) bf16" in out


def test_the_prepared_gpu_run_stops_at_once_without_a_gpu(tmp_path):
    if __import__("torch").cuda.is_available():
        return  # on a GPU it is the benchmark itself, minutes long
    r = subprocess.run(["bash", str(ROOT / "bench" / "gpu_record.sh"), str(tmp_path)], capture_output=True, text=True)
    assert r.returncode != 0
    assert "needs a CUDA GPU" in (tmp_path / "gpu_record.log").read_text()


def test_the_prepared_gpu_run_checks_every_command_on_the_cpu(tmp_path):
    """``gpu_record.sh --check``: the GPU run's commands at toy sizes (Flux.1-dev's depth at width 64, so its four
    names resolve), so a GPU session does not spend its minutes finding a broken command."""
    r = subprocess.run(["bash", str(ROOT / "bench" / "gpu_record.sh"), "--check", str(tmp_path)], capture_output=True,
                       text=True)
    log = (tmp_path / "gpu_record_check.log").read_text()
    assert r.returncode == 0, log[-3000:]
    assert "recorder" in log and "of the pinned loop" in log  # d2h_bench
    dev = [part for part in log.split("1. recording")[1:] if "Flux.1-dev's depth" in part]
    assert len(dev) == 2 and all("4 names" in part and "values taken to host memory" in part for part in dev)
    assert "random Flux, 1024 image tokens" in log and "tiny model" in log
    assert log.count("stats/plain") == 4
    assert not (tmp_path / "stores").exists()  # each benchmark removes its stores


def test_record_floor_replays_each_part_and_sets_the_recordings_against_it(tmp_path):
    """The floor benchmark at smoke scale: each part of a full recording's work replayed alone, the floor's bounds,
    and the measured recordings' extra CPU beside it."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "record_floor.py"), "--prompts", "2", "--steps", "2",
                          "--repeats", "1", "--dir", str(tmp_path / "floor")], check=True, capture_output=True,
                         text=True).stdout
    for part in ("host copies", "statistics", "store: chunks, encode, checksums, files, flags",
                 "  the same, files through the page cache"):
        assert f"   {part} " in out
    assert out.count(" floor ") == 2 and "cores busy" in out
    assert "stats  paired" in out and "full   paired" in out and "the floor's" in out
    assert not (tmp_path / "floor").exists()
    # the script ran again under fixed allocator thresholds (bench/README.md, 'the allocator'), said in its header
    assert out.startswith("glibc malloc: fixed thresholds (MALLOC_MMAP_THRESHOLD_=33554432, ")


def test_record_breakdown_splits_a_full_recording_by_the_recorders_own_path(tmp_path):
    """The split by difference at smoke scale: each variant (hooks, statistics, a stats-only store, copies, the full
    recording) runs and is set against plain generation, then the parts timed inside the recording."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "record_breakdown.py"), "--mode", "full", "--prompts",
                          "2", "--batch", "2", "--steps", "2", "--runs", "1", "--dir", str(tmp_path / "b"),
                          "--malloc", "default"], check=True, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}).stdout
    assert out.startswith("glibc malloc: its own moving thresholds")
    for k in ("hooks", "statistics", "stats-only", "copies", "recording"):
        assert f"  {k} " in out and "paired" in out
    for row in ("hooks on the named blocks, taking nothing", "a stats-only store (template, flags, images)",
                "full: writer, store and flags (the rest)"):
        assert row in out
    assert "encode" in out and not (tmp_path / "b").exists()
