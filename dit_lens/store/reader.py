"""Reading a store: lazily, decoded, with incomplete units hidden, and the ``ds.dit`` accessor.

    open_store(url, ...)         lazy xarray.Dataset: activations decoded to float32, units not flagged complete
                                 masked to NaN (plain ``xarray.open_zarr`` opens the same store raw)
    verify(url, ...)             decode every chunk of every complete unit; list the ones that fail
    ds.dit                       (registered when this module is imported, i.e. with ``dit_lens.store``)
      .names                     recorded canonical names
      .sel(name, stat=None)      DataArray (sample, step, token, channel) -- or (sample, step, channel) for a stat;
                                 a glob gives a "layer" dimension
      .grid(da)                  image tokens -> (token_row, token_col)
      .topk(name, k)             the k channels with the largest mean |x| (over samples, steps and tokens)
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..errors import ArgumentError, StoreError, UnknownNameError
from ..names import expand
from .schema import SCHEMA_VERSION, decode, open_group

__all__ = ["open_store", "verify", "DitAccessor"]


def open_store(url: str, complete_only: bool = True, **storage_options):
    """The store as a lazy ``xarray.Dataset``: activations decoded to float32; units whose ``complete`` flag is not
    set read as NaN (``complete_only=False`` shows raw fill values instead)."""
    try:
        ds = xr.open_zarr(url, consolidated=False, storage_options=storage_options or None, zarr_format=3)
    except FileNotFoundError as e:
        raise StoreError(f"no dit-lens store at {url}") from e
    except Exception as e:  # noqa: BLE001
        raise StoreError(f"cannot open store {url}: {type(e).__name__}: {e}") from e
    if ds.attrs.get("dit_lens_schema") != SCHEMA_VERSION:
        raise StoreError(f"{url}: store schema version {ds.attrs.get('dit_lens_schema')!r}, this dit-lens reads "
                         f"version {SCHEMA_VERSION}")
    enc = ds.attrs.get("encoding", "float32")
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
    """Decode every data chunk of every complete (sample, step) unit; return one record per chunk that fails
    (variable, sample, step, error). Other chunks stay readable: a corrupt chunk never hides the rest."""
    group = open_group(url, storage_options, mode="r")
    complete = np.asarray(group["complete"][:])
    bad = []
    for name, arr in group.arrays():
        if arr.ndim < 2 or name in ("complete", "nonfinite", "timestep") or arr.shape[:2] != complete.shape:
            continue
        for sample, step in zip(*np.nonzero(complete)):
            try:
                arr[int(sample), int(step)]
            except Exception as e:  # noqa: BLE001 - any decode failure is a corrupt chunk
                bad.append(dict(variable=name, sample=int(sample), step=int(step),
                                error=f"{type(e).__name__}: {e}"))
    return bad


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
        return da.set_index(img_token=["token_row", "token_col"]).unstack("img_token")

    def topk(self, name: str, k: int = 4) -> list[int]:
        n_channels = self._ds.sizes["channel"]
        if not 1 <= k <= n_channels:
            raise ArgumentError(f"k={k} out of range 1..{n_channels}")
        fam, i, stream, site = expand(name, self.names)[0].split(".")
        da = self._ds[f"{stream}.{site}.stats"].sel(layer=f"{fam}.{i}", stat="mean_abs")
        score = da.mean(("sample", "step"), skipna=True).values
        return [int(c) for c in score.argsort()[::-1][:k]]
