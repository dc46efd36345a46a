"""Remote requests need nothing on the server but nnsight, torch and diffusers: every request dit-lens builds is
serialized as nnsight's client sends it to a server, then run in a process where ``import dit_lens`` fails
(tests/remote_worker.py), against the same pipeline rebuilt there with diffusers alone; what it saved must equal a
local run bit for bit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dit_lens import add, patch, scale, set_to, zero
from dit_lens._stats import channel_stats
from dit_lens.testing import lens as row_lens

WORKER = Path(__file__).with_name("remote_worker.py")
NAME = "double.1.img.resid_post"


def _serve(tmp_path, lens, blobs, keep) -> list:
    """Run the requests in a process without dit-lens; what each saved."""
    pipe = lens.pipeline
    spec = dict(pipeline=type(pipe).__name__, transformer=type(pipe.transformer).__name__,
                config=dict(pipe.transformer.config), weights=pipe.transformer.state_dict(),
                scheduler=type(pipe.scheduler).__name__, scheduler_config=dict(pipe.scheduler.config),
                absent=[n for n, c in pipe.components.items() if c is None], options={}, keep=keep)
    torch.save(spec, tmp_path / "spec.pt")
    paths = []
    for i, blob in enumerate(blobs):
        paths.append(tmp_path / f"request{i}.bin")
        paths[-1].write_bytes(blob)
    done = subprocess.run([sys.executable, str(WORKER), str(tmp_path / "spec.pt"), str(tmp_path / "out.pt"),
                           *map(str, paths)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(tmp_path / "out.pt", weights_only=False)


def _same(served: dict, local) -> None:
    cache = dict(local.cache.items())
    assert served["saved"].keys() == cache.keys()
    assert all(torch.equal(served["saved"][k], cache[k]) for k in cache)
    assert torch.equal(torch.as_tensor(served["output"].images), torch.as_tensor(local.images))


def test_every_edit_kind_reads_and_the_pooled_hook_run_on_a_server_without_dit_lens(tmp_path, blobs):
    lens, kw = row_lens("flux")
    value = torch.full((2, 16, 32), 0.25)
    requests = {
        "read": dict(),
        "zero": dict(edits=[zero(NAME, steps=[1], channels=[0, 5])]),
        "scale": dict(edits=[scale(NAME, 3.0, steps=[1], channels=[1])]),
        "set_to": dict(edits=[set_to(NAME, 7.5, steps=[0], channels=[2], tokens=[0, 3])]),
        "add": dict(edits=[add(NAME, 0.5, channels=[4])]),
        "patch": dict(edits=[patch(NAME, {1: value}, channels=list(range(32)))]),
        "pooled": dict(on_step=lambda run, step: run.set_pooled(run.pooled() * 0.5)),
    }
    local = {k: lens.generate(num_inference_steps=2, seed=0, cache=NAME, **r, **kw) for k, r in requests.items()}
    for k, r in requests.items():
        simulated = lens.generate(num_inference_steps=2, seed=0, cache=NAME, remote="local", **r, **kw)
        assert torch.equal(torch.as_tensor(simulated.images), torch.as_tensor(local[k].images)), k
    assert len(blobs) == len(requests)
    served = _serve(tmp_path, lens, blobs, keep=["saved", "stamps", "output"])
    for (kind, ref), got in zip(local.items(), served):
        _same(got, ref)
    # the edits did something: each edited run differs from the plain read
    assert all(not torch.equal(torch.as_tensor(local[k].images), torch.as_tensor(local["read"].images))
               for k in requests if k != "read")


def test_sequential_cfg_edits_and_statistics_reduced_on_a_server_without_dit_lens(tmp_path, blobs):
    lens, kw = row_lens("qwenimage")
    edits = [zero(NAME, steps=[1], cfg="uncond", channels=[3])]
    local = lens.generate(num_inference_steps=2, seed=0, cache=NAME, edits=edits, **kw)
    lens.generate(num_inference_steps=2, seed=0, cache=NAME, edits=edits, remote="local", **kw)
    with lens.trace(num_inference_steps=2, seed=0, **kw) as tracer:  # statistics only: (stats, channels) per step
        stats_local = list().save()
        for step in tracer.dit.steps():
            h = tracer.dit.read(NAME, cfg="cond")  # None at the uncond call
            if h is not None:
                stats_local.append(channel_stats(h))
    with lens.trace(num_inference_steps=2, seed=0, remote="local", **kw) as tracer:
        stats = list().save()
        for step in tracer.dit.steps():
            h = tracer.dit.read(NAME, cfg="cond")
            if h is not None:
                stats.append(channel_stats(h))
    served = _serve(tmp_path, lens, blobs, keep=["saved", "output", "stats"])
    _same(served[0], local)
    got, want = served[1]["stats"], stats_local
    assert len(got) == len(want) == 2 and all(torch.equal(a, b) for a, b in zip(got, want))
    assert want[0].shape == (4, 2, 48)  # (mean, max, rms, median |x|) x rows x channels: what travels back


@pytest.mark.parametrize("stats_only", [True, False])
def test_remote_recording_equals_local_and_its_request_runs_without_dit_lens(tmp_path, blobs, stats_only):
    """record(remote=...) sends one request per batch; the server reduces the statistics (and, unless stats_only,
    returns the values); the store written here equals a local recording, bit for bit."""
    import numpy as np

    from dit_lens import open_store, record

    lens, kw = row_lens("flux")
    args = dict(names="*.*.img.resid_post", num_inference_steps=2, stats_only=stats_only, progress=False, **kw)
    here = open_store(record(lens, str(tmp_path / "here.zarr"), ["a", "b"], **args))
    there = open_store(record(lens, str(tmp_path / "there.zarr"), ["a", "b"], remote="local", **args))
    assert len(blobs) == 1 and bool(there.complete.all())
    for var in here.data_vars:
        assert np.array_equal(here[var].values, there[var].values, equal_nan=True), var
    served = _serve(tmp_path, lens, blobs, keep=["got"])[0]["got"]
    steps = [g for g in served if g is not None]
    assert [g[0] for g in steps] == [0, 1]
    for index, t, (stats, count, _), values in steps:
        for name, s in stats.items():
            layer = name.rsplit(".", 2)[0]
            assert np.array_equal(s.transpose(1, 0, 2), here["img.resid_post.stats"].sel(layer=layer).isel(step=index)
                                  .transpose("sample", "stat", "channel").values)
        assert (values is None) == stats_only


def test_remote_recording_of_some_steps_equals_local(tmp_path):
    """Steps not kept still count as run steps: a remote recording of steps=[1] of 3 is complete and equals a
    local one."""
    import numpy as np

    from dit_lens import open_store, record

    lens, kw = row_lens("flux")
    args = dict(names=NAME, num_inference_steps=3, steps=[1], progress=False, **kw)
    here = open_store(record(lens, str(tmp_path / "here.zarr"), ["a", "b"], **args))
    there = open_store(record(lens, str(tmp_path / "there.zarr"), ["a", "b"], remote="local", **args))
    assert bool(there.complete.all()) and list(there.step.values) == [1]
    assert np.array_equal(here["img.resid_post"].values, there["img.resid_post"].values)
