"""A loopback S3 server for tests and benchmarks of object storage.

    s3_server(bucket)    moto in its own process on 127.0.0.1, pausable with SIGSTOP: (process, storage options)
"""

from __future__ import annotations

import contextlib

__all__ = ["s3_server"]


@contextlib.contextmanager
def s3_server(bucket: str = "acts"):
    """An S3-protocol server (moto, a test dependency) on 127.0.0.1 in its own process, so that it can be paused
    (SIGSTOP) like a stalled endpoint: connections are accepted by the kernel, nothing answers. Yields the process and
    fsspec storage options; the server is killed on exit."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    import boto3

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                              region_name="us-east-1")
        for _ in range(300):
            try:
                client.create_bucket(Bucket=bucket)
                break
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.1)
        else:
            raise RuntimeError(f"the S3 test server at {endpoint} did not start")
        yield proc, {"key": "k", "secret": "s", "endpoint_url": endpoint,
                     "client_kwargs": {"region_name": "us-east-1"},
                     "config_kwargs": {"request_checksum_calculation": "when_required",
                                       "response_checksum_validation": "when_required"}}
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait()
