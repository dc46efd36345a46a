"""A zarr store wrapper that checks every chunk as it is read, so a bad chunk is named instead of decoded.

    checked_store(url, storage_options, skip=()) -> zarr Store
        chunks of arrays whose codecs end in crc32c must match it; Blosc frames must be whole (a truncated frame is
        never handed to the decoder, which can crash the process); a chunk that fails raises BadChunkError naming
        its key; chunks whose keys are in ``skip`` read as missing (their units are masked by the caller)
    problem(data, codecs) -> str | None      "checksum" / "truncated" with a detail, or None for a sound chunk

The wrapper learns each array's codecs from its ``zarr.json`` as the reader opens it: no extra request.
"""

from __future__ import annotations

import json

from ..errors import StoreError

__all__ = ["checked_store", "problem", "BadChunkError"]


class BadChunkError(StoreError):
    """A chunk failed its checks while being read."""


def problem(data: bytes, crc: bool, blosc: bool) -> str | None:
    """Why a chunk's bytes are bad ("checksum: ..." / "truncated: ..."), or None."""
    from ._chunks import crc32c

    if crc:
        if len(data) < 4 or crc32c(data[:-4]) != data[-4:]:
            return "checksum: the chunk's bytes do not match its crc32c"
        data = data[:-4]
    if blosc:  # a Blosc frame's 16-byte header holds its compressed size at bytes 12-16 (little-endian)
        size = int.from_bytes(data[12:16], "little") if len(data) >= 16 else -1
        if size != len(data):
            return f"truncated: {len(data)} bytes of a {size}-byte Blosc frame"
    return None


def _codecs(meta: bytes) -> tuple[bool, bool] | None:
    """(ends in crc32c, has Blosc) from an array's zarr.json, None for a group."""
    try:
        doc = json.loads(meta)
    except ValueError:
        return None
    if doc.get("node_type") != "array":
        return None
    names = [c.get("name") for c in doc.get("codecs", []) if isinstance(c, dict)]
    return bool(names) and names[-1] == "crc32c", "blosc" in names


def checked_store(url: str, storage_options: dict | None = None, skip=()):
    import zarr
    from zarr.storage import FsspecStore, LocalStore

    remote = "://" in url and not url.startswith("file://")
    base = FsspecStore.from_url(url, storage_options=storage_options or None, read_only=True) if remote \
        else LocalStore(url.removeprefix("file://"), read_only=True)
    skip, codecs = frozenset(skip), {}  # array path -> (crc, blosc), filled as zarr.json files pass through

    class Checked(zarr.storage.WrapperStore):
        def _with_store(self, store):
            return type(self)(store)

        async def get(self, key, prototype, byte_range=None):
            if key in skip:
                return None
            buf = await self._store.get(key, prototype, byte_range)
            if buf is None or byte_range is not None:
                return buf
            path, sep, _ = key.rpartition("/c/")
            if key.endswith("zarr.json"):
                found = _codecs(buf.to_bytes())
                if found is not None:
                    codecs[key.rpartition("/")[0]] = found
            elif sep and path in codecs:
                bad = problem(buf.to_bytes(), *codecs[path])
                if bad:
                    raise BadChunkError(f"chunk {key} of {url}: {bad}; `dit-lens info {url} --verify` lists every bad "
                                        f"chunk, open_store(..., bad_chunks='mask') reads around them")
            return buf
    return Checked(base)
