"""Faults: an object store that stops answering mid-recording, writers that die, writers that race for samples
(local disk and S3), and who may take over whose claims."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from dit_lens import Lens, StoreError, StoreTimeoutError, record
from dit_lens.store import open_store
from dit_lens.store._claims import _boot_id, _start_time, claim
from dit_lens.testing import s3_server as moto_server

PROMPTS = [f"a {c} circle on a blue background" for c in ("red", "green", "white", "black", "yellow", "orange")]
KW = dict(names="double.*.img.resid_post", num_inference_steps=4, batch_size=2, progress=False)
HOST = socket.gethostname()


@pytest.fixture(scope="module")
def tiny_lens():
    return Lens("tiny")


def _recorder_threads() -> list:
    return [t.name for t in threading.enumerate() if t.name.startswith("dit-lens")]


def test_a_stalled_object_store_ends_the_recording_within_its_bound(tiny_lens, tmp_path):
    url = "s3://acts/stall.zarr"
    with moto_server() as (server, opts):
        calls = [0]

        def pause_the_server(module, args, kwargs):  # at the third batch's second step
            calls[0] += 1
            if calls[0] == 10:
                os.kill(server.pid, signal.SIGSTOP)
        hook = tiny_lens.pipeline.transformer.register_forward_pre_hook(pause_the_server, with_kwargs=True)
        started = time.monotonic()
        try:
            with pytest.raises(StoreTimeoutError) as err:
                record(tiny_lens, url, PROMPTS, storage_options=opts, storage_timeout=2, **KW)
        finally:
            hook.remove()
        took = time.monotonic() - started
        message = str(err.value)
        assert took < 60, took
        assert opts["endpoint_url"] in message and "did not answer within 2 s" in message
        assert "complete in the store" in message and "--resume" in message
        deadline = time.monotonic() + 10  # an abandoned request round ends within its own bound
        while _recorder_threads() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _recorder_threads(), _recorder_threads()

        os.kill(server.pid, signal.SIGCONT)
        said = re.search(r"complete in the store: samples ([0-9, -]+) \(", message)
        reported = set()
        for part in (said.group(1).split(", ") if said else []):
            a, _, b = part.partition("-")
            reported |= set(range(int(a), int(b or a) + 1))
        ds = open_store(url, complete_only=False, **opts)
        complete = set(np.flatnonzero(ds.complete.values.all(1) & ds.image_complete.values).tolist())
        assert reported <= complete  # what the error calls complete is complete
        assert len(complete) < len(PROMPTS)
        # the stopped writer's claims (its release timed out) are taken over: its writer ended in this process
        record(tiny_lens, url, PROMPTS, storage_options=opts, resume=True, **KW)
        resumed = open_store(url, **opts).load()
    reference = str(tmp_path / "ref.zarr")
    record(tiny_lens, reference, PROMPTS, **KW)
    assert bool(resumed.complete.all())
    assert np.array_equal(resumed["img.resid_post"].values, open_store(reference)["img.resid_post"].values)


def test_a_store_that_stalls_before_the_recording_starts_is_an_error_within_the_bound(tiny_lens):
    with moto_server() as (server, opts):
        record(tiny_lens, "s3://acts/old.zarr", PROMPTS, samples=[0], storage_options=opts, **KW)
        os.kill(server.pid, signal.SIGSTOP)
        for url, resume in (("s3://acts/new.zarr", False), ("s3://acts/old.zarr", True)):  # creating; opening
            started = time.monotonic()
            with pytest.raises(StoreTimeoutError, match="did not answer"):
                record(tiny_lens, url, PROMPTS, storage_options=opts, storage_timeout=2, resume=resume, **KW)
            assert time.monotonic() - started < 30, url


def test_flags_still_in_flight_when_the_writer_fails_are_not_reported_complete(tiny_lens, tmp_path, monkeypatch):
    """The second batch's flag writes never finish: the error must not call those samples complete."""
    from dit_lens.store import _chunks

    release, put = threading.Event(), _chunks.ChunkWriter._put_many

    def stuck_flags(self, keys, datas):
        if keys[0].startswith("complete/") and int(keys[0].split("/")[2]) >= 2:
            release.wait(60)
        return put(self, keys, datas)
    monkeypatch.setattr(_chunks.ChunkWriter, "_put_many", stuck_flags)
    url = str(tmp_path / "f.zarr")
    try:
        with pytest.raises(StoreTimeoutError) as err:
            record(tiny_lens, url, PROMPTS, storage_timeout=0.5, **KW)
    finally:
        release.set()
    assert "complete in the store: samples 0-1 (2 of 6)" in str(err.value), str(err.value)


def _claim_file(url, sample, **info):
    os.makedirs(url + ".claims", exist_ok=True)
    with open(f"{url}.claims/sample-{sample}", "w") as f:
        json.dump(info, f)


def test_resume_takes_over_the_claims_of_a_writer_that_provably_ended(tiny_lens, tmp_path):
    url = str(tmp_path / "d.zarr")
    record(tiny_lens, url, PROMPTS[:3], samples=[], **KW)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _claim_file(url, 1, writer="w", host=HOST, boot=_boot_id(), pid=int(ended.stdout), time=time.time(), lease=300)
    record(tiny_lens, url, PROMPTS[:3], resume=True, **KW)
    assert bool(open_store(url).complete.all())
    assert not os.path.exists(url + ".claims")  # the ended writer's claim is gone with the resumer's


def test_a_live_writers_claims_are_refused_with_the_flag_that_overrides_them(tmp_path):
    url = str(tmp_path / "l.zarr")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        info = dict(writer="w", host=HOST, boot=_boot_id(), pid=alive.pid, start=_start_time(alive.pid),
                    time=time.time(), lease=300)
        _claim_file(url, 1, **info)
        with pytest.raises(StoreError, match=rf"samples \[1\].*pid {alive.pid} on {HOST}.*--takeover "
                                             r"\(takeover=True\)"):
            claim(url, [0, 1, 2])
        assert os.listdir(url + ".claims") == ["sample-1"]  # all or none: nothing written
        if info["start"] is not None:  # the same pid, started at another time: a reused pid, not the writer
            _claim_file(url, 1, **dict(info, start=info["start"] + 1))
            claim(url, [1]).release()
            _claim_file(url, 1, **info)
        held = claim(url, [0, 1, 2], takeover=True)  # the user says it died
        assert sorted(f for f in os.listdir(url + ".claims") if f.startswith("sample")) == [
            "sample-0", "sample-1", "sample-2"]
        held.release()
        assert not os.path.exists(url + ".claims")
    finally:
        alive.kill()
        alive.wait()


def test_leases_decide_for_writers_on_other_hosts(tmp_path):
    url = str(tmp_path / "h.zarr")
    now = time.time()
    _claim_file(url, 0, writer="far", host="elsewhere", pid=1, time=now - 1000, lease=300)
    with open(url + ".claims/writer-far", "w") as f:  # renewed 10 s ago: alive, whatever the claim's own age
        json.dump(dict(writer="far", host="elsewhere", pid=1, lease=300, renewed=now - 10), f)
    with pytest.raises(StoreError, match="pid 1 on elsewhere, lease renewed 1[0-9] s ago of 300 s"):
        claim(url, [0])
    with open(url + ".claims/writer-far", "w") as f:  # no renewal for longer than the lease: gone
        json.dump(dict(writer="far", host="elsewhere", pid=1, lease=300, renewed=now - 400), f)
    held = claim(url, [0])
    assert json.load(open(url + ".claims/sample-0"))["writer"] == held.writer
    held.release(complete=[0])
    assert not os.path.exists(url + ".claims")  # the gone writer's lease file went too


def test_a_writer_renews_its_lease_while_it_holds_claims(tmp_path):
    url = str(tmp_path / "r.zarr")
    held = claim(url, [0], lease=0.5)  # renewed every 0.1 s
    path = f"{url}.claims/writer-{held.writer}"
    first = json.load(open(path))["renewed"]
    time.sleep(0.6)
    assert json.load(open(path))["renewed"] > first
    # and its claims are alive for a writer in another thread of this process, however old
    with pytest.raises(StoreError, match="claimed by another writer"):
        claim(url, [0])
    held.release()
    assert not os.path.exists(url + ".claims")


@pytest.mark.parametrize("where, trials", [("disk", 50), ("s3", 20)])
def test_racing_writers_get_disjoint_claims_and_one_of_them_wins(where, trials, tmp_path):
    """Races of two writers claiming overlapping samples at the same moment: never both, never neither. Exclusive
    file creation on a local disk, conditional writes (If-None-Match) on S3."""
    import fsspec

    with moto_server() if where == "s3" else contextlib.nullcontext((None, None)) as (_, opts):
        for trial in range(trials):
            url = f"s3://acts/race{trial}.zarr" if opts else str(tmp_path / f"race{trial}.zarr")
            wanted = ([0, 1, 2, 3], [2, 3, 4, 5]) if trial % 2 else ([0, 1, 2], [0, 1, 2])
            start, results = threading.Barrier(2), [None, None]

            def writer(i):
                start.wait()
                try:
                    results[i] = claim(url, wanted[i], opts)
                except StoreError:
                    results[i] = "refused"
            threads = [threading.Thread(target=writer, args=(i,)) for i in (0, 1)]
            [t.start() for t in threads]
            [t.join() for t in threads]
            winners = [r for r in results if r != "refused"]
            assert len(winners) == 1, (trial, results)
            fs, root = fsspec.core.url_to_fs(url + ".claims", **(opts or {}))
            held = sorted(p.rsplit("/", 1)[1] for p in fs.ls(root, refresh=True) if "/sample-" in p)
            assert held == [f"sample-{s}" for s in wanted[results.index(winners[0])]], (trial, held)
            winners[0].release()
            if where == "disk":
                assert not os.path.exists(url + ".claims")
            else:
                assert not fs.ls(root, refresh=True) if fs.exists(root) else True
