"""The activation store: a zarr (v3) group that plain ``xarray.open_zarr`` opens, with dit-lens's schema.

    SCHEMA_VERSION
    Layout(...)                 what a store holds: samples, steps, layers, names, token counts, mode, encoding
    create(url, layout, ...)    write the fixed-shape template (metadata + coordinates, no data chunks), in one
                                concurrent round of writes
    ensure_images(group, n, shape)   add the uint8 image variables once a run's images (and so their shape) exist
    uint8_images(images)        a pipeline's output as the uint8 (n, H, W, 3) the store keeps, or None (latents)
    open_group(url, ...)        the zarr group for writers (checks the schema version)
    open_store(url, ...)        lazy xarray.Dataset: decoded to float32, units not flagged complete masked to NaN
    verify(url, ...)            read every chunk of every complete unit; list the ones that fail to decode
    StoreError                  a store that cannot be used (schema, model mismatch, unreachable, corrupt)

Variables (see stores/README.md): ``{stream}.{site}`` (sample, step, layer, {stream}_token, channel) in full mode,
``{stream}.{site}.stats`` (sample, step, layer, stat, channel) in both modes, ``complete`` (sample, step),
``nonfinite`` (sample, step), ``timestep`` (sample, step), ``image`` (sample, y, x, rgb) uint8 and
``image_complete`` (sample). A data chunk holds one (sample, step) and a group of layers (``layers_per_chunk``,
about 8 MiB), is written whole, and is flagged complete only after every variable of the unit is written.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

SCHEMA_VERSION = 1
STATS = ("mean_abs", "max_abs", "rms", "median_abs")
ENCODINGS = {"float32": "float32", "float16": "float16", "bfloat16-bits": "uint16"}


def compressors() -> list:
    """The store's lossless codec: Blosc LZ4 with bit-shuffle (1.7 bytes/value on bf16-precision activations and
    about twice zstd-1's write speed here; see bench/store_bench.py)."""
    from zarr.codecs import BloscCodec

    return [BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")]


class StoreError(RuntimeError):
    """A store that cannot be opened, appended to or trusted."""


@dataclass
class Layout:
    prompts: list
    seeds: list  # one per sample
    steps: int  # steps recorded (indices into the run's steps are in ``step_index``)
    step_index: list
    layers: list  # block names "double.0", ... in depth order
    depth: list
    names: list  # canonical names recorded
    tokens: dict  # stream -> token count stored
    channels: int
    grid: list | None  # [rows, cols] of the image tokens, when known
    image_shape: list | None  # [H, W, 3] in stores written before images were added by ``ensure_images``; else None
    mode: str = "full"  # "full" | "stats"
    encoding: str = "float32"
    cfg: str = "cond"
    img_token_index: list | None = None  # stored subset of image tokens
    layers_per_chunk: int = 1
    attrs: dict = field(default_factory=dict)  # model class, config hash, pipeline kwargs, version

    def variables(self) -> dict:
        """variable -> layers it holds (names grouped by stream.site)."""
        out: dict = {}
        for n in self.names:
            fam, i, stream, site = n.split(".")
            out.setdefault(f"{stream}.{site}", []).append(f"{fam}.{i}")
        return out


def _lazy(shape: tuple, fill, dtype):
    """A never-computed stand-in for a template variable: one dask chunk (the zarr chunks come from the encoding),
    so the template's cost does not grow with the store's chunk count (8 x 28 x 57 chunks: 1.3 s as one task each)."""
    import dask.array as da

    return da.full(shape, fill, dtype=dtype, chunks=shape)


def create(url: str, layout: Layout, storage_options: dict | None = None) -> None:
    import xarray as xr
    n, s, L, C = len(layout.prompts), layout.steps, len(layout.layers), layout.channels
    Lc = layout.layers_per_chunk
    codec = compressors()
    data, enc = {}, {}
    dtype = ENCODINGS[layout.encoding]
    fill = np.nan if dtype.startswith("float") else 0
    for var, layers in layout.variables().items():
        stream = var.split(".")[0]
        T = layout.tokens[stream]
        if layout.mode == "full":
            data[var] = xr.Variable(("sample", "step", "layer", f"{stream}_token", "channel"),
                                    _lazy((n, s, L, T, C), fill, dtype), attrs={"layers": layers})
            enc[var] = {"compressors": codec, "fill_value": fill, "chunks": (1, 1, Lc, T, C)}
        data[f"{var}.stats"] = xr.Variable(("sample", "step", "layer", "stat", "channel"),
                                           _lazy((n, s, L, len(STATS), C), np.nan, "float32"),
                                           attrs={"layers": layers})
        enc[f"{var}.stats"] = {"compressors": codec, "fill_value": np.nan, "chunks": (1, s, L, len(STATS), C)}
    for var, dt, fillv in (("complete", bool, False), ("nonfinite", "int64", 0), ("timestep", "float32", np.nan)):
        # one chunk per sample row, owned by the one writer of that sample, written once after all its data
        data[var] = xr.Variable(("sample", "step"), _lazy((n, s), fillv, dt))
        enc[var] = {"fill_value": fillv, "compressors": codec, "chunks": (1, s)}
    coords = {
        "sample": np.arange(n), "step": np.asarray(layout.step_index), "layer": np.array(layout.layers, object),
        "depth": ("layer", np.asarray(layout.depth)),
        "family": ("layer", np.array([x.split(".")[0] for x in layout.layers], object)),
        "prompt": ("sample", np.array(layout.prompts, object)), "seed": ("sample", np.asarray(layout.seeds)),
        "channel": np.arange(C), "stat": np.array(STATS, object),
    }
    if "img" in layout.tokens:
        idx = np.asarray(layout.img_token_index if layout.img_token_index is not None
                         else np.arange(layout.tokens["img"]))
        coords["img_token"] = idx
        if layout.grid:
            coords["token_row"] = ("img_token", idx // layout.grid[1])
            coords["token_col"] = ("img_token", idx % layout.grid[1])
    attrs = dict(layout.attrs, dit_lens_schema=SCHEMA_VERSION, layout=json.dumps(asdict(layout)), cfg=layout.cfg,
                 mode=layout.mode, encoding=layout.encoding, names=list(layout.names))
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    from zarr.storage import MemoryStore

    template = MemoryStore()  # xarray's encoding, written where each of its ~50 calls is cheap
    ds.to_zarr(template, mode="w-", compute=False, encoding=enc, zarr_format=3, consolidated=False)
    _copy_new(template, url, storage_options)


def _copy_new(template, url: str, storage_options: dict | None) -> None:
    """Every object of ``template`` to a new store at ``url``, all at once: one concurrent round of writes (on
    object storage ~50 sequential requests became one burst: 1.0 -> 0.33 s on the loopback S3 server)."""
    import asyncio

    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync
    from zarr.storage import FsspecStore, LocalStore

    async def copy():
        remote = "://" in url and not url.startswith("file://")
        dst = FsspecStore.from_url(url, storage_options=storage_options) if remote \
            else LocalStore(url.removeprefix("file://"))
        if await dst.exists("zarr.json"):
            raise FileExistsError(url)
        keys = [k async for k in template.list()]
        values = await asyncio.gather(*(template.get(k, default_buffer_prototype()) for k in keys))
        await asyncio.gather(*(dst.set(k, v) for k, v in zip(keys, values) if k != "zarr.json"))
        await dst.set("zarr.json", values[keys.index("zarr.json")])  # the group's metadata last: a store appears
        # only once its arrays are in place

    try:
        sync(copy())
    except FileExistsError as e:
        raise StoreError(f"{url} already exists: pass resume=True to complete it, or choose a new path") from e
    except Exception as e:  # noqa: BLE001 - unreachable endpoints, permissions, full disks raise many kinds
        raise StoreError(f"cannot create a store at {url}: {type(e).__name__}: {e}") from e


def read_layout(group) -> Layout:
    attrs = dict(group.attrs)
    version = attrs.get("dit_lens_schema")
    if version != SCHEMA_VERSION:
        raise StoreError(f"store schema version {version!r}, this dit-lens reads version {SCHEMA_VERSION}")
    return Layout(**json.loads(attrs["layout"]))


def ensure_images(group, n: int, shape: tuple) -> None:
    """Create ``image`` (sample, y, x, rgb) uint8 and ``image_complete`` (sample) the first time a writer has images
    of ``shape`` (H, W, 3): the run's own output decides it, not a guess made before the run. Writers sharing a
    store may race to create them; the loser checks that the shapes agree."""
    import zarr

    H, W, _ = shape
    try:
        group.create_array("image", shape=(n, H, W, 3), chunks=(1, H, W, 3), dtype="uint8", fill_value=0,
                           compressors=compressors(), dimension_names=("sample", "y", "x", "rgb"))
        group.create_array("image_complete", shape=(n,), chunks=(1,), dtype="bool", fill_value=False,
                           compressors=compressors(), dimension_names=("sample",))
    except zarr.errors.ContainsArrayError:
        pass
    have = tuple(group["image"].shape)
    if have != (n, H, W, 3):
        raise StoreError(f"this store's images are {have[1:]}, this run made {tuple(shape)}")


def uint8_images(images) -> np.ndarray | None:
    """A pipeline's output as uint8 (n, H, W, 3): PIL images, uint8 arrays, or float images in [0, 1] (numpy
    (n, H, W, 3) or torch (n, 3, H, W), scaled as diffusers' ``numpy_to_pil`` does); None for anything else
    (latents), which is then not stored."""
    if isinstance(images, list) and images and hasattr(images[0], "convert"):
        return np.stack([np.asarray(im.convert("RGB")) for im in images])
    if hasattr(images, "detach"):  # a torch tensor (output_type="pt")
        images = images.detach().float().cpu().numpy()
        images = images.transpose(0, 2, 3, 1) if images.ndim == 4 and images.shape[1] == 3 else images
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        return None
    if images.dtype == np.uint8:
        return images
    if np.issubdtype(images.dtype, np.floating):
        if images.size and not (np.nanmin(images) >= 0.0 and np.nanmax(images) <= 1.0):
            warnings.warn(f"not storing this batch's images: float images outside [0, 1] (range "
                          f"{np.nanmin(images):.3g}..{np.nanmax(images):.3g}) would need clipping to become uint8",
                          RuntimeWarning, stacklevel=4)
            return None
        return (images * 255).round().astype(np.uint8)
    return None


def open_group(url: str, storage_options: dict | None = None, mode: str = "r+"):
    import zarr

    try:
        group = zarr.open_group(url, mode=mode, storage_options=storage_options or None, zarr_format=3)
    except FileNotFoundError as e:
        raise StoreError(f"no dit-lens store at {url}") from e
    except Exception as e:  # noqa: BLE001 - unreachable endpoints raise many kinds
        raise StoreError(f"cannot open store {url}: {type(e).__name__}: {e}") from e
    read_layout(group)
    return group


def decode(arr, encoding: str):
    """Raw stored values -> float32 (bf16 bits are widened exactly)."""
    if encoding == "bfloat16-bits":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.astype(np.float32, copy=False)


def open_store(url: str, complete_only: bool = True, **storage_options):
    """The store as a lazy ``xarray.Dataset``: activations decoded to float32; units whose ``complete`` flag is not
    set read as NaN (``complete_only=False`` shows raw fill values instead)."""
    import xarray as xr

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
    from . import _accessor  # noqa: F401  registers ds.dit

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
