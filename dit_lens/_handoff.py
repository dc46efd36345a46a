"""The hand-off from the model's thread to the store: a bounded queue and the thread that writes what it carries.

    WriterThread(writer, maxsize, timeout, make=None)
                                              .put(message) on the model thread (bounded wait; the writer's error is
                                              raised here), .finish() once every message is written; ``make``: a
                                              function that makes the writer, called first on this thread (a new
                                              store's template, written while the model runs); messages:
                                              ("data", samples, step, name, values), ("commit", samples, step,
                                              stats), ("image", samples, images), ("flush", samples)
    Rows(thread, batch, keep)                the same queue for a batch of which only ``keep`` is written (a resumed
                                              batch's complete samples are recomputed, not rewritten)
    OnHost(stats, count, timestep)           a step's statistics that arrived on the host (a server reduced them)

A storage call that does not return within the recording's bound ends as a StoreTimeoutError saying what was being
written (``_timeout``).
"""

from __future__ import annotations

import queue
import threading
import time

from . import _samples
from ._host_copy import on_host
from .errors import StoreError, StoreTimeoutError

__all__ = ["WriterThread", "Rows", "OnHost"]

_STOP = object()


class WriterThread(threading.Thread):
    """Hands queued messages to a StoreWriter on its own thread: the model thread never waits on compression or
    storage, only on the bounded queue. A step's statistics and a GPU value's host copy are waited for here
    (``StepStats.get``, ``PendingCopy.get``)."""

    def __init__(self, writer, maxsize: int, timeout: float | None, make=None):
        super().__init__(daemon=True, name="dit-lens-writer")
        self.writer, self._make = writer, make  # the writer: given, or made by ``make`` on this thread
        self.q: queue.Queue = queue.Queue(maxsize=maxsize)
        self.error: BaseException | None = None
        # each storage call of the writer is bounded by ``timeout``; a writer that takes no message for this long is
        # stuck in something unbounded
        self.patience = None if timeout is None else 3 * timeout + 30

    def put(self, item) -> None:
        since = time.monotonic()
        while True:
            if self.error is not None:
                raise self.failure()
            try:
                self.q.put(item, timeout=0.5)
                return
            except queue.Full:
                if self.patience is not None and time.monotonic() - since > self.patience:
                    raise StoreTimeoutError(f"the store writer took no message for {self.patience:g} s") from None

    def failure(self) -> StoreError:
        e = self.error
        if isinstance(e, StoreError):
            return e
        return StoreError(f"the store writer failed: {type(e).__name__}: {e}")

    def finish(self) -> None:
        """Stop the writer once its queue is written; every write is bounded, so is this wait."""
        self.put(_STOP)
        self.join(timeout=None if self.patience is None else 2 * self.patience)
        if self.is_alive():
            raise StoreTimeoutError(f"the store writer did not finish within {2 * self.patience:g} s")
        if self.error is not None:
            raise self.failure()

    def run(self) -> None:
        w = None
        kind, args = "create", ()
        try:
            w = self.writer = self.writer if self._make is None else self._make()
            kind = None
            while (item := self.q.get()) is not _STOP:
                kind, *args = item
                if kind == "commit":
                    samples, step, step_stats = args
                    w.commit(samples, step, *step_stats.get())
                elif kind == "data":  # a GPU value's copy to the host may still be under way: waited for here
                    samples, step, name, value = args
                    w.data(samples, step, name, on_host(value))
                else:
                    getattr(w, kind)(*args)
            kind = "close"
        except TimeoutError as e:  # what the writer was doing when the store stopped answering
            self.error = _timeout(e, kind, args)
        except BaseException as e:  # noqa: BLE001 - reported to the model thread on its next put
            self.error = e
        finally:
            try:
                if w is not None:
                    w.close(abandon=self.error is not None)
            except TimeoutError as e:
                self.error = self.error or _timeout(e, "close", ())
            except BaseException as e:  # noqa: BLE001
                self.error = self.error or e


def _timeout(e: TimeoutError, kind, args) -> StoreTimeoutError:
    import re

    what = {"data": "activations", "commit": "statistics", "image": "images", "flush": "flags",
            "close": "last chunks", "create": "store's template"}.get(kind, kind)
    where = f" of samples {_samples.ranges(args[0])}" if args else ""
    where += f" at step {args[1]}" if kind in ("data", "commit") else ""
    call = re.match(r"Coroutine <coroutine object (\S+) at", str(e))  # zarr's own message names its coroutine
    detail = f"zarr's {call.group(1)} did not finish" if call else str(e)
    return StoreTimeoutError(f"writing the {what}{where}: {detail}")


class Rows:
    """The writer's queue for a batch of which only ``keep`` is written: each message cut to those samples' rows
    (values, statistics and images; the step's non-finite count is the batch's, as in any recording)."""

    def __init__(self, thread, batch: list, keep: list):
        self.thread, self.keep, self.rows = thread, list(keep), [batch.index(s) for s in keep]

    def put(self, item) -> None:
        kind, _, *rest = item
        if kind == "data":
            index, name, value = rest
            rest = [index, name, value[self.rows]]  # a host array or a PendingCopy, cut alike
        elif kind == "commit":
            rest = [rest[0], RowsOf(rest[1], self.rows)]
        elif kind == "image":
            rest = [rest[0][self.rows]]
        self.thread.put((kind, self.keep, *rest))


class RowsOf:
    """A step's statistics ({name: (4, rows, channels)}) cut to some rows when the writer takes them."""

    def __init__(self, stats, rows: list):
        self.stats, self.rows = stats, rows

    def get(self) -> tuple:
        got, count, t = self.stats.get()
        return {name: v[:, self.rows] for name, v in got.items()}, count, t


class OnHost:
    """A step's statistics a server reduced and sent back, as the writer's commit message carries them (``get()``)."""

    def __init__(self, stats: dict, count: int, timestep: float):
        self._got = (dict(stats), int(count), float(timestep))

    def get(self) -> tuple:
        return self._got
