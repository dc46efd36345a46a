"""The store's schema: what a store holds and how it is laid out in zarr (v3), readable with plain xarray.

    SCHEMA_VERSION, STATS, ENCODINGS
    Layout(...)                 what a store holds: samples, steps, layers, names, token counts, mode, encoding,
                                chunk geometry and the run's attributes
    layers_per_chunk(tokens, channels, encoding, layers)   layers per data chunk (about 8 MiB, at most every layer)
    COMPRESSIONS                the activation values' lossless codecs by name: "lz4" (the default), "none"
    compressors(compression)    the codecs of a variable
    create(url, layout, ...)    write the fixed-shape template (metadata + coordinates, no data chunks), in one
                                concurrent round of writes
    open_group(url, ...)        the zarr group, its schema version checked
    read_layout(group)          the Layout a store was created with
    decode(raw, encoding)       stored values -> float32 (bf16 bits widened exactly)
    uint8_images(images)        a pipeline's output as the uint8 (n, H, W, 3) the store keeps, or None (latents)

Variables (see stores/README.md): ``{stream}.{site}`` (sample, step, layer, {stream}_token, channel) in full mode,
``{stream}.{site}.stats`` (sample, step, layer, stat, channel) in both modes, ``complete`` (sample, step),
``nonfinite`` (sample, step), ``timestep`` (sample, step), ``image`` (sample, y, x, rgb) uint8 and
``image_complete`` (sample). A data chunk holds one (sample, step) and a group of layers (``layers_per_chunk``),
is written whole, and is flagged complete only after every variable of the unit is written.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import StoreError, StoreTimeoutError
from ._chunks import bounded_sync

__all__ = ["SCHEMA_VERSION", "STATS", "ENCODINGS", "COMPRESSIONS", "Layout", "layers_per_chunk", "compressors",
           "create", "open_group", "read_layout", "decode", "uint8_images"]

SCHEMA_VERSION = 1
STATS = ("mean_abs", "max_abs", "rms", "median_abs")
ENCODINGS = {"float32": "float32", "float16": "float16", "bfloat16-bits": "uint16"}


# Blosc (cname, clevel, shuffle) of the activation values. "none" keeps Blosc frames (every reader and ``verify`` take
# them alike) but stores them uncompressed: on float32 activations LZ4 + bit-shuffle saves ~9% of the bytes for
# ~1.2 ms of CPU per MB (bf16 bits: ~20%); where the recorder's threads share the model's cores that CPU shows in
# the run's time (bench/README.md).
COMPRESSIONS = {"lz4": ("lz4", 5, "bitshuffle"), "none": ("lz4", 0, "noshuffle")}


def compressors(compression: str = "lz4") -> list:
    """The codecs of a store's variable: Blosc (LZ4 with bit-shuffle, or ``"none"``: frames stored uncompressed; see
    bench/README.md for how LZ4 compares with zstd), then a crc32c checksum of every chunk (a flipped bit or a
    truncated chunk fails to read, by name, instead of decoding to wrong values)."""
    from zarr.codecs import BloscCodec, Crc32cCodec

    if compression not in COMPRESSIONS:
        raise StoreError(f"compression={compression!r}: one of {sorted(COMPRESSIONS)}")
    cname, clevel, shuffle = COMPRESSIONS[compression]
    return [BloscCodec(cname=cname, clevel=clevel, shuffle=shuffle), Crc32cCodec()]


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
    mode: str = "full"  # "full" | "stats"
    encoding: str = "float32"
    cfg: str = "cond"
    img_token_index: list | None = None  # stored subset of image tokens
    layers_per_chunk: int = 1
    compression: str | None = "lz4"  # the activation values' codec (COMPRESSIONS; statistics and flags: "lz4");
    # None only in a resumed recording's request: the store's own
    attrs: dict = field(default_factory=dict)  # model class, config hash, pipeline kwargs, version

    def variables(self) -> dict:
        """variable -> layers it holds (names grouped by stream.site)."""
        out: dict = {}
        for n in self.names:
            fam, i, stream, site = n.split(".")
            out.setdefault(f"{stream}.{site}", []).append(f"{fam}.{i}")
        return out


def layers_per_chunk(tokens: int, channels: int, encoding: str, target: int = 8 << 20,
                     layers: int | None = None) -> int:
    """Layers per data chunk so one chunk holds about ``target`` bytes (at least one layer), spread evenly over the
    store's ``layers``: zarr encodes a chunk at its full size, so a chunk of 64 layers over 6 would pad (and
    compress) 58 layers of fill value at every write, and 12 layers in chunks of 5 would pad 3."""
    per_layer = tokens * channels * (4 if encoding == "float32" else 2)
    most = max(1, target // per_layer)
    if not layers:
        return most
    groups = -(-layers // most)
    return -(-layers // groups)


def _lazy(shape: tuple, fill, dtype):
    """A never-computed stand-in for a template variable: one dask chunk (the zarr chunks come from the encoding),
    so the template's cost does not grow with the store's chunk count."""
    import dask.array as da

    return da.full(shape, fill, dtype=dtype, chunks=shape)


def create(url: str, layout: Layout, storage_options: dict | None = None) -> None:
    import xarray as xr
    n, s, L, C = len(layout.prompts), layout.steps, len(layout.layers), layout.channels
    Lc = layout.layers_per_chunk
    codec = compressors()
    values_codec = codec if layout.compression == "lz4" else compressors(layout.compression)
    data, enc = {}, {}
    dtype = ENCODINGS[layout.encoding]
    fill = np.nan if dtype.startswith("float") else 0
    for var, layers in layout.variables().items():
        stream = var.split(".")[0]
        T = layout.tokens[stream]
        if layout.mode == "full":
            data[var] = xr.Variable(("sample", "step", "layer", f"{stream}_token", "channel"),
                                    _lazy((n, s, L, T, C), fill, dtype), attrs={"layers": layers})
            enc[var] = {"compressors": values_codec, "fill_value": fill, "chunks": (1, 1, Lc, T, C)}
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
        if layout.grid:  # (rows, cols), or (frames, rows, cols) for video
            rows, cols = layout.grid[-2:]
            if len(layout.grid) == 3:
                coords["token_frame"] = ("img_token", idx // (rows * cols))
            coords["token_row"] = ("img_token", idx // cols % rows)
            coords["token_col"] = ("img_token", idx % cols)
    attrs = dict(layout.attrs, dit_lens_schema=SCHEMA_VERSION, layout=json.dumps(asdict(layout)), cfg=layout.cfg,
                 mode=layout.mode, encoding=layout.encoding, names=list(layout.names))
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    from zarr.storage import MemoryStore

    template = MemoryStore()  # xarray's encoding, written where each of its ~50 calls is cheap
    ds.to_zarr(template, mode="w-", compute=False, encoding=enc, zarr_format=3, consolidated=False)
    _copy_new(template, url, storage_options)


def check_new(url: str, storage_options: dict | None = None) -> None:
    """Raise where ``create`` would for the place itself — a file there, a parent that cannot hold folders, a store
    already there, a storage that does not answer — without writing anything (a recording checks before it starts
    and writes the template beside its first batch)."""
    _check_place(url)

    async def absent():
        if await _destination(url, storage_options).exists("zarr.json"):
            raise FileExistsError(url)
    _run_new(url, absent())


def _check_place(url: str) -> None:
    """A local store's place: not a file, and under a writable folder (the nearest one there is: the store's
    folders are made in it)."""
    import os

    local = url.removeprefix("file://")
    if "://" in local:
        return
    if os.path.isfile(local):
        raise StoreError(f"{url} is a file, not a store: choose another path")
    above = os.path.dirname(os.path.abspath(local))
    while not os.path.exists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above) or not os.access(above, os.W_OK | os.X_OK):
        raise StoreError(f"cannot create a store at {url}: {above} is "
                         f"{'not a folder' if not os.path.isdir(above) else 'not writable'}")


def _run_new(url: str, coro) -> None:
    """Run a coroutine that makes (or checks the place of) a new store at ``url``, its failures said as the store's:
    a store already there (``FileExistsError``), no answer in time, anything else."""
    try:
        bounded_sync(coro)
    except FileExistsError as e:
        raise StoreError(f"{url} already exists: pass resume=True to complete it, or choose a new path") from e
    except TimeoutError as e:  # zarr's async.timeout (set by the recorder) or the filesystem's own
        raise StoreTimeoutError(f"{url} did not answer in time while creating the store") from e
    except Exception as e:  # noqa: BLE001 - unreachable endpoints, permissions, full disks raise many kinds
        raise StoreError(f"cannot create a store at {url}: {type(e).__name__}: {e}") from e


def _destination(url: str, storage_options: dict | None):
    from zarr.storage import FsspecStore, LocalStore

    remote = "://" in url and not url.startswith("file://")
    return FsspecStore.from_url(url, storage_options=storage_options) if remote \
        else LocalStore(url.removeprefix("file://"))


def _copy_new(template, url: str, storage_options: dict | None) -> None:
    """Every object of ``template`` to a new store at ``url``, all at once: one concurrent round of writes (on
    object storage one burst of requests instead of ~50 sequential ones)."""
    import asyncio

    from zarr.core.buffer import default_buffer_prototype

    _check_place(url)

    async def copy():
        dst = _destination(url, storage_options)
        if await dst.exists("zarr.json"):
            raise FileExistsError(url)
        keys = [k async for k in template.list()]
        values = await asyncio.gather(*(template.get(k, default_buffer_prototype()) for k in keys))
        await asyncio.gather(*(dst.set(k, v) for k, v in zip(keys, values) if k != "zarr.json"))
        await dst.set("zarr.json", values[keys.index("zarr.json")])  # the group's metadata last: a store appears
        # only once its arrays are in place
    _run_new(url, copy())


def read_layout(group) -> Layout:
    attrs = dict(group.attrs)
    version = attrs.get("dit_lens_schema")
    if version != SCHEMA_VERSION:
        raise StoreError(f"store schema version {version!r}, this dit-lens reads version {SCHEMA_VERSION}")
    fields = json.loads(attrs["layout"])
    fields.pop("image_shape", None)  # written (always None) by stores created before images had their own arrays
    return Layout(**fields)


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
    from zarr.api import asynchronous

    try:  # zarr.open_group itself ignores async.timeout; its asynchronous form under bounded_sync does not
        group = zarr.Group(bounded_sync(asynchronous.open_group(url, mode=mode, zarr_format=3,
                                                                storage_options=storage_options or None)))
    except FileNotFoundError as e:
        raise StoreError(f"no dit-lens store at {url}") from e
    except TimeoutError as e:  # zarr's async.timeout (set by the recorder) or the filesystem's own
        raise StoreTimeoutError(f"{url} did not answer in time while opening it") from e
    except Exception as e:  # noqa: BLE001 - unreachable endpoints raise many kinds
        raise StoreError(f"cannot open store {url}: {type(e).__name__}: {e}") from e
    read_layout(group)
    return group


def decode(arr, encoding: str):
    """Raw stored values -> float32 (bf16 bits are widened exactly)."""
    if encoding == "bfloat16-bits":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.astype(np.float32, copy=False)


