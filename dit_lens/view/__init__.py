"""``dit-lens view``: browse a store or a recipe's output in the browser, on 127.0.0.1, offline.

    serve(path, port=0, storage_options=None) -> Server   a started server over a store (a path or URL) or a
                                                         report folder; ``.url``, ``.close()``
    Server                                               the server (dit_lens/view/_server.py: routes and errors)
    open_source(path, storage_options=None)              what the page reads (dit_lens/view/_source.py)
    report_html / standalone_html                        reports as HTML (dit_lens/view/_render.py)

The page (page.html: plain HTML and JavaScript, no external assets) shows, for a full store: |x| of a channel (or the
mean over channels) over the token grid on the sample's image, the channel profile with its top-k, the top-k's
consistency across steps and samples, and the K=2 clusters on the top-k channels with their IoU where the model's
scorer gives subject masks; for a stats-only store the per-channel statistics; for a report its tables and figures.
Each view reads the chunks it shows (one unit of one name), never a whole store; incomplete units say so.
"""

from __future__ import annotations

from ._render import report_html, standalone_html
from ._server import Server
from ._source import open_source

__all__ = ["serve", "Server", "open_source", "report_html", "standalone_html"]


def serve(path: str, port: int = 0, storage_options: dict | None = None) -> Server:
    """Open ``path`` (checked here: a bad store fails before any page is served) and serve it on a background
    thread."""
    return Server(open_source(path, storage_options), port).start()
