"""Reading a store: lazily, decoded, with incomplete units hidden, and the ``ds.dit`` accessor.

    open_store(url, ...)         lazy xarray.Dataset: activations decoded to float32, units not flagged complete
                                 masked to NaN (plain ``xarray.open_zarr`` opens the same store raw); each chunk
                                 checked as read: a bad one named (or, bad_chunks="mask", its unit masked)
    verify(url, ...)             every chunk a complete unit vouches for: present, checksum, whole frame, decodes
    ds.dit                       (registered when this module is imported, i.e. with ``dit_lens.store``)
      .names                     recorded canonical names
      .sel(name, stat=None)      DataArray (sample, step, token, channel) -- or (sample, step, channel) for a stat;
                                 a glob gives a "layer" dimension
      .grid(da)                  image tokens -> (token_row, token_col); video: (token_frame, token_row, token_col)
      .topk(name, k)             the k channels with the largest mean |x| (over samples, steps and tokens)
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..errors import ArgumentError, StoreError, UnknownNameError
from ..names import expand
from .schema import SCHEMA_VERSION, decode, open_group

__all__ = ["open_store", "verify", "DitAccessor"]


def open_store(url: str, complete_only: bool = True, bad_chunks: str = "raise", **storage_options):
    """The store as a lazy ``xarray.Dataset``: activations decoded to float32; units whose ``complete`` flag is not
    set read as NaN (``complete_only=False`` shows raw fill values instead).

    Every chunk is checked as it is read (its crc32c, a whole Blosc frame). ``bad_chunks="raise"``: reading a bad
    chunk raises ``StoreError`` naming its key. ``"mask"``: the store is verified first (one read of every chunk a
    complete flag vouches for), the units of bad or missing chunks read as NaN as if never recorded, and
    ``ds.attrs["bad_chunks"]`` lists the chunks (a warning names them)."""
    from ._checked import checked_store

    if bad_chunks not in ("raise", "mask"):
        raise ArgumentError(f"bad_chunks={bad_chunks!r}: choose 'raise' or 'mask'")
    bad = verify(url, storage_options) if bad_chunks == "mask" else []
    try:
        store = checked_store(url, storage_options, skip=[b["chunk"] for b in bad])
        ds = xr.open_zarr(store, consolidated=False, zarr_format=3)
    except FileNotFoundError as e:
        raise StoreError(f"no dit-lens store at {url}") from e
    except Exception as e:  # noqa: BLE001
        raise StoreError(f"cannot open store {url}: {type(e).__name__}: {e}") from e
    if ds.attrs.get("dit_lens_schema") != SCHEMA_VERSION:
        raise StoreError(f"{url}: store schema version {ds.attrs.get('dit_lens_schema')!r}, this dit-lens reads "
                         f"version {SCHEMA_VERSION}")
    enc = ds.attrs.get("encoding", "float32")
    if bad:
        _mask_units(ds, bad, url)
    complete = ds["complete"]
    for var in list(ds.data_vars):
        v = ds[var]
        if "step" in v.dims and var not in ("complete", "nonfinite"):
            if var.count(".") == 1:  # a full activation variable
                v = xr.apply_ufunc(decode, v, kwargs={"encoding": enc}, dask="parallelized",
                                   output_dtypes=[np.float32], keep_attrs=True)
            if complete_only:
                v = v.where(complete)
            ds[var] = v
    if complete_only and "image" in ds:
        ds["image"] = ds["image"].where(ds["image_complete"], 0).astype(np.uint8)
    return ds


def verify(url: str, storage_options: dict | None = None) -> list[dict]:
    """Check every chunk a complete unit vouches for, without trusting it: each must exist (a missing chunk would
    read as fill values), pass its crc32c checksum, have a whole Blosc frame (a truncated frame is never handed to
    the decoder) and decode. Returns one record per bad chunk — variable, chunk key, sample, step (None for
    per-sample chunks), problem ("missing" | "checksum" | "truncated" | "decode") and detail; other chunks stay
    readable. A bad ``complete`` flag row is named too and vouches for nothing."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    from ._chunks import chunk_codecs
    from .schema import read_layout

    def check(name, arr, coords, sample, step, absent_ok=False):
        key = f"{arr.path}/{arr.metadata.encode_chunk_key(coords)}"
        raw = sync(arr.store.get(key, default_buffer_prototype()))
        problem = None if raw is None and absent_ok else "missing" if raw is None \
            else _check_chunk(arr, raw.to_bytes(), chunk_codecs(arr))
        if problem is None:
            return False
        kind, _, detail = problem.partition(": ")
        bad.append(dict(variable=name, chunk=key, sample=sample, step=step, problem=kind,
                        error=f"{kind}: {detail}" if detail else kind))
        return True

    group = open_group(url, storage_options, mode="r")
    layout = read_layout(group)
    bad, flags = [], {}
    for name in ("complete", "image_complete"):  # a flag row that is bad vouches for nothing (and is named)
        if name in group:
            arr = group[name]
            rows = [i for i in range(arr.shape[0])
                    if not check(name, arr, (i,) + (0,) * (arr.ndim - 1), i, None, absent_ok=True)]
            flags[name] = np.zeros(arr.shape, bool)
            flags[name][rows] = np.asarray(arr.get_orthogonal_selection((rows,))) if rows else False
    complete = flags["complete"]
    samples = np.nonzero(complete.any(1))[0]
    imaged = np.nonzero(flags["image_complete"])[0] if "image_complete" in flags else []
    written = {"nonfinite", "timestep", "image"}
    for var in layout.variables():
        written |= {f"{var}.stats"} | ({var} if layout.mode == "full" else set())
    for name, arr in group.arrays():
        if name not in written:  # coordinates: written with the template, not vouched for by flags
            continue
        for coords, sample, step in _expected_chunks(name, arr, layout, complete, samples, imaged):
            check(name, arr, coords, sample, step)
    return bad


def _mask_units(ds: xr.Dataset, bad: list, url: str) -> None:
    """Mark the units of bad chunks incomplete (in memory; the store is not touched)."""
    import warnings

    complete = ds["complete"].values.copy()
    imaged = ds["image_complete"].values.copy() if "image_complete" in ds else None
    for b in bad:
        if b["variable"] in ("image", "image_complete"):
            imaged[b["sample"]] = False
        elif b["step"] is None:
            complete[b["sample"]] = False
        else:
            complete[b["sample"], b["step"]] = False
    ds["complete"] = (ds["complete"].dims, complete)
    if imaged is not None:
        ds["image_complete"] = (ds["image_complete"].dims, imaged)
    ds.attrs["bad_chunks"] = [b["chunk"] for b in bad]
    keys = ", ".join(f"{b['chunk']} ({b['problem']})" for b in bad[:5]) + (" ..." if len(bad) > 5 else "")
    warnings.warn(f"{url}: {len(bad)} bad chunks read as missing, their units masked: {keys}", stacklevel=3)


def _expected_chunks(name, arr, layout, complete, samples, imaged):
    """(chunk coordinates, sample, step) of every chunk of ``arr`` that a complete flag vouches for."""
    if name == "image":
        return [((int(s), 0, 0, 0), int(s), None) for s in imaged]
    if arr.ndim == 2 or name.endswith(".stats"):  # one chunk per sample row, all its steps
        return [((int(s),) + (0,) * (arr.ndim - 1), int(s), None) for s in samples]
    pos = {x: i for i, x in enumerate(layout.layers)}
    groups = sorted({pos[x] // layout.layers_per_chunk for x in arr.attrs.get("layers", layout.layers)})
    return [((int(s), int(t), g, 0, 0), int(s), int(t)) for s, t in zip(*np.nonzero(complete)) for g in groups]


def _check_chunk(arr, data: bytes, codecs) -> str | None:
    """None for a sound chunk, else "problem: detail"."""
    from ._checked import problem

    if codecs is None:  # another codec pipeline: let zarr decode it
        return None
    blosc, checksum = codecs
    bad = problem(data, checksum, True)
    if bad:
        return bad
    try:
        out = blosc.decode(data[:-4] if checksum else data)
    except Exception as e:  # noqa: BLE001
        return f"decode: {type(e).__name__}: {e}"
    expected = int(np.prod(arr.chunks)) * np.dtype(arr.dtype).itemsize
    return None if len(out) == expected else f"decode: {len(out)} bytes decoded, the chunk holds {expected}"


@xr.register_dataset_accessor("dit")
class DitAccessor:
    """``ds.dit`` on a Dataset opened with ``open_store``: names, selections by canonical name, top-k channels."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    @property
    def names(self) -> list[str]:
        return list(self._ds.attrs.get("names", []))

    def sel(self, name: str, stat: str | None = None) -> xr.DataArray:
        names = expand(name, self.names)
        arrays = []
        for n in names:
            fam, i, stream, site = n.split(".")
            var = f"{stream}.{site}" if stat is None else f"{stream}.{site}.stats"
            if var not in self._ds:
                raise UnknownNameError(f"{var!r} is not in this store (mode {self._ds.attrs.get('mode')!r}; variables "
                               f"{sorted(v for v in self._ds.data_vars if v.startswith(stream))})")
            da = self._ds[var].sel(layer=f"{fam}.{i}")
            arrays.append(da if stat is None else da.sel(stat=stat))
        if len(arrays) == 1 and not any(c in name for c in "*?["):
            return arrays[0]
        return xr.concat(arrays, dim="layer")

    def grid(self, da: xr.DataArray) -> xr.DataArray:
        if "token_row" not in self._ds.coords:
            raise StoreError("this store has no token grid (token_row/token_col)")
        axes = [a for a in ("token_frame", "token_row", "token_col") if a in self._ds.coords]
        return da.set_index(img_token=axes).unstack("img_token")

    def topk(self, name: str, k: int = 4) -> list[int]:
        n_channels = self._ds.sizes["channel"]
        if not 1 <= k <= n_channels:
            raise ArgumentError(f"k={k} out of range 1..{n_channels}")
        fam, i, stream, site = expand(name, self.names)[0].split(".")
        da = self._ds[f"{stream}.{site}.stats"].sel(layer=f"{fam}.{i}", stat="mean_abs")
        score = da.mean(("sample", "step"), skipna=True).values
        return [int(c) for c in score.argsort()[::-1][:k]]
