"""``ds.dit``: select canonical names from a store opened with ``open_store``, reshape tokens, rank channels.

    ds.dit.names                 recorded canonical names
    ds.dit.sel(name, stat=None)  DataArray (sample, step, token, channel) — or (sample, step, channel) for a stat;
                                 a glob gives a "layer" dimension
    ds.dit.grid(da)              image tokens -> (token_row, token_col)
    ds.dit.topk(name, k)         the k channels with the largest mean |x| (over samples, steps and tokens)
    ds.dit.complete              boolean (sample, step) of units fully written
"""

from __future__ import annotations

import xarray as xr

from .names import expand


@xr.register_dataset_accessor("dit")
class DitAccessor:
    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    @property
    def names(self) -> list[str]:
        return list(self._ds.attrs.get("names", []))

    @property
    def complete(self) -> xr.DataArray:
        return self._ds["complete"]

    def sel(self, name: str, stat: str | None = None) -> xr.DataArray:
        names = expand(name, self.names)
        arrays = []
        for n in names:
            fam, i, stream, site = n.split(".")
            var = f"{stream}.{site}" if stat is None else f"{stream}.{site}.stats"
            if var not in self._ds:
                raise KeyError(f"{var!r} is not in this store (mode {self._ds.attrs.get('mode')!r}; variables "
                               f"{sorted(v for v in self._ds.data_vars if v.startswith(stream))})")
            da = self._ds[var].sel(layer=f"{fam}.{i}")
            arrays.append(da if stat is None else da.sel(stat=stat))
        if len(arrays) == 1 and not any(c in name for c in "*?["):
            return arrays[0]
        return xr.concat(arrays, dim="layer")

    def grid(self, da: xr.DataArray) -> xr.DataArray:
        if "token_row" not in self._ds.coords:
            raise ValueError("this store has no token grid (token_row/token_col)")
        return da.set_index(img_token=["token_row", "token_col"]).unstack("img_token")

    def topk(self, name: str, k: int = 4) -> list[int]:
        n_channels = self._ds.sizes["channel"]
        if not 1 <= k <= n_channels:
            raise ValueError(f"k={k} out of range 1..{n_channels}")
        fam, i, stream, site = expand(name, self.names)[0].split(".")
        da = self._ds[f"{stream}.{site}.stats"].sel(layer=f"{fam}.{i}", stat="mean_abs")
        score = da.mean(("sample", "step"), skipna=True).values
        return [int(c) for c in score.argsort()[::-1][:k]]
