"""A recorded value's copy to host memory, made without stopping the model (what a full recording writes).

    HostCopies()          .take(h) on the model's thread, for each value as it is read -> a host array (a CPU value:
                          copied now) or a PendingCopy (a CUDA value: on its way to pinned host memory)
    PendingCopy           .get() on the writer's thread: waits for that copy -> the value as the store keeps it
    host_array(t)         a CPU tensor as the store keeps it: bf16 as its raw 16-bit words, other dtypes as they are
    on_host(value)        a host array as it is, a PendingCopy's ``get()`` (what the writer calls)

On CUDA the model's stream never waits for the host: the value is cloned on the model's stream (a device-to-device
copy), a side stream waits for that clone and copies it into page-locked (pinned) host memory, which the copy engine
reaches at full bandwidth while the model computes, and the writer's thread waits for that copy's event. The clone is
what makes the overlap safe: a module may change its output in place after it was read, and a side stream copying
the output itself would race that change. The clone goes back to torch's device cache once the copy is done
(``record_stream``); the pinned buffer comes from torch's caching host allocator and returns to it when the writer
drops the value, so buffers of a recording's few shapes are reused, not allocated per value. In flight at once: what
the writer's bounded queue holds. Other accelerators copy as before: one blocking ``.to("cpu")`` per value.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HostCopies", "PendingCopy", "host_array", "on_host"]


def host_array(t) -> np.ndarray:
    """A CPU tensor as the store keeps it: bf16 as its raw 16-bit words (numpy has no bfloat16), others as they are."""
    import torch

    return t.view(torch.int16).numpy().view(np.uint16) if t.dtype == torch.bfloat16 else t.numpy()


def on_host(value) -> np.ndarray:
    """What the writer stores: a host array as it is, a pending copy once it has landed."""
    return value.get() if isinstance(value, PendingCopy) else value


class PendingCopy:
    """A CUDA value on its way to pinned host memory: ``get()`` waits for the copy (the writer's thread yields the
    CPU meanwhile: a blocking-sync event) and returns the host array; ``p[rows]`` the same for some rows (cut as a
    host array is cut, once the copy has landed)."""

    __slots__ = ("_buf", "_done", "_rows", "shape", "dtype")

    def __init__(self, buf, done, rows=None):
        self._buf, self._done, self._rows = buf, done, rows
        self.shape = tuple(buf.shape) if rows is None else (len(rows), *buf.shape[1:])
        self.dtype = buf.dtype

    def __getitem__(self, rows: list) -> "PendingCopy":
        return PendingCopy(self._buf, self._done, list(rows))

    def get(self) -> np.ndarray:
        self._done.synchronize()
        a = host_array(self._buf)
        return a if self._rows is None else a[self._rows]


class HostCopies:
    """Host copies of one recording's values: ``take(h)`` on the model's thread for each value (see the module's
    docstring). One side stream per CUDA device, made on first use."""

    def __init__(self):
        self._streams: dict = {}

    def take(self, h):
        h = h.detach()
        if h.device.type == "cuda":
            return self._pending(h)
        return host_array(h.to("cpu", copy=True))  # a CPU value is copied: the model may change it after this read

    def _pending(self, h) -> PendingCopy:
        import torch

        device = h.device
        side = self._streams.get(device)
        if side is None:
            side = self._streams[device] = torch.cuda.Stream(device=device)
        src = h.clone(memory_format=torch.contiguous_format)  # on the model's stream, in order with its kernels
        buf = torch.empty(src.shape, dtype=src.dtype, pin_memory=True)
        side.wait_stream(torch.cuda.current_stream(device))  # the side stream starts where the clone is made
        with torch.cuda.stream(side):
            buf.copy_(src, non_blocking=True)
            done = torch.cuda.Event(blocking=True)
            done.record(side)
        src.record_stream(side)  # its memory is reused only once the side stream's copy is done
        return PendingCopy(buf, done)
