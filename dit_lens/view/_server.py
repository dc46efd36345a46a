"""The explorer's HTTP server: the standard library's, on 127.0.0.1 only; one page, a small JSON API.

    Server(source, port=0)      serve ``source`` (a StoreSource or ReportSource) until ``close()``; ``.url``
      GET /                     the page (page.html: plain HTML, CSS and JavaScript, no external assets)
      GET /api/info             what the source holds
      GET /api/heatmap?name=&step=&sample=&channel=    /api/profile?name=&step=&sample=&k=&stat=
      GET /api/consistency?name=&k=                    /api/clusters?name=&step=&sample=&k=
      GET /image/SAMPLE         a store's image (PNG)
      GET /report               a report's HTML;   GET /figure/NAME   its figures
Every failure answers JSON ``{"error": "..."}`` (400 for a bad request, 404 for what is not there, 500 for a store
that cannot be read, with the reason), which the page shows; none is a blank page.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, unquote, urlparse

from ..errors import ArgumentError, DitLensError, StoreError, UnknownNameError

__all__ = ["Server"]

HOST = "127.0.0.1"


class _Handler(BaseHTTPRequestHandler):
    server_version = "dit-lens-view"
    source = None  # set per server class

    def log_message(self, fmt, *args):  # quiet: the CLI prints the URL, not every request
        pass

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data) -> None:
        self._send(status, json.dumps(data, default=float).encode(), "application/json")

    def do_GET(self):  # noqa: N802 (the standard library's name)
        url = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        src = self.source
        t0 = time.perf_counter()
        try:
            if url.path == "/":
                return self._send(200, resources.files("dit_lens.view").joinpath("page.html").read_bytes(),
                                  "text/html; charset=utf-8")
            if url.path == "/api/info":
                return self._json(200, src.info())
            if url.path.startswith("/api/") and src.kind == "store":
                what = url.path[len("/api/"):]
                if what not in ("heatmap", "profile", "consistency", "clusters"):
                    return self._json(404, {"error": f"no API {url.path}"})
                if "name" not in q:
                    raise ArgumentError("give name=")
                method = getattr(src, what)
                takes = inspect.signature(method).parameters
                data = method(**{k: v for k, v in q.items() if k in takes})
                data["ms"] = round((time.perf_counter() - t0) * 1000, 1)
                return self._json(200, data)
            if url.path.startswith("/image/") and src.kind == "store":
                return self._send(200, src.image(url.path[len("/image/"):]), "image/png")
            if url.path == "/report" and src.kind == "report":
                return self._send(200, src.html().encode(), "text/html; charset=utf-8")
            if url.path.startswith("/figure/") and src.kind == "report":
                return self._send(200, src.figure(unquote(url.path[len("/figure/"):])), "image/png")
            return self._json(404, {"error": f"nothing at {url.path} for a {src.kind}"})
        except (ArgumentError, UnknownNameError, TypeError) as e:
            return self._json(400, {"error": str(e)})
        except (StoreError, DitLensError, OSError, ValueError, KeyError) as e:  # unreadable data: say which
            return self._json(500, {"error": f"{type(e).__name__}: {e}"})
        except Exception as e:  # a bug: still an answer the page can show
            return self._json(500, {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]})


class Server:
    def __init__(self, source, port: int = 0):
        handler = type("Handler", (_Handler,), {"source": source})
        self.httpd = ThreadingHTTPServer((HOST, port), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{HOST}:{self.httpd.server_address[1]}/"
        self._thread = None

    def start(self) -> "Server":
        """Serve on a background thread (tests, notebooks)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="dit-lens-view")
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
