"""Per-channel statistics over a full store with Dask, without the model.

    channel_reduce(url_or_ds, name, scheduler=None, **storage_options) -> xarray.Dataset
        max_abs, mean_abs, rms and the exact median_abs of one canonical name per channel, over every complete
        (sample, step) unit and every stored token.

Chunks are reduced independently (one task per (sample, step) chunk) and summed, so the work spreads over Dask's
threads (default), a ``dask.distributed`` scheduler address, or a ``Client``. The median is exact: |x| as float32
has monotone bit patterns, so a 4,096-bin histogram of the high 12 bits (exponent and 3 mantissa bits) per channel
finds the bin holding the median, and a second pass gathers only the values in that bin and selects the median
among them.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .errors import StoreError, UnknownNameError

__all__ = ["channel_reduce"]

_SHIFT = 20  # coarse bins: the top 12 bits of |x|'s float32 pattern
_BINS = 1 << (32 - _SHIFT)


def _abs_bits(block: np.ndarray, encoding: str) -> np.ndarray:
    """(…, C) raw values -> uint32 bit patterns of |x| as float32, channels last, flattened to (n, C)."""
    if encoding == "bfloat16-bits":
        bits = (block.astype(np.uint32) & 0x7FFF) << 16
    else:
        bits = np.abs(block.astype(np.float32)).view(np.uint32)
    return bits.reshape(-1, block.shape[-1])


def _moments(block, encoding):
    """(C, 4) per block: max |x|, sum |x|, sum x^2 (float64), count."""
    from .store.schema import decode

    x = np.abs(decode(block, encoding)).reshape(-1, block.shape[-1]).astype(np.float64)
    return np.stack([x.max(0), x.sum(0), (x * x).sum(0), np.full(x.shape[1], x.shape[0], np.float64)], 1)


def _merge_moments(a, b):
    return np.stack([np.maximum(a[:, 0], b[:, 0]), a[:, 1] + b[:, 1], a[:, 2] + b[:, 2], a[:, 3] + b[:, 3]], 1)


def _hist(block, encoding):
    bits = _abs_bits(block, encoding) >> _SHIFT
    C = bits.shape[1]
    flat = (bits + (np.arange(C, dtype=np.uint32) * _BINS)[None, :]).ravel()
    return np.bincount(flat, minlength=C * _BINS).reshape(C, _BINS)


def _gather(block, encoding, coarse):
    """uint64 keys (channel << 32 | bits) of the values lying in each channel's median bin."""
    bits = _abs_bits(block, encoding)
    inside = (bits >> _SHIFT) == coarse[None, :]
    channel = np.broadcast_to(np.arange(bits.shape[1], dtype=np.uint64)[None, :], bits.shape)
    return (channel[inside] << np.uint64(32)) | bits[inside].astype(np.uint64)


def _compute(tasks, scheduler):
    import dask

    if scheduler is None or scheduler in ("threads", "sync", "processes"):
        return dask.compute(*tasks, scheduler=scheduler or "threads")
    if isinstance(scheduler, str):
        from distributed import Client

        with Client(scheduler) as client:
            return client.compute(list(tasks), sync=True)
    return scheduler.compute(list(tasks), sync=True)


def _tree(parts, op=np.add):
    import dask

    parts = list(parts)
    while len(parts) > 1:  # pairwise tree: no single task holds every partial result
        parts = [dask.delayed(op)(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return parts[0]


def _bad_chunks(store, var: str, **storage_options) -> str:
    """The bad chunks of ``var`` by ``verify`` (for a store given by URL), as a message's tail."""
    if isinstance(store, xr.Dataset):
        return "; dit-lens info --verify lists the bad chunks"
    from .store import verify

    bad = [b for b in verify(str(store), storage_options or None) if b["variable"] == var]
    return "; " + ", ".join(f"{b['chunk']} ({b['problem']})" for b in bad[:5]) if bad else ""


def channel_reduce(store, name: str, scheduler=None, **storage_options) -> xr.Dataset:
    import dask

    from .names import expand

    raw = store if isinstance(store, xr.Dataset) else xr.open_zarr(store, consolidated=False,
                                                                  storage_options=storage_options or None)
    name = expand(name, list(raw.attrs.get("names", [])))[0]
    fam, i, stream, site = name.split(".")
    var = f"{stream}.{site}"
    if var not in raw:
        raise UnknownNameError(f"{var!r} is not in this store (mode {raw.attrs.get('mode')!r}): channel_reduce needs "
                               f"a full store; stats-only stores already hold per-unit statistics")
    encoding = raw.attrs.get("encoding", "float32")
    arr = raw[var].sel(layer=f"{fam}.{i}").data  # dask (sample, step, tokens, channels), raw values
    complete = np.asarray(raw["complete"].values)
    blocks = [arr.blocks[s, t] for s, t in zip(*np.nonzero(complete))]
    if not blocks:
        raise StoreError(f"{name}: the store has no complete (sample, step) unit")
    chunks = [b.to_delayed().ravel()[0] for b in blocks]
    try:
        mom, hist = _compute([_tree([dask.delayed(_moments)(c, encoding) for c in chunks], _merge_moments),
                              _tree([dask.delayed(_hist)(c, encoding) for c in chunks])], scheduler)
    except Exception as e:  # noqa: BLE001 - a chunk that cannot be read: name it
        named = _bad_chunks(store, var, **storage_options)
        raise StoreError(f"{name}: a chunk of {var} cannot be read ({type(e).__name__}: {e}){named}") from e
    count = int(mom[0, 3])
    rank = (count - 1) // 2  # lower median
    cum = hist.cumsum(1)
    coarse = (cum <= rank).sum(1).astype(np.uint32)  # the bin holding the rank-th value, per channel
    below = np.where(coarse > 0, cum[np.arange(len(coarse)), np.maximum(coarse.astype(np.int64) - 1, 0)], 0)
    keys = np.sort(np.concatenate(_compute([dask.delayed(_gather)(c, encoding, coarse) for c in chunks],
                                           scheduler)))
    channel = (keys >> np.uint64(32)).astype(np.int64)
    start = np.searchsorted(channel, np.arange(len(coarse)))
    med_bits = (keys[start + (rank - below)] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    median = med_bits.view(np.float32)
    n = float(count)
    return xr.Dataset({"max_abs": ("channel", mom[:, 0].astype(np.float32)),
                       "mean_abs": ("channel", (mom[:, 1] / n).astype(np.float32)),
                       "rms": ("channel", np.sqrt(mom[:, 2] / n).astype(np.float32)),
                       "median_abs": ("channel", median)},
                      coords={"channel": raw["channel"].values}, attrs={"name": name, "values": int(n)})
