"""Chunk files on a local disk: a temporary file beside the chunk, then an atomic rename (as zarr's LocalStore writes).

    LocalFiles(root, direct=None)   .put(key, data, tail=b"")   one chunk's file: ``data`` then ``tail`` (its checksum)
                                    .direct                      whether the page cache is bypassed (O_DIRECT)

The bytes go to the disk with O_DIRECT where the filesystem takes it: the page cache's copy and page allocation are
what a buffered write costs in CPU, and that cost swings with the kernel's writeback state (0.2-2.6 ms per MB of
buffered writes against 0.03 ms with O_DIRECT, bench/README.md), CPU that a model on the same host's cores loses.
O_DIRECT needs aligned buffers and sizes: the chunk is copied into this thread's reusable page-aligned buffer, written
whole pages, and the file cut to its length. Files under 64 KiB (flags, timesteps, images of small models) are written
buffered: for them the page cache costs less CPU than a direct write (0.045 vs 0.14 ms per 64-byte file, 0.06 vs 0.13
at 64 KiB) and takes no synchronous trip to the disk (wall 0.05 vs 0.23 ms). A filesystem that refuses O_DIRECT
(tmpfs, some FUSE mounts: EINVAL) gets buffered writes from then on, the same bytes; ``DIT_LENS_O_DIRECT=0`` in the
environment chooses them from the start. Either way a killed writer leaves a chunk whole or as it was.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
import uuid

__all__ = ["LocalFiles"]

_ALIGN = 4096  # the page size: a multiple of every logical block size O_DIRECT asks for in practice
# the default of new writers (bench/store_bench.py compares both ways); DIT_LENS_O_DIRECT=0 keeps the page cache,
# e.g. on a network filesystem where every direct write is a synchronous round trip
DIRECT = hasattr(os, "O_DIRECT") and os.environ.get("DIT_LENS_O_DIRECT", "1") != "0"
_DIRECT_MIN = 64 << 10  # smaller files: buffered, always
_buffers = threading.local()  # each writing thread's aligned buffer (files are written from the I/O and pool threads)


def _aligned(size: int) -> mmap.mmap:
    """This thread's page-aligned buffer of at least ``size`` bytes (mmap memory is page-aligned), grown as needed."""
    buf = getattr(_buffers, "buf", None)
    if buf is None or len(buf) < size:
        if buf is not None:
            buf.close()
        buf = _buffers.buf = mmap.mmap(-1, max(size, _ALIGN))
    return buf


class LocalFiles:
    def __init__(self, root: str, direct: bool | None = None):
        self.root = root
        self.direct = DIRECT if direct is None else direct
        self._folders: set[str] = set()  # folders known to exist (made once, not per chunk)

    def put(self, key: str, data: bytes, tail: bytes = b"") -> None:
        """Write chunk ``key``: ``data`` then ``tail`` into a temporary file in the chunk's folder, which then replaces
        the chunk atomically (a crash leaves the old chunk or the new one, never half of one)."""
        path = os.path.join(self.root, key)
        folder = os.path.dirname(path)
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        tmp = f"{path}.{uuid.uuid4().hex}.partial"
        try:
            if not (self.direct and len(data) + len(tail) >= _DIRECT_MIN and self._write_direct(tmp, data, tail)):
                with open(tmp, "wb") as f:
                    f.write(data)  # larger than the file's buffer: written from ``data`` itself, uncopied
                    f.write(tail)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def _write_direct(self, tmp: str, data: bytes, tail: bytes) -> bool:
        """``data + tail`` into ``tmp`` past the page cache; False (and buffered writes from now on) where the
        filesystem refuses O_DIRECT."""
        n = len(data) + len(tail)
        size = -(-n // _ALIGN) * _ALIGN
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            self.direct = False
            return False
        try:
            buf = _aligned(size)
            buf[:len(data)] = data
            buf[len(data):n] = tail
            with memoryview(buf) as whole:  # whole pages: the bytes past n are cut by the truncate below
                done = 0
                while done < size:
                    done += os.write(fd, whole[done:size])
            os.ftruncate(fd, n)
        except OSError as e:
            if e.errno != errno.EINVAL:  # the filesystem took the open but not the write: buffered from now on
                raise
            self.direct = False
            return False
        finally:
            os.close(fd)
        return True
