"""Whole-chunk writes without zarr-python's write path: encode on the calling thread, hand the store the bytes.

    chunk_writer(arr, timeout, pool) -> ChunkWriter | None   for a zarr v3 array stored as [bytes
                                              (little-endian), blosc] or with a crc32c checksum after blosc (the
                                              store's codecs), else None; ``pool``: threads that encode a round's
                                              chunks, and write a local disk's files, in parallel (None: the
                                              caller encodes, the I/O thread writes)
    chunk_codecs(arr), crc32c(data)           the same pipeline's parts, for readers that check chunks
    bounded_sync(coro, timeout)               run a storage coroutine on zarr's loop, cancelled there past its bound
                                              (default zarr's ``async.timeout``)
    ChunkWriter.write_many([(coords, block)]) encode chunks at grid positions ``coords`` and queue their bytes
                                              (returns the futures of their request rounds)
                                              for the store, stored concurrently (one request round on object
                                              storage instead of a round trip per chunk); an edge block is padded
                                              with the fill value, as zarr stores edge chunks; at most ``pending``
                                              chunks wait, besides the newest round's
    ChunkWriter.wait()                        return once every queued chunk is in the store (raises its error;
                                              a round the store has not taken within ``timeout`` seconds is
                                              cancelled and raises StoreTimeoutError)
    ChunkWriter.close(abandon=False)          wait, then stop the I/O thread (abandon: drop what is queued)

``arr[region] = block`` also checks fill values, slices partial chunks and runs its codec pipeline through asyncio;
a writer that owns whole chunks needs none of it, and the recorder's data chunks are whole by construction
(``bench/store_bench.py`` measures both paths; bench/README.md has the numbers). Encoding the next chunks overlaps
storing the previous ones (one I/O thread per writer, which stores each call's chunks concurrently, up to
``pending`` at once: on object storage one round of requests instead of a round trip per chunk); callers ``wait()``
before writing anything that vouches for the data. The bytes are exactly what zarr's own Blosc codec produces, so
any zarr reader (``xarray.open_zarr`` included) decodes them. On a local disk (zarr's ``LocalStore``) the I/O
thread writes each chunk itself (``_files``), as zarr does — a temporary file beside it, then an atomic rename, so
a killed writer leaves a chunk whole or as it was — without a round trip through zarr's event loop and a worker
thread per chunk (13-23% less CPU per chunk, encoding included, at the recorder's chunk sizes; bench/README.md).
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from ..errors import ArgumentError, StoreTimeoutError
from ._files import LocalFiles

__all__ = ["ChunkWriter", "chunk_writer", "chunk_codecs", "crc32c", "bounded_sync"]

_CONFIGURED = object()  # bounded_sync's default: zarr's async.timeout


def bounded_sync(coro, timeout=_CONFIGURED):
    """Run ``coro`` on zarr's event loop, bounded by ``timeout`` seconds (default zarr's ``async.timeout``, which
    ``record`` sets to its storage timeout; None: unbounded): past it the coroutine is cancelled on that loop,
    leaving no task pending, and TimeoutError is raised."""
    import zarr
    from zarr.core.sync import sync

    if timeout is _CONFIGURED:
        timeout = zarr.config.get("async.timeout")
    if timeout is None:
        return sync(coro)
    return sync(asyncio.wait_for(coro, timeout), timeout=2 * timeout + 10)  # the outer bound: a cancellation that
    # itself hangs


class ChunkWriter:
    def __init__(self, arr, blosc, checksum: bool = False, pending: int = 8, timeout: float | None = None,
                 pool=None):
        from zarr.core.buffer import default_buffer_prototype

        self.arr, self.blosc, self.checksum = arr, blosc, checksum
        self.chunks = tuple(arr.chunks)
        self.dtype = np.dtype(arr.dtype).newbyteorder("<")
        self.fill = arr.fill_value
        self.prefix = f"{arr.path}/" if arr.path else ""
        self._buffer = default_buffer_prototype().buffer
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dit-lens-chunks")
        self._pending: deque = deque()  # (future, chunks in it), oldest first
        self._queued = 0  # chunks in self._pending
        self._max_pending = pending
        self.timeout = timeout
        self._root = _local_root(arr.store)  # a local disk's folder: chunks written directly; else None
        self._files = LocalFiles(self._root) if self._root is not None else None
        self._pool = pool  # a ThreadPoolExecutor shared by a store's writers (its owner shuts it down), or None

    def write_many(self, items) -> list:
        """Queue the chunks; returns the futures of their request rounds (done once those chunks are stored)."""
        items = list(items)
        for _, block in items:  # every block checked before any is queued: a bad one leaves the call unwritten
            if block.ndim != len(self.chunks) or any(b > c for b, c in zip(block.shape, self.chunks)):
                raise ArgumentError(f"{self.arr.path}: block of shape {block.shape} does not fit its chunks "
                                 f"{self.chunks}")
        rounds = []
        for i in range(0, len(items), self._max_pending):  # bounded: at most ``pending`` chunks per request round
            part = items[i:i + self._max_pending]
            keys = [self.prefix + self.arr.metadata.encode_chunk_key(tuple(int(c) for c in coords))
                    for coords, _ in part]
            blocks = [block for _, block in part]
            datas = list(self._pool.map(self._encode, blocks)) if self._pool is not None and len(blocks) > 1 \
                else [self._encode(b) for b in blocks]  # every block encoded before the caller may reuse it
            rounds.append(self._submit(keys, datas))
        return rounds

    def _encode(self, block: np.ndarray) -> bytes:
        if block.shape != self.chunks:  # an edge chunk: zarr stores it full size, padded with the fill value
            full = np.full(self.chunks, self.fill, dtype=self.dtype)
            full[tuple(slice(0, b) for b in block.shape)] = block
            block = full
        return self.blosc.encode(np.ascontiguousarray(block, dtype=self.dtype))  # Blosc releases the GIL

    def _submit(self, keys: list, datas: list):
        future = self._io.submit(self._put_many, keys, datas)
        self._pending.append((future, len(keys)))
        self._queued += len(keys)
        while self._queued > self._max_pending and len(self._pending) > 1:  # the oldest first, never the newest
            self._done(*self._pending.popleft())
        return future

    def _done(self, future, n: int) -> None:
        self._queued -= n
        # a round on zarr's loop is bounded there; this bound guards against a thread that never returns, and bounds
        # a local disk's plain file writes (which nothing can cancel: the thread is left to finish)
        bound = None if self.timeout is None else 2 * self.timeout + 10
        try:
            future.result(timeout=bound)
        except TimeoutError as e:
            if isinstance(e, StoreTimeoutError):
                raise
            where = f"{n} chunk writes to {self._root}" if self._root is not None else "the store's I/O thread"
            raise StoreTimeoutError(f"{where} did not return within {bound:g} s") from None

    def _put_many(self, keys: list, datas: list) -> None:
        """Store the chunks: on object storage their requests run concurrently, on a local disk this thread writes
        their files in turn (or the pool's threads at once). The checksums are taken here, on the I/O thread, while
        the caller encodes the next chunks."""
        sums = [crc32c(d) for d in datas] if self.checksum else [b""] * len(datas)
        if self._root is not None:  # the checksum written after the chunk's bytes, not appended to a copy of them
            if self._pool is not None and len(keys) > 1:
                futures = [self._pool.submit(self._files.put, k, d, tail) for k, d, tail in zip(keys, datas, sums)]
                wait(futures)  # all ended, then the first error
                for f in futures:
                    f.result()
            else:
                for k, d, tail in zip(keys, datas, sums):
                    self._files.put(k, d, tail)
            return
        datas = [d + tail for d, tail in zip(datas, sums)]  # a store call takes one buffer per chunk

        async def put_all():  # cancelled, its requests with it, when the store does not take it in time
            await asyncio.gather(*(self.arr.store.set(k, self._buffer.from_bytes(d)) for k, d in zip(keys, datas)))
        try:
            bounded_sync(put_all(), self.timeout)
        except TimeoutError:
            raise StoreTimeoutError(f"the store did not complete {len(keys)} chunk writes ({keys[0]}, ...) "
                                    f"within {self.timeout:g} s") from None

    def wait(self) -> None:
        while self._pending:
            self._done(*self._pending.popleft())

    def close(self, abandon: bool = False) -> None:
        """Wait for every queued chunk, then stop the I/O thread; ``abandon``: drop the queued chunks instead (the
        writer failed: nothing it queued will be vouched for), leaving the round in flight to end within its bound."""
        if abandon:
            self._pending.clear()
            self._io.shutdown(wait=False, cancel_futures=True)
            return
        try:
            self.wait()
        finally:
            self._io.shutdown(wait=True, cancel_futures=True)


def _local_root(store) -> str | None:
    """The folder of a writable zarr ``LocalStore`` (exactly that class: a subclass may change how keys map to
    files); None for any other store."""
    from zarr.storage import LocalStore

    if type(store) is LocalStore and not store.read_only:
        return str(store.root)
    return None


def chunk_codecs(arr) -> tuple | None:
    """(numcodecs Blosc, whether a crc32c checksum follows) of an array stored as [bytes (little-endian), blosc] or
    [bytes, blosc, crc32c]; None for any other codec pipeline."""
    from numcodecs import Blosc
    from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec

    codecs = tuple(getattr(arr.metadata, "codecs", ()))
    checksum = len(codecs) == 3 and isinstance(codecs[2], Crc32cCodec)
    if len(codecs) != 2 + checksum or not isinstance(codecs[0], BytesCodec) or not isinstance(codecs[1], BloscCodec):
        return None
    if codecs[0].endian is not None and codecs[0].endian.value != "little":
        return None
    b = codecs[1]
    shuffle = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
    return Blosc(cname=b.cname.value, clevel=b.clevel, shuffle=shuffle[b.shuffle.value],
                 blocksize=b.blocksize), checksum


def crc32c(data: bytes) -> bytes:
    """The 4 bytes zarr's crc32c codec appends to a chunk (little-endian crc32c of the chunk's bytes)."""
    import google_crc32c

    return int(google_crc32c.value(data)).to_bytes(4, "little")


def chunk_writer(arr, timeout: float | None = None, pool=None) -> ChunkWriter | None:
    codecs = chunk_codecs(arr)
    return None if codecs is None else ChunkWriter(arr, *codecs, timeout=timeout, pool=pool)
