"""The store's engine: dit-lens's own chunk writes on plain zarr vs Icechunk (transactional zarr), side by side.

Not a test. Each section runs both engines in one run on the same data (4 MiB float32 chunks with bf16 precision,
Blosc LZ4 + bit-shuffle + crc32c, one chunk per sample), on a local disk and on a loopback S3 server (moto, in its
own process so that it can be paused):

  1. write throughput: n chunks written and made visible (dit-lens: direct chunk writes then a flag chunk; Icechunk:
     zarr writes into a session then one commit), 3 interleaved rounds, medians
  2. two concurrent writers on disjoint samples, 6 batches each, in two processes (dit-lens: claims then direct
     writes; Icechunk: a commit per batch, rebased on conflict): batches visible at the end, conflicts, seconds
  3. a writer killed (SIGKILL) in its 4th of 6 batches, then a resume: what the store shows, bit-exact or not
  4. a stalled endpoint (the S3 server paused with SIGSTOP mid-writing): seconds until the writer gives up, and how

    pip install icechunk            # not a dit-lens dependency; 1.1.21 on Python 3.11
    python bench/engine_bench.py [--mb 256] [--dir /tmp/dit-lens-engine]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHAPE = (4096, 256)  # one 4 MiB float32 chunk per sample
OPTS = {"key": "k", "secret": "s", "client_kwargs": {"region_name": "us-east-1"},
        "config_kwargs": {"request_checksum_calculation": "when_required",
                          "response_checksum_validation": "when_required"}}


def _chunk(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    x = (rng.standard_normal(SHAPE).astype(np.float32) * 3)
    return (x.view(np.uint32) & 0xFFFF0000).view(np.float32)


def _moto():
    from dit_lens.testing import s3_server

    return s3_server("acts")


# -- the two engines, behind the same four calls: create(n), write(samples) -> visible, samples visible -----------

def _compressors():
    from dit_lens.store.schema import compressors

    return compressors()


class DitLens:
    """dit-lens's engine: a zarr array of data plus a `complete` flag array; claims for concurrent writers."""

    name = "dit-lens (zarr, direct chunks)"

    def __init__(self, where: str, endpoint: str | None):
        self.url = f"s3://acts/{os.path.basename(where)}.zarr" if endpoint else where + ".zarr"
        self.so = dict(OPTS, endpoint_url=endpoint) if endpoint else None

    def create(self, n: int) -> None:
        import zarr

        if not self.so:
            shutil.rmtree(self.url, ignore_errors=True)
            shutil.rmtree(self.url + ".claims", ignore_errors=True)
        store = zarr.storage.FsspecStore.from_url(self.url, storage_options=self.so) if self.so else self.url
        g = zarr.open_group(store, mode="w")
        g.create_array("x", shape=(n,) + SHAPE, chunks=(1,) + SHAPE, dtype="float32", compressors=_compressors())
        g.create_array("complete", shape=(n,), chunks=(1,), dtype="bool", fill_value=False,
                       compressors=_compressors())

    def _group(self):
        import zarr
        from zarr.api import asynchronous

        from dit_lens.store._chunks import bounded_sync

        return zarr.Group(bounded_sync(asynchronous.open_group(self.url, mode="r+", storage_options=self.so)))

    def write(self, samples, timeout: float | None = None, batch: int | None = None) -> None:
        from dit_lens.store._chunks import chunk_writer
        from dit_lens.store._claims import claim

        import zarr

        if timeout:
            zarr.config.set({"async.timeout": timeout})  # as record(storage_timeout=) bounds zarr's own calls
        claims = claim(self.url, list(samples), self.so, timeout=timeout)
        try:
            g = self._group()
            data, flags = chunk_writer(g["x"], timeout), chunk_writer(g["complete"], timeout)
            samples = list(samples)
            step = batch or len(samples)
            for j in range(0, len(samples), step):
                part = samples[j:j + step]
                data.write_many([((i, 0, 0), _chunk(i)[None]) for i in part])
                data.wait()  # the data is stored before any flag vouches for it
                flags.write_many([((i,), np.ones(1, bool)) for i in part])
                flags.wait()
            data.close(), flags.close()
            claims.release(complete=samples)
        except BaseException:
            with contextlib.suppress(Exception):  # the store may not answer: the first error is the one to see
                claims.release()
            raise

    def visible(self) -> list:
        g = self._group()
        return [int(i) for i in np.flatnonzero(g["complete"][:])]

    def exact(self, samples) -> bool:
        x = self._group()["x"]
        return all(np.array_equal(x[i], _chunk(i)) for i in samples)


class Icechunk:
    """Icechunk: a zarr array in a repository; a batch becomes visible when its session commits."""

    name = "Icechunk 1.x (commit per batch)"

    def __init__(self, where: str, endpoint: str | None):
        self.where, self.endpoint = where, endpoint

    def _storage(self, timeout: float | None = None):
        import icechunk as ic

        if not self.endpoint:
            return ic.local_filesystem_storage(self.where + ".icechunk")
        return ic.s3_storage(bucket="acts", prefix=os.path.basename(self.where), endpoint_url=self.endpoint,
                             allow_http=True, force_path_style=True, region="us-east-1", access_key_id="k",
                             secret_access_key="s",
                             network_stream_timeout_seconds=int(timeout) if timeout else 60)

    def _repo(self, timeout: float | None = None):
        import icechunk as ic

        config = None
        if timeout:
            config = ic.RepositoryConfig(storage=ic.StorageSettings(
                retries=ic.StorageRetriesSettings(max_tries=2, initial_backoff_ms=100, max_backoff_ms=1000)))
        return ic.Repository.open(self._storage(timeout), config=config)

    def create(self, n: int) -> None:
        import icechunk as ic
        import zarr

        if not self.endpoint:
            shutil.rmtree(self.where + ".icechunk", ignore_errors=True)
        repo = ic.Repository.create(self._storage())
        s = repo.writable_session("main")
        zarr.create_array(s.store, name="x", shape=(n,) + SHAPE, chunks=(1,) + SHAPE, dtype="float32",
                          compressors=_compressors())
        s.commit("create")

    def write(self, samples, timeout: float | None = None, batch: int | None = None) -> None:
        import icechunk as ic
        import zarr

        repo = self._repo(timeout)
        samples = list(samples)
        step = batch or len(samples)
        for j in range(0, len(samples), step):
            s = repo.writable_session("main")
            x = zarr.open_array(s.store, path="x")
            for i in samples[j:j + step]:
                x[i] = _chunk(i)
            s.commit(f"samples {samples[j]}-{samples[j:j + step][-1]}", rebase_with=ic.ConflictDetector())

    def visible(self) -> list:
        import asyncio

        store = self._repo().readonly_session("main").store  # chunks of committed sessions only

        async def keys():
            return {k async for k in store.list_prefix("x")}
        return sorted(int(k.split("/")[2]) for k in asyncio.run(keys()) if k.startswith("x/c/"))

    def exact(self, samples) -> bool:
        import zarr

        x = zarr.open_array(self._repo().readonly_session("main").store, path="x", mode="r")
        return all(np.array_equal(x[i], _chunk(i)) for i in samples)


ENGINES = {"dit-lens": DitLens, "icechunk": Icechunk}


# -- sections ---------------------------------------------------------------------------------------------------

def throughput(root: Path, mb: int, endpoint: str | None) -> dict:
    n = max(8, mb // 4)
    out = {}
    for name, cls in ENGINES.items():
        out[name] = []
    for r in range(3):
        for name, cls in ENGINES.items():
            e = cls(str(root / f"tp-{name}-{r}"), endpoint)
            e.create(n)
            t = time.perf_counter()
            e.write(range(n))
            out[name].append(time.perf_counter() - t)
            assert e.visible() == list(range(n)), name
    return {k: n * 4 / statistics.median(v) for k, v in out.items()}


def _child(engine: str, where: str, endpoint: str, samples: list, batch: int, timeout: float) -> None:
    e = ENGINES[engine](where, endpoint or None)
    t = time.perf_counter()
    try:
        e.write(samples, timeout=timeout or None, batch=batch)
        print(json.dumps({"ok": True, "s": time.perf_counter() - t}), flush=True)
    except Exception as err:  # noqa: BLE001 - reported to the parent
        print(json.dumps({"ok": False, "s": time.perf_counter() - t, "error": f"{type(err).__name__}: {err}"[:300]}),
              flush=True)


def _spawn(engine, where, endpoint, samples, batch, timeout=0.0, quiet=False):
    return subprocess.Popen([sys.executable, __file__, "--child", json.dumps([engine, where, endpoint or "", samples,
                                                                               batch, timeout])],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL if quiet else None, text=True)


def concurrent(root: Path, endpoint: str | None) -> dict:
    out = {}
    for name, cls in ENGINES.items():
        where = str(root / f"cc-{name}")
        e = cls(where, endpoint)
        e.create(24)
        t = time.perf_counter()
        procs = [_spawn(name, where, endpoint, list(range(k, 24, 2)), 2) for k in (0, 1)]
        results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        out[name] = {"seconds": time.perf_counter() - t, "ok": all(r["ok"] for r in results),
                     "visible": len(e.visible()), "errors": [r.get("error") for r in results if not r["ok"]],
                     "exact": e.exact(e.visible())}
    return out


def crash(root: Path, endpoint: str | None) -> dict:
    out = {}
    for name, cls in ENGINES.items():
        where = str(root / f"kill-{name}")
        e = cls(where, endpoint)
        e.create(24)
        p = _spawn(name, where, endpoint, list(range(24)), 4, quiet=True)
        deadline = time.time() + 120
        while len(e.visible()) < 12 and time.time() < deadline and p.poll() is None:
            time.sleep(0.02)
        p.kill()
        p.wait()
        seen = e.visible()
        row = {"visible after kill": len(seen), "exact": e.exact(seen)}
        t = time.perf_counter()
        try:
            e.write([i for i in range(24) if i not in seen], batch=4)  # the resume: a new writer, same samples
            row["resume"] = "ok"
        except Exception as err:  # noqa: BLE001 - reported
            row["resume"] = f"{type(err).__name__}: {str(err)[:160]}"
        row["resume s"] = time.perf_counter() - t
        row["visible after resume"] = len(e.visible())
        row["exact after resume"] = e.exact(e.visible())
        out[name] = row
    return out


def stall(root: Path, timeout: float) -> dict:
    out = {}
    for name, cls in ENGINES.items():
        with _moto() as (server, opts):
            endpoint = opts["endpoint_url"]
            where = str(root / f"stall-{name}")
            cls(where, endpoint).create(64)
            p = _spawn(name, where, endpoint, list(range(64)), 4, timeout=timeout, quiet=True)
            time.sleep(1.5)
            server.send_signal(signal.SIGSTOP)
            t = time.perf_counter()
            try:
                line = p.communicate(timeout=120)[0].strip().splitlines()
                r = json.loads(line[-1]) if line else {"ok": False, "error": f"exit code {p.returncode}"}
                out[name] = {"gave up after s": time.perf_counter() - t, **r}
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                out[name] = {"gave up after s": None, "ok": False, "error": "still waiting after 120 s (killed)"}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--dir", default="/tmp/dit-lens-engine")
    ap.add_argument("--timeout", type=float, default=5.0, help="each engine's storage timeout in the stall section")
    ap.add_argument("--only", default="writes,writers,kill,stall", help="sections, comma-separated")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(*json.loads(args.child))
    root = Path(args.dir)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    import icechunk
    import zarr

    print(f"engines: dit-lens on zarr {zarr.__version__} vs icechunk {icechunk.__version__}; {os.cpu_count()} CPUs")
    only = set(args.only.split(","))
    if "writes" in only:
        print(f"\n1. write throughput, {max(8, args.mb // 4)} chunks of 4 MiB made visible (MiB/s, median of 3)")
        disk = throughput(root, args.mb, None)
        print(f"   local disk: dit-lens {disk['dit-lens']:6.0f}   icechunk {disk['icechunk']:6.0f}   "
              f"icechunk / dit-lens {disk['icechunk'] / disk['dit-lens']:.2f}")
    with _moto() as (_, opts):
        endpoint = opts["endpoint_url"]
        if "writes" in only:
            s3 = throughput(root, args.mb, endpoint)
            print(f"   S3 (moto):  dit-lens {s3['dit-lens']:6.0f}   icechunk {s3['icechunk']:6.0f}   "
                  f"icechunk / dit-lens {s3['icechunk'] / s3['dit-lens']:.2f}")
        for section, title, run in (("writers", "2. two writers, disjoint samples (12 each, batches of 2), two "
                                                "processes", concurrent),
                                    ("kill", "3. a writer killed in its 4th of 6 batches, then a resume of the rest",
                                     crash)):
            if section in only:
                print(f"\n{title}")
                for where, ep in (("local disk", None), ("S3 (moto)", endpoint)):
                    for name, r in run(root, ep).items():
                        print(f"   {where:10s} {name:9s} {_fmt(r)}")
    if "stall" in only:
        print(f"\n4. the S3 server paused mid-writing; each engine's timeout {args.timeout:g} s")
        for name, r in stall(root, args.timeout).items():
            print(f"   {name:9s} {_fmt(r)}")


def _fmt(row: dict) -> str:
    return ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())

if __name__ == "__main__":
    main()
