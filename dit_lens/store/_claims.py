"""Claims: which writer records which samples of a store, as files beside it (``{url}.claims/``).

    claim(url, samples, storage_options, takeover=False, timeout=None, lease=300.0) -> Claims
                        all or none: every sample is free or held by a writer that is provably gone, or the call
                        refuses, naming the live writer and the exact flag; a refusal writes nothing
    Claims.release(complete=())   the samples go back (a clean end or a clean failure); claims that gone writers
                        left on samples now complete are cleared (a killed writer's other claims stay until taken
                        over)
    gone(info, renewed) -> str | None   why a claim's writer is provably gone, or None when it may be alive

Files: ``sample-{i}`` holds its writer's identity (writer id, host, boot id, pid, the process's start time, lease)
as JSON; ``writer-{id}`` holds the time that writer last renewed its lease (every lease / 5 s, on a daemon thread,
while the claims are held).

A writer is provably gone when it ran on this host and its pid is not running, runs a process started at another
time, or the host rebooted since; or, on any host, when its lease ran out (no renewal for ``lease`` seconds: hosts'
clocks must agree to well within the lease). ``claim`` takes over a gone writer's samples; ``takeover=True``
overrides a claim that cannot be proved gone (a writer you know is dead, on another host, within its lease).

Exclusive: on a local disk a claim runs under an ``flock`` on ``.lock`` (the kernel drops it with its process) and
creates each file with O_EXCL; on S3 each file is created with ``If-None-Match: *`` and a gone writer's claim
replaced with ``If-Match: <its ETag>``. Of two writers racing for a sample exactly one gets it. Other fsspec
backends check, then write: their writers must keep to disjoint samples. Every storage call is bounded by
``timeout`` seconds on asynchronous filesystems (S3, GCS, ...).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid

from ..errors import StoreError, StoreTimeoutError

__all__ = ["claim", "Claims", "gone"]

_LIVE: set = set()  # writer ids of this process that hold claims (another thread's recording is alive)


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def _start_time(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (Linux), telling a reused pid from the writer's."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def gone(info: dict, renewed: float | None = None) -> str | None:
    """Why the writer described by a claim's ``info`` is provably gone (a reason), or None when it may be alive.
    ``renewed``: the last renewal of its lease, if its writer file was read."""
    host, pid = info.get("host"), info.get("pid")
    if host == socket.gethostname() and isinstance(pid, int):
        if info.get("boot") and _boot_id() and info["boot"] != _boot_id():
            return f"host {host} rebooted since writer pid {pid} claimed"
        if pid == os.getpid():
            return None if info.get("writer") in _LIVE else f"writer {info.get('writer')} of this process ended"
        if not _running(pid):
            return f"pid {pid} on {host} is not running"
        if info.get("start") is not None and _start_time(pid) not in (None, info["start"]):
            return f"pid {pid} on {host} is another process now"
        return None
    last = renewed if renewed is not None else info.get("time")
    lease = info.get("lease")
    if isinstance(last, (int, float)) and isinstance(lease, (int, float)) and time.time() - last > lease:
        return f"the lease of pid {pid} on {host} ran out {time.time() - last - lease:.0f} s ago"
    return None


def _alive(info: dict, renewed: float | None) -> str:
    """How a live claim's writer is described in a refusal."""
    if not info.get("host"):
        return "a writer that left no identity"
    last = renewed if renewed is not None else info.get("time")
    when = f", lease renewed {time.time() - last:.0f} s ago of {info.get('lease', 0):g} s" \
        if isinstance(last, (int, float)) else ""
    return f"pid {info.get('pid')} on {info['host']}{when}"


class Claims:
    """The claim files one writer holds; ``release`` deletes them (and the lease renewals stop)."""

    def __init__(self, fs, root: str, writer: str, me: dict, timeout: float | None, lease: float):
        self.fs, self.root, self.writer, self.me, self.timeout, self.lease = fs, root, writer, me, timeout, lease
        self.paths: list = []
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _call(self, method: str, *args, **kwargs):
        from fsspec.asyn import AsyncFileSystem
        from fsspec.exceptions import FSTimeoutError

        if isinstance(self.fs, AsyncFileSystem) and self.timeout:
            kwargs["timeout"] = self.timeout
        try:
            return getattr(self.fs, method)(*args, **kwargs)
        except FSTimeoutError:
            raise StoreTimeoutError(f"{self.root}: {method} took more than {self.timeout:g} s") from None

    def _renew(self) -> None:
        body = json.dumps(dict(self.me, renewed=time.time())).encode()
        self._call("pipe_file", f"{self.root}/writer-{self.writer}", body)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease / 5):
            with contextlib.suppress(Exception):  # a store that does not answer: the lease runs out, as it should
                self._renew()

    def start(self) -> "Claims":
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True, name="dit-lens-lease")
        self._renewer.start()
        return self

    def release(self, complete=()) -> None:
        """Delete this writer's claims; then, of the samples ``complete`` in the store (no writer claims those
        again), the claims of writers that are gone, and every gone writer's lease file."""
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(self.timeout or 5.0)  # a renewal under way ends within its own bound
        _LIVE.discard(self.writer)
        paths, self.paths = self.paths + [f"{self.root}/writer-{self.writer}"], []
        with contextlib.suppress(FileNotFoundError):
            self._call("rm", paths)  # one call: one bound on a store that does not answer
        with contextlib.suppress(FileNotFoundError):
            held, leases = _read(self, [f"sample-{s}" for s in complete])
            dead = [f"{self.root}/{name}" for name, (info, _) in held.items()
                    if gone(info, leases.get(info.get("writer"), {}).get("renewed"))]
            dead += [f"{self.root}/writer-{w}" for w, info in leases.items() if gone(info, info.get("renewed"))]
            if dead:
                self._call("rm", dead)
        with contextlib.suppress(FileNotFoundError, OSError):
            if not self._call("ls", self.root, refresh=True):
                self._call("rmdir", self.root)  # no other writer's claims: nothing left beside the store


def _read(c: Claims, names: list) -> tuple[dict, dict]:
    """The claims present among ``names`` (file name -> (info, listing entry)) and every writer's lease file
    (writer id -> its identity and last renewal)."""
    try:
        found = c._call("ls", c.root, detail=True, refresh=True)
    except FileNotFoundError:  # object storage: no claims, no "directory"
        found = []
    listing = {p["name"].rstrip("/").rsplit("/", 1)[1]: p for p in found}
    leases = {}
    paths = [f"{c.root}/{n}" for n in listing if n.startswith("writer-")]
    for path, raw in (c._call("cat", paths) if paths else {}).items():
        with contextlib.suppress(ValueError, TypeError):
            leases[path.rsplit("/writer-", 1)[1]] = dict(json.loads(raw))
    held = {}
    paths = [f"{c.root}/{n}" for n in names if n in listing]
    for path, raw in (c._call("cat", paths) if paths else {}).items():
        try:
            info = json.loads(raw)
        except ValueError:
            info = {}
        held[path.rsplit("/", 1)[1]] = (info if isinstance(info, dict) else {}, listing[path.rsplit("/", 1)[1]])
    return held, leases


@contextlib.contextmanager
def _locked(c: Claims, local: bool):
    """An exclusive lock on the claims directory itself (local disk; the kernel releases it with its process)."""
    if not local:
        yield
        return
    import fcntl

    fd = os.open(c.root, os.O_RDONLY)
    try:
        deadline = time.monotonic() + (c.timeout or 60)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreTimeoutError(f"{c.root} locked by another writer for {c.timeout or 60:g} s") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # and with it the lock


def _claimed_error(url: str, live: list) -> StoreError:
    samples = [s for s, _ in live]
    return StoreError(f"samples {samples[:10]}{'...' if len(samples) > 10 else ''} of {url} are claimed by another "
                      f"writer that may still be running ({live[0][1]}; claims in {url}.claims/): record disjoint "
                      f"samples, wait for it, or, if you know it died, take its samples over with --takeover "
                      f"(takeover=True)")


def claim(url: str, samples, storage_options: dict | None = None, takeover: bool = False,
          timeout: float | None = None, lease: float = 300.0) -> Claims:
    """Claim ``samples`` of the store at ``url`` for this writer, all or none (see the module docstring)."""
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    fs, root = fsspec.core.url_to_fs(url + ".claims", **(storage_options or {}))
    writer = uuid.uuid4().hex[:12]
    me = {"writer": writer, "host": socket.gethostname(), "boot": _boot_id(), "pid": os.getpid(),
          "start": _start_time(os.getpid()), "time": time.time(), "lease": lease}
    c = Claims(fs, root, writer, me, timeout, lease)
    samples = sorted(samples)  # every writer claims in ascending order: of two racing, the first shared sample decides
    local, s3 = isinstance(fs, LocalFileSystem), type(fs).__name__ == "S3FileSystem"
    for attempt in range(5):  # a local claims directory removed by a writer releasing its last claim: again
        _LIVE.add(writer)  # alive from before its first file: a racing writer in this process must not take it over
        try:
            return _claim(c, url, samples, takeover, local, s3)
        except FileNotFoundError:
            _LIVE.discard(writer)
            if attempt == 4:
                raise
        except BaseException:
            _LIVE.discard(writer)
            raise


def _claim(c: Claims, url: str, samples, takeover: bool, local: bool, s3: bool) -> Claims:
    c._call("makedirs", c.root, exist_ok=True)
    body = json.dumps(c.me).encode()
    with _locked(c, local):
        held, leases = _read(c, [f"sample-{s}" for s in samples])
        live = []
        for name, (info, _) in sorted(held.items(), key=lambda kv: int(kv[0].rsplit("-", 1)[1])):
            renewed = leases.get(info.get("writer"), {}).get("renewed")
            if not takeover and gone(info, renewed) is None:
                live.append((int(name.rsplit("-", 1)[1]), _alive(info, renewed)))
        if live:
            raise _claimed_error(url, live)
        try:
            c._renew()  # the writer file first: a claim is never without its lease
            for s in samples:
                path = f"{c.root}/sample-{s}"
                if f"sample-{s}" in held:  # a gone writer's claim (or takeover=True): replace exactly that one
                    etag = held[f"sample-{s}"][1].get("ETag")
                    c._call("pipe_file", path, body, **({"IfMatch": etag} if s3 and etag else {}))
                elif local:
                    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb") as f:
                        f.write(body)
                else:
                    c._call("pipe_file", path, body, **({"mode": "create"} if s3 else {}))
                c.paths.append(path)
        except FileNotFoundError:
            c.release()
            raise
        except StoreTimeoutError:
            c.release()
            raise
        except OSError as e:
            c.release()
            if isinstance(e, FileExistsError) or "pre-condition" in str(e):  # S3's failed If-Match / If-None-Match
                raise StoreError(f"sample {s} of {url} was claimed by another writer at the same moment; record "
                                 f"disjoint samples") from None
            raise
    return c.start()
