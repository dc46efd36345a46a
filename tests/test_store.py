"""The activation store: bit-exact round trips, crash safety and resume, stats, errors, S3, distributed writers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from zarr.storage import LocalStore

from dit_lens import Lens, _stats, record
from dit_lens._stats import StepReducer, StepStats, _device_stats, _nonfinite, channel_stats
from dit_lens.store import Layout, StoreError, create, open_group, open_store
from dit_lens.testing import ROWS


def flux(batch=2):
    return ROWS["flux"].build(batch)

PROMPTS = ["a red circle on a blue background", "a green square on a white background",
           "a blue ring on a yellow background"]
STEPS = 4


@pytest.fixture(scope="module")
def tiny_lens():
    return Lens("tiny")


def _live(lens, ds, samples, name, cfg="cond"):
    """The same batch through the lens in one run: values per step, and images."""
    prompts = [str(ds.prompt.values[i]) for i in samples]
    gens = [torch.Generator().manual_seed(int(ds.seed.values[i])) for i in samples]
    return lens.generate(prompts, num_inference_steps=STEPS, generator=gens, cache=name, cache_cfg=cfg)


def test_round_trip_bit_exact(tiny_lens, tmp_path):
    url = str(tmp_path / "s.zarr")
    record(tiny_lens, url, PROMPTS, seeds=[0, 1], names="*.*.*.resid_post", num_inference_steps=STEPS,
           batch_size=3, progress=False)
    ds = open_store(url)
    assert ds.sizes["sample"] == 6 and bool(ds.complete.all())
    g = _live(tiny_lens, ds, [0, 1, 2], "*.*.*.resid_post")
    for name in tiny_lens.names("*.*.*.resid_post"):
        stored = ds.dit.sel(name).isel(sample=slice(0, 3)).values
        for s in range(STEPS):
            assert np.array_equal(stored[:, s], g.cache[name, s].numpy()), (name, s)
    assert np.array_equal(ds.image.values[:3], np.asarray(g.images))
    # plain xarray opens it too, with the schema's coordinates
    raw = xr.open_zarr(url, consolidated=False)
    assert list(raw["img.resid_post"].dims) == ["sample", "step", "layer", "img_token", "channel"]
    assert raw.attrs["config_hash"] and raw.attrs["dit_lens_schema"] == 1
    assert list(raw.depth.values) == list(range(6))
    assert raw.token_row.values.max() == 15 and raw.token_col.values.max() == 15
    assert ds.timestep.isel(sample=0).values.tolist() == pytest.approx(g.timesteps)
    grid = ds.dit.grid(ds.dit.sel("single.3.img.resid_post"))
    assert grid.sizes["token_row"] == 16 and grid.sizes["token_col"] == 16
    # stats from the writer equal stats of the stored values
    stats = ds["img.resid_post.stats"].sel(layer="single.0", stat="max_abs").isel(sample=0, step=1).values
    assert np.array_equal(stats, np.abs(ds.dit.sel("single.0.img.resid_post").isel(sample=0, step=1).values)
                          .max(0))
    # whole-store per-channel reduction with Dask (threads) equals numpy on the values in RAM, median exactly
    from dit_lens.reduce import channel_reduce

    r = channel_reduce(url, "single.3.img.resid_post")
    x = np.abs(ds.dit.sel("single.3.img.resid_post").values).reshape(-1, ds.sizes["channel"])
    assert np.array_equal(r.median_abs.values, np.sort(x, 0)[(x.shape[0] - 1) // 2])
    assert np.array_equal(r.max_abs.values, x.max(0))
    np.testing.assert_allclose(r.mean_abs.values, x.astype(np.float64).mean(0), rtol=1e-6)


def test_stats_only_matches_full(tiny_lens, tmp_path):
    full, stats = str(tmp_path / "f.zarr"), str(tmp_path / "st.zarr")
    kw = dict(seeds=[3], names="double.*.img.resid_post", num_inference_steps=STEPS, batch_size=3, progress=False)
    record(tiny_lens, full, PROMPTS, **kw)
    record(tiny_lens, stats, PROMPTS, stats_only=True, **kw)
    f, s = open_store(full), open_store(stats)
    assert "img.resid_post" not in s and s.attrs["mode"] == "stats"
    x = torch.from_numpy(f.dit.sel("double.1.img.resid_post").isel(step=2).values)
    expect = channel_stats(x).numpy()  # (4, samples, channels)
    for k, stat in enumerate(("mean_abs", "max_abs", "rms", "median_abs")):
        got = s.dit.sel("double.1.img.resid_post", stat=stat).isel(step=2).values
        np.testing.assert_array_equal(got, expect[k])
    assert f.dit.topk("double.1.img.resid_post", 3) == s.dit.topk("double.1.img.resid_post", 3)
    with pytest.raises(KeyError, match="not in this store"):
        s.dit.sel("double.1.img.resid_post")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_statistics_reduced_on_a_gpu_equal_the_stored_values(tmp_path):
    lens = Lens("tiny")
    lens.pipeline.to("cuda")
    url = str(tmp_path / "gpu.zarr")
    record(lens, url, PROMPTS, names="*.*.img.resid_post", num_inference_steps=3, batch_size=2, progress=False)
    raw = xr.open_zarr(url, consolidated=False)
    a = np.abs(raw["img.resid_post"].values.astype(np.float64))  # sample, step, layer, token, channel
    st = raw["img.resid_post.stats"].values  # sample, step, layer, stat, channel
    lower = np.sort(a, axis=3)[:, :, :, (a.shape[3] - 1) // 2]
    assert bool(raw.complete.all())
    np.testing.assert_array_equal(st[:, :, :, 1], a.max(3).astype(np.float32))
    np.testing.assert_array_equal(st[:, :, :, 3], lower.astype(np.float32))
    np.testing.assert_allclose(st[:, :, :, 0], a.mean(3), rtol=1e-5)
    np.testing.assert_allclose(st[:, :, :, 2], np.sqrt((a ** 2).mean(3)), rtol=1e-5)


@pytest.mark.parametrize("tokens", [255, 256, 513, 700, 1024, 1025])  # 513-1024: two sorted halves
def test_channel_stats_equal_numpy_with_massive_and_nonfinite_values(tokens):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, tokens, 40, generator=g) * 3
    h[..., :2] *= 1e5  # massive channels, beyond float16
    h[1, 7, 5], h[2, 9, 6], h[0, 3, 7] = float("inf"), float("nan"), -float("inf")
    h[0, :, 8], h[1, : tokens // 2 + 3, 9] = 0.0, -7.0  # a zero channel, a channel whose median is a tie
    scratch: dict = {}
    # the scratch buffer is reused across calls and dtypes; _device_stats is the path a device value takes
    for x, stats in [(x, fn) for x in (h, h.to(torch.bfloat16), h * 2)
                     for fn in (lambda v: channel_stats(v, scratch), lambda v: _device_stats(v)[0])]:
        got = stats(x).numpy()
        a = np.abs(x.float().numpy())
        with np.errstate(invalid="ignore", over="ignore"):
            expect = [a.mean(1), a.max(1), np.sqrt((a.astype(np.float64) ** 2).mean(1)),
                      np.sort(a, 1)[:, (tokens - 1) // 2]]
        expect[3][np.isnan(a).any(1)] = np.nan
        assert np.array_equal(got[1], expect[1], equal_nan=True)
        assert np.array_equal(got[3], expect[3], equal_nan=True)  # exact lower median, NaN where a NaN is
        np.testing.assert_allclose(got[0], expect[0], rtol=1e-5)
        np.testing.assert_allclose(got[2], expect[2], rtol=1e-5)
        assert got[1, 0, 0] > 65504 and np.isinf(got[1, 1, 5]) and np.isnan(got[3, 2, 6])
        assert _nonfinite(x, torch.from_numpy(got[1])) == 3 and int(_device_stats(x)[1]) == 3
    assert len(scratch) == 1


def test_step_stats_carry_statistics_counts_and_timestep():
    h = torch.randn(2, 9, 4)
    h[1, 2, 3] = float("nan")
    stats = {"double.0.img.resid_post": channel_stats(h), "double.1.img.resid_post": channel_stats(h * 2)}
    got, count, t = StepStats(stats, [_nonfinite(h, stats["double.0.img.resid_post"][1]), 5],
                              torch.tensor([0.75, 0.75])).get()
    assert list(got) == list(stats) and count == 6 and t == 0.75
    assert np.array_equal(got["double.1.img.resid_post"], stats["double.1.img.resid_post"].numpy(), equal_nan=True)


@pytest.mark.parametrize("group_bytes", [1, 3 * 2 * 40 * 33 * 4, 16 << 20])  # one value, three, all at a time
def test_step_reducer_equals_per_value_statistics(monkeypatch, group_bytes):
    """Host values of two shapes, reduced together (up to a buffer's worth), over two steps reusing the buffers:
    each name's statistics equal channel_stats of its value alone; the inf/nan count is the step's total."""
    monkeypatch.setattr(_stats, "_GROUP_BYTES", group_bytes)
    g = torch.Generator().manual_seed(1)
    reducer = StepReducer(max_values=5)
    for step in range(2):
        values = {f"single.{i}.img.resid_post": torch.randn(2, 33, 40, generator=g) * (i + 1) for i in range(4)}
        values["double.0.txt.resid_post"] = torch.randn(2, 7, 40, generator=g).to(torch.bfloat16)
        values["single.1.img.resid_post"][..., 3] *= 1e6
        values["single.2.img.resid_post"][1, 4, 5] = float("nan")
        values["double.0.txt.resid_post"][0, 1, 2] = float("inf")
        for name, h in values.items():
            reducer.add(name, h)
        got, count, t = reducer.finish(torch.tensor([0.5 - step / 4])).get()
        assert list(got) == list(values) and count == 2 and t == 0.5 - step / 4
        for name, h in values.items():
            assert np.array_equal(got[name], channel_stats(h).numpy(), equal_nan=True), (name, step)
    assert len(reducer._buffers) == 2 and not reducer._pending


def test_embeddings_for_every_sample_are_cut_per_batch(tmp_path):
    pipe, kw = flux(batch=4)
    lens = Lens(pipe, example=dict(flux()[1], num_inference_steps=1))
    opts = dict(names="double.0.img.resid_post", num_inference_steps=2, progress=False)
    whole, half = str(tmp_path / "whole.zarr"), str(tmp_path / "half.zarr")
    record(lens, whole, list("abcd"), batch_size=2, **opts, **kw)  # one row per sample: batches cut from them
    rows = {k: v[2:] if k.endswith("embeds") else v for k, v in kw.items()}
    record(lens, half, list("abcd"), samples=[], **opts, **rows)
    record(lens, half, list("abcd"), samples=[2, 3], resume=True, **opts, **rows)  # exactly one batch's rows
    a, b = (open_store(u).dit.sel("double.0.img.resid_post").values for u in (whole, half))
    assert np.array_equal(a[2:], b[2:]) and not np.array_equal(a[:2], a[2:])
    described = json.loads(open_store(whole).attrs["pipeline_kwargs"])  # provenance: shape, dtype, content hash
    assert described["prompt_embeds"].startswith("Tensor(4, 6, 32) torch.float32 sha256:")
    assert described["prompt_embeds"] != json.loads(open_store(half).attrs["pipeline_kwargs"])["prompt_embeds"]
    bad = {k: v[:3] if k.endswith("embeds") else v for k, v in kw.items()}
    with pytest.raises(ValueError, match="one row per sample of the store"):
        record(lens, str(tmp_path / "bad.zarr"), list("abcd"), batch_size=2, **opts, **bad)
    assert not (tmp_path / "bad.zarr").exists()  # refused before the store was created


def test_values_above_float16_range_survive_and_bf16_is_exact(tmp_path):
    pipe, kw = flux()
    with torch.no_grad():  # a massive channel: +2e5 on channel 0 of every image token, carried by the residual
        pipe.transformer.x_embedder.bias[0] = 2e5
    lens = Lens(pipe, example=dict(kw, num_inference_steps=1))
    url = str(tmp_path / "big.zarr")
    record(lens, url, ["x", "y"], names="double.0.img.resid_post", num_inference_steps=2, progress=False,
           **{k: v for k, v in kw.items()})
    ds = open_store(url)
    stored = ds.dit.sel("double.0.img.resid_post").values
    assert np.abs(stored).max() > 65504
    g = lens.generate(num_inference_steps=2, generator=[torch.Generator().manual_seed(0) for _ in range(2)],
                      cache="double.0.img.resid_post", **kw)
    assert np.array_equal(stored[:, 1], g.cache["double.0.img.resid_post", 1].numpy())
    # bfloat16 models are stored as raw 16-bit words and decode exactly
    pipe.transformer.to(torch.bfloat16)
    kw16 = {k: (v.to(torch.bfloat16) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
            for k, v in kw.items()}
    lens16 = Lens(pipe, example=dict(kw16, num_inference_steps=1))
    url16 = str(tmp_path / "bf16.zarr")
    record(lens16, url16, ["x", "y"], names="double.0.img.resid_post", num_inference_steps=2, progress=False, **kw16)
    ds16 = open_store(url16)
    assert ds16.attrs["encoding"] == "bfloat16-bits"
    assert xr.open_zarr(url16, consolidated=False)["img.resid_post"].dtype == np.uint16
    g16 = lens16.generate(num_inference_steps=2, generator=[torch.Generator().manual_seed(0) for _ in range(2)],
                          cache="double.0.img.resid_post", **kw16)
    live = g16.cache["double.0.img.resid_post", 1].float().numpy()
    assert np.array_equal(ds16.dit.sel("double.0.img.resid_post").values[:, 1], live)
    assert np.abs(live).max() > 65504
    from dit_lens.reduce import channel_reduce

    r = channel_reduce(url16, "double.0.img.resid_post")
    x = np.abs(ds16.dit.sel("double.0.img.resid_post").values).reshape(-1, 32)
    assert np.array_equal(r.median_abs.values, np.sort(x, 0)[(x.shape[0] - 1) // 2])
    assert r.max_abs.values[0] > 65504


_CHILD = textwrap.dedent("""
    import sys
    from dit_lens import Lens
    from dit_lens.record import record
    prompts = [f"a {c} circle on a blue background" for c in ("red", "green", "white", "black", "yellow", "orange")]
    record(Lens("tiny"), sys.argv[1], prompts, seeds=[0], names="*.*.img.resid_post", num_inference_steps=6,
           batch_size=1, progress=False, resume=len(sys.argv) > 2)
""")


def test_template_is_metadata_in_the_schemas_chunks(tmp_path):
    import zarr

    layers = [f"double.{i}" for i in range(3)] + [f"single.{i}" for i in range(4)]
    names = [f"{x}.img.resid_post" for x in layers] + [f"{x}.txt.resid_post" for x in layers[:3]]
    layout = Layout(prompts=[f"p{i}" for i in range(5)], seeds=[0] * 5, steps=4, step_index=[0, 1, 2, 3],
                    layers=layers, depth=list(range(7)), names=names, tokens={"img": 64, "txt": 7}, channels=32,
                    grid=[8, 8], encoding="bfloat16-bits", layers_per_chunk=2)
    url = tmp_path / "t.zarr"
    create(str(url), layout)
    g = zarr.open_group(str(url), mode="r")
    want = {"img.resid_post": (1, 1, 2, 64, 32), "txt.resid_post": (1, 1, 2, 7, 32),
            "img.resid_post.stats": (1, 4, 7, 4, 32), "txt.resid_post.stats": (1, 4, 7, 4, 32),
            "complete": (1, 4), "nonfinite": (1, 4), "timestep": (1, 4)}
    for var, chunks in want.items():
        assert g[var].chunks == chunks, var
        assert not (url / var / "c").exists(), var  # nothing but metadata until a writer stores a unit
    assert g["img.resid_post"].shape == (5, 4, 7, 64, 32) and g["img.resid_post"].dtype == np.uint16
    assert g["complete"].fill_value == False and np.isnan(g["timestep"].fill_value)  # noqa: E712


class _LocalViaZarr(LocalStore):
    """A local store written through zarr's own store calls (dit-lens writes only LocalStore itself directly)."""


@pytest.mark.parametrize("threads", [1, 3])  # chunks encoded, and files written, on the caller's threads or a pool's
@pytest.mark.parametrize("direct", [True, False], ids=["files", "zarr-store-calls"])
def test_direct_chunk_writes_are_the_chunks_zarr_writes(tmp_path, direct, threads):
    from concurrent.futures import ThreadPoolExecutor

    import zarr

    from dit_lens.store._chunks import chunk_writer
    from dit_lens.store.schema import compressors

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 5, 16, 8)) * 3e5).astype(np.float32)  # beyond float16's range
    x[0, 0, 0, :2] = [np.inf, np.nan]
    store = lambda name: str(tmp_path / name) if direct else _LocalViaZarr(tmp_path / name)
    make = lambda name, **kw: zarr.create_array(store(name), shape=x.shape, chunks=(1, 2, 16, 8),
                                                 dtype="float32", fill_value=np.nan, **kw)
    ref, arr = make("ref.zarr", compressors=compressors()), make("direct.zarr", compressors=compressors())
    ref[:] = x
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    w = chunk_writer(arr, pool=pool)  # stores at most 8 chunks per request round: these 9 take two
    assert (w._root is not None) == direct
    w.write_many([((s, g, 0, 0), x[s:s + 1, 2 * g:2 * g + 2])  # the last layer group is an edge chunk of one layer
                  for s in range(3) for g in range(3)])
    w.close()
    np.testing.assert_array_equal(arr[:], x)
    files = sorted(p.relative_to(tmp_path / "ref.zarr") for p in (tmp_path / "ref.zarr").rglob("c/*/*/*/*"))
    assert len(files) == 9
    for f in files:
        assert (tmp_path / "ref.zarr" / f).read_bytes() == (tmp_path / "direct.zarr" / f).read_bytes(), f
    with pytest.raises(ValueError, match="does not fit its chunks"):
        w.write_many([((0, 0, 0, 0), x[:2, :2])])
    w = chunk_writer(make("checked.zarr", compressors=compressors()))
    good = [((s, g, 0, 0), x[s:s + 1, 2 * g:2 * g + 2]) for s in range(3) for g in range(3)]  # two rounds' worth
    with pytest.raises(ValueError, match="does not fit its chunks"):  # a bad block: none of the call is written
        w.write_many(good + [((0, 0, 0, 0), x[:2, :2])])
    w.close()
    assert not list((tmp_path / "checked.zarr").rglob("c/*/*/*/*"))
    assert chunk_writer(make("zstd.zarr", compressors=[zarr.codecs.ZstdCodec()])) is None
    assert not list(tmp_path.rglob("*.partial"))
    if pool is not None:
        pool.shutdown()


@pytest.mark.parametrize("threads", [1, 3])  # files written by the I/O thread, or by a pool's threads at once
def test_a_chunk_file_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch, threads):
    from concurrent.futures import ThreadPoolExecutor

    import zarr

    from dit_lens.store import _chunks, _files
    from dit_lens.store.schema import compressors

    arr = zarr.create_array(str(tmp_path / "a.zarr"), shape=(2, 4), chunks=(1, 4), dtype="float32",
                            fill_value=np.nan, compressors=compressors())
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    w = _chunks.chunk_writer(arr, pool=pool)
    w.write_many([((s, 0), np.arange(4, dtype=np.float32)[None] + s) for s in range(2)])
    w.wait()
    before = [(tmp_path / "a.zarr" / "c" / str(s) / "0").read_bytes() for s in range(2)]

    def no_rename(src, dst):  # the process dies between writing the temporary file and the rename
        raise OSError("Input/output error")

    monkeypatch.setattr(_files.os, "replace", no_rename)
    w.write_many([((s, 0), np.full((1, 4), 7, np.float32)) for s in range(2)])
    with pytest.raises(OSError, match="Input/output error"):
        w.wait()
    w.close(abandon=True)
    for s in range(2):  # the old chunks, whole
        assert (tmp_path / "a.zarr" / "c" / str(s) / "0").read_bytes() == before[s]
    assert not list(tmp_path.rglob("*.partial"))  # and no temporary file left beside them
    np.testing.assert_array_equal(arr[:], np.arange(4) + np.arange(2)[:, None])
    if pool is not None:
        pool.shutdown()


def test_images_are_stored_as_the_run_made_them():
    from PIL import Image

    from dit_lens.store import uint8_images as _uint8_images

    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (2, 8, 6, 3), dtype=np.uint8)
    assert np.array_equal(_uint8_images([Image.fromarray(a) for a in u8]), u8)
    assert np.array_equal(_uint8_images(u8 / 255.0), u8)  # output_type="np": floats in [0, 1]
    assert np.array_equal(_uint8_images(torch.from_numpy(u8 / 255.0).permute(0, 3, 1, 2)), u8)  # "pt"
    assert _uint8_images(np.zeros((2, 4, 8, 8), np.float32)) is None  # latents: no image variable
    with pytest.warns(RuntimeWarning, match="outside"):
        assert _uint8_images(u8 / 127.5 - 1.0) is None


def test_a_failed_chunk_write_stops_the_recording_and_flags_nothing_it_lost(tiny_lens, tmp_path, monkeypatch):
    from dit_lens.store import _chunks

    put, calls = _chunks.ChunkWriter._put_many, []

    def failing(self, keys, datas):
        calls.extend(keys)
        if "img.resid_post/c/1/1/0/0/0" in keys:  # sample 1, step 1 (one chunk per step holds all six layers)
            raise OSError("No space left on device")
        return put(self, keys, datas)

    monkeypatch.setattr(_chunks.ChunkWriter, "_put_many", failing)
    url = str(tmp_path / "full.zarr")
    with pytest.raises(StoreError, match="No space left"):
        record(tiny_lens, url, PROMPTS[:2], names="*.*.img.resid_post", num_inference_steps=3, batch_size=1,
               progress=False)
    flags = open_group(url)["complete"][:]
    assert "img.resid_post/c/1/1/0/0/0" in calls and flags[0].all() and not flags[1].any()


def test_sigkill_leaves_complete_units_exact_and_resume_finishes(tiny_lens, tmp_path):
    url, ref = str(tmp_path / "k.zarr"), str(tmp_path / "ref.zarr")
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    proc = subprocess.Popen([sys.executable, str(script), url])
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.2)
        try:
            done = int(np.asarray(open_group(url, mode="r")["complete"][:]).sum())
        except Exception:  # noqa: BLE001 - not created yet
            done = 0
        if done >= 8:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed = open_store(url)
    flags = killed.complete.values
    assert 8 <= flags.sum() < flags.size, "the kill should land mid-recording"
    subprocess.run([sys.executable, str(script), ref], check=True)
    reference = open_store(ref)
    a = killed["img.resid_post"].values
    b = reference["img.resid_post"].values
    assert np.array_equal(a[flags], b[flags])  # every flagged unit is bit-exact
    assert np.isnan(a[~flags]).all()  # unflagged units are hidden
    assert os.listdir(url + ".claims")  # the killed writer's claims stay ...
    subprocess.run([sys.executable, str(script), url, "--resume"], check=True)  # ... and its pid is gone: taken over
    assert not os.path.exists(url + ".claims")
    resumed = open_store(url)
    assert bool(resumed.complete.all())
    assert np.array_equal(resumed["img.resid_post"].values, b)
    assert np.array_equal(resumed.image.values, reference.image.values)


def test_resume_reruns_a_partly_complete_batch_whole_and_writes_only_its_missing_samples(tiny_lens, tmp_path):
    """CPU kernels round by batch composition: a resumed sample runs in its own batch again, so the resumed store
    equals an uninterrupted recording bit for bit; the batch's complete samples are recomputed, not rewritten."""
    kw = dict(names="double.*.img.resid_post", num_inference_steps=3, batch_size=2, progress=False)
    ref, url, alone = (str(tmp_path / f) for f in ("ref.zarr", "r.zarr", "alone.zarr"))
    record(tiny_lens, ref, PROMPTS[:2], seeds=(0, 1), **kw)
    record(tiny_lens, url, PROMPTS[:2], seeds=(0, 1), **kw)
    open_group(url, mode="r+")["complete"][3] = False  # a crash between the flags of samples 2 and 3

    def stamps(sample):
        where = os.path.join(url, "img.resid_post", "c", str(sample))
        return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns for d, _, fs in os.walk(where) for f in fs}
    before = stamps(2), stamps(3)
    record(tiny_lens, url, PROMPTS[:2], seeds=(0, 1), resume=True, **kw)
    got, want = open_store(url), open_store(ref)
    assert bool(got.complete.all())
    for var in ("img.resid_post", "img.resid_post.stats", "image", "timestep"):
        assert np.array_equal(got[var].values, want[var].values), var
    assert stamps(2) == before[0] and stamps(3) != before[1]  # 2 recomputed, not rewritten; 3 rewritten
    record(tiny_lens, alone, PROMPTS[:2], seeds=(0, 1), samples=[3], **kw)  # sample 3 in a batch of its own ...
    solo = open_store(alone)["img.resid_post"].values[3]
    assert not np.array_equal(solo, want["img.resid_post"].values[3])  # ... rounds otherwise


def test_uncompressed_values_are_the_same_values_and_a_resume_keeps_the_stores_codec(tiny_lens, tmp_path):
    from zarr.codecs import BloscCodec

    from dit_lens.errors import ArgumentError
    from dit_lens.store import verify

    kw = dict(names="double.*.img.resid_post", num_inference_steps=2, batch_size=2, progress=False)
    ref, url = str(tmp_path / "lz4.zarr"), str(tmp_path / "none.zarr")
    record(tiny_lens, ref, PROMPTS[:2], **kw)
    record(tiny_lens, url, PROMPTS[:2], compression="none", **kw)
    open_group(url, mode="r+")["complete"][1] = False  # sample 1 left to resume
    blosc = lambda u, var: next(c for c in open_group(u)[var].metadata.codecs if isinstance(c, BloscCodec))
    assert blosc(url, "img.resid_post").clevel == 0 and blosc(ref, "img.resid_post").clevel == 5
    assert blosc(url, "img.resid_post.stats").clevel == 5  # statistics and flags keep the default
    with pytest.raises(StoreError, match="compression: 'none' in the store, 'lz4' now"):
        record(tiny_lens, url, PROMPTS[:2], resume=True, compression="lz4", **kw)
    record(tiny_lens, url, PROMPTS[:2], resume=True, **kw)  # None: the store's own
    assert blosc(url, "img.resid_post").clevel == 0 and verify(url) == []
    got, want = xr.open_zarr(url, consolidated=False), open_store(ref)  # plain xarray reads it
    assert bool(got.complete.all())
    assert np.array_equal(got["img.resid_post"].values, want["img.resid_post"].values)
    data = lambda u: sum(f.stat().st_size for f in (Path(u) / "img.resid_post" / "c").rglob("*") if f.is_file())
    assert data(url) > data(ref)  # stored uncompressed: more bytes
    with pytest.raises(ArgumentError, match="compression='zstd': one of"):  # before anything is written
        record(tiny_lens, str(tmp_path / "bad.zarr"), PROMPTS[:2], compression="zstd", **kw)
    assert not (tmp_path / "bad.zarr").exists()
    with pytest.raises(ArgumentError, match="stats-only store does not hold"):
        record(tiny_lens, str(tmp_path / "bad.zarr"), PROMPTS[:2], compression="none", stats_only=True, **kw)


def test_write_threads_write_the_same_store_byte_for_byte(tiny_lens, tmp_path):
    """Chunks encoded and files written by a pool of threads: every chunk file the same bytes as one thread's; a
    bad count is refused before anything is written."""
    from dit_lens.errors import ArgumentError

    kw = dict(names="*.*.img.resid_post", num_inference_steps=2, batch_size=2, progress=False)
    one, three = tmp_path / "one.zarr", tmp_path / "three.zarr"
    record(tiny_lens, str(one), PROMPTS[:2], write_threads=1, **kw)
    record(tiny_lens, str(three), PROMPTS[:2], write_threads=3, **kw)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file() and "/c/" in f"/{p.relative_to(one)}")
    assert len(files) > 4 and files == sorted(p.relative_to(three) for p in three.rglob("*")
                                              if p.is_file() and "/c/" in f"/{p.relative_to(three)}")
    for f in files:
        assert (one / f).read_bytes() == (three / f).read_bytes(), f
    assert not list(three.rglob("*.partial"))
    for bad in (0, 1.5, "many"):
        with pytest.raises(ArgumentError, match=f"write_threads={bad!r}: expected a whole number >= 1"):
            record(tiny_lens, str(tmp_path / "bad.zarr"), PROMPTS[:2], write_threads=bad, **kw)
    assert not (tmp_path / "bad.zarr").exists()


def test_resume_refuses_another_model_and_overlap_is_refused(tiny_lens, tmp_path):
    url = str(tmp_path / "r.zarr")
    kw = dict(seeds=[0], names="double.0.img.resid_post", num_inference_steps=2, progress=False)
    record(tiny_lens, url, PROMPTS, samples=[0], **kw)
    pipe, fkw = flux()
    other = Lens(pipe, example=dict(fkw, num_inference_steps=1))
    with pytest.raises(StoreError, match="differs|another model"):
        record(other, url, PROMPTS, resume=True, **kw)
    with pytest.raises(StoreError, match="already exists"):
        record(tiny_lens, url, PROMPTS, **kw)
    # a live claim on sample 1 refuses a second writer of sample 1 but not of sample 2
    import fsspec

    fs = fsspec.filesystem("file")
    fs.makedirs(url + ".claims", exist_ok=True)
    fs.pipe(url + ".claims/sample-1", b"{}")
    from dit_lens.store._claims import claim

    with pytest.raises(StoreError, match="claimed by another writer"):
        claim(url, [1])
    held = claim(url, [2])
    assert held.paths
    held.release()


def test_schema_version_mismatch_and_missing_store(tmp_path, tiny_lens):
    with pytest.raises(StoreError, match="no dit-lens store|cannot open"):
        open_store(str(tmp_path / "nothing.zarr"))
    url = str(tmp_path / "v.zarr")
    record(tiny_lens, url, PROMPTS[:1], names="double.0.img.resid_post", num_inference_steps=2, progress=False)
    g = open_group(url)
    g.attrs["dit_lens_schema"] = 99
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(url)


def test_bad_record_arguments_fail_before_running(tiny_lens, tmp_path):
    url = str(tmp_path / "b.zarr")
    with pytest.raises(KeyError, match="closest match"):
        record(tiny_lens, url, PROMPTS, names="double.5.img.resid_post", num_inference_steps=2)
    with pytest.raises(IndexError, match="steps"):
        record(tiny_lens, url, PROMPTS, num_inference_steps=2, steps=[3])
    with pytest.raises(ValueError, match="num_inference_steps is required"):
        record(tiny_lens, url, PROMPTS)
    assert not os.path.exists(url)


@pytest.fixture(scope="module")
def s3():
    """A real S3-protocol server (moto) on loopback, with one bucket."""
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                 region_name="us-east-1").create_bucket(Bucket="acts")
    yield {"key": "k", "secret": "s", "endpoint_url": endpoint, "client_kwargs": {"region_name": "us-east-1"},
           "config_kwargs": {"request_checksum_calculation": "when_required",
                             "response_checksum_validation": "when_required"}}
    server.stop()


def test_s3_round_trip(tiny_lens, tmp_path, s3):
    kw = dict(seeds=[0], names="double.*.img.resid_post", num_inference_steps=STEPS, batch_size=3, progress=False)
    record(tiny_lens, "s3://acts/run.zarr", PROMPTS, storage_options=s3, **kw)
    local = str(tmp_path / "l.zarr")
    record(tiny_lens, local, PROMPTS, **kw)
    remote = open_store("s3://acts/run.zarr", **s3)
    assert bool(remote.complete.all())
    assert np.array_equal(remote["img.resid_post"].values, open_store(local)["img.resid_post"].values)
    assert np.array_equal(remote.image.values, open_store(local).image.values)
    with pytest.raises(StoreError):
        open_store("s3://acts/absent.zarr", **s3)


def test_two_distributed_workers_write_one_store(tmp_path):
    from distributed import Client, LocalCluster

    from dit_lens import record_distributed

    url, ref = str(tmp_path / "d.zarr"), str(tmp_path / "dref.zarr")
    kw = dict(names="single.3.img.resid_post", num_inference_steps=3, batch_size=3)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        record_distributed("tiny", url, PROMPTS, seeds=[0, 1], client=client, **kw)
        from dit_lens.reduce import channel_reduce

        by_address = channel_reduce(url, "single.3.img.resid_post", scheduler=cluster.scheduler_address)
    assert by_address.equals(channel_reduce(url, "single.3.img.resid_post"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the one-thread workers: the thread count changes float reduction order
    try:
        record(Lens("tiny"), ref, PROMPTS, seeds=[0, 1], progress=False, **kw)
    finally:
        torch.set_num_threads(threads)
    a, b = open_store(url), open_store(ref)
    assert bool(a.complete.all())
    # the workers batch samples [0, 1, 2] and [3, 4, 5] exactly as the reference run does (batch composition
    # and thread count change float rounding, so equal batches and threads make bit-equality the right check)
    assert np.array_equal(a["img.resid_post"].values, b["img.resid_post"].values)


def test_cli_record_and_info(tmp_path, capsys):
    import json

    from dit_lens.cli import main

    url = str(tmp_path / "cli.zarr")
    assert main(["record", url, "--prompts", *PROMPTS[:2], "--seeds", "0", "1", "--num-inference-steps", "3",
                 "--names", "double.*.img.resid_post", "--stats-only", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["info", url, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["mode"] == "stats" and info["samples"] == 4 and info["complete_units"] == info["total_units"] == 12
    assert info["names"] == ["double.0.img.resid_post", "double.1.img.resid_post"]
    assert info["compression"] is None  # a stats-only store holds no values to compress
    full = str(tmp_path / "full.zarr")
    assert main(["record", full, "--prompts", PROMPTS[0], "--num-inference-steps", "2", "--names",
                 "double.0.img.resid_post", "--compression", "none"]) == 0
    capsys.readouterr()
    assert main(["info", full, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["compression"] == "none"
    assert main(["record", url, "--prompts", "x", "--num-inference-steps", "3"]) == 2  # exists: a clear error
    assert "already exists" in capsys.readouterr().err
    assert main(["record", str(tmp_path / "nowhere.zarr"), "--prompts", "x", "--device", "nodevice"]) == 2
    assert "nodevice" in capsys.readouterr().err and not (tmp_path / "nowhere.zarr").exists()
    if not torch.cuda.is_available():
        assert main(["record", str(tmp_path / "nowhere.zarr"), "--prompts", "x", "--device", "cuda"]) == 2
        assert "sees no CUDA device" in capsys.readouterr().err


def test_unreachable_url_is_a_clear_error():
    opts = {"key": "k", "secret": "s", "endpoint_url": "http://127.0.0.1:9", "client_kwargs": {"region_name": "x"},
            "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}
    with pytest.raises(StoreError, match="cannot open|no dit-lens store"):
        open_store("s3://nowhere/x.zarr", **opts)
    layout = Layout(prompts=["p"], seeds=[0], steps=1, step_index=[0], layers=["double.0"], depth=[0],
                    names=["double.0.img.resid_post"], tokens={"img": 4}, channels=2, grid=[2, 2])
    with pytest.raises(StoreError, match="cannot create a store at s3://nowhere/x.zarr"):
        create("s3://nowhere/x.zarr", layout, opts)


def test_nonfinite_values_are_reported_not_hidden(tmp_path):
    pipe, kw = flux()
    with torch.no_grad():
        pipe.transformer.x_embedder.bias[3] = float("inf")
    lens = Lens(pipe, example=dict(kw, num_inference_steps=1))
    url = str(tmp_path / "inf.zarr")
    with pytest.warns(RuntimeWarning, match="non-finite values recorded"):
        record(lens, url, ["x", "y"], names="double.0.img.resid_post", num_inference_steps=2, progress=False, **kw)
    ds = open_store(url)
    assert int(ds.nonfinite.sum()) > 0
    assert bool(ds.complete.all())  # written and flagged: NaN here is the model's output, not a missing unit
    assert not np.isfinite(ds.dit.sel("double.0.img.resid_post").values).all()


def test_corrupt_chunk_is_reported_and_the_rest_stays_readable(tiny_lens, tmp_path, capsys):
    from pathlib import Path

    from dit_lens.cli import main
    from dit_lens.store import verify

    url = str(tmp_path / "c.zarr")
    record(tiny_lens, url, PROMPTS[:2], names="double.0.img.resid_post", num_inference_steps=2, progress=False)
    assert verify(url) == []
    chunk = Path(url) / "img.resid_post" / "c" / "1" / "0" / "0" / "0" / "0"
    assert chunk.exists()
    chunk.write_bytes(b"not a blosc frame")
    bad = verify(url)
    assert [(b["variable"], b["sample"], b["step"]) for b in bad] == [("img.resid_post", 1, 0)]
    ds = open_store(url)
    assert np.isfinite(ds["img.resid_post"].isel(sample=0).values).all()  # other units read fine
    assert main(["info", url, "--verify"]) == 1
    assert "1 bad chunks" in capsys.readouterr().out


def test_resume_refuses_a_different_run_and_lists_the_differences(tiny_lens, tmp_path):
    import dit_lens

    url = str(tmp_path / "run.zarr")
    kw = dict(seeds=[0], names="double.0.img.resid_post", progress=False)
    record(tiny_lens, url, PROMPTS, samples=[0], num_inference_steps=3, steps=[0, 1], **kw)
    with pytest.raises(StoreError, match="pipeline argument guidance_scale: None in the store, 7.0 now"):
        record(tiny_lens, url, PROMPTS, resume=True, num_inference_steps=3, steps=[0, 1], guidance_scale=7.0, **kw)
    with pytest.raises(StoreError, match="num_inference_steps: 3 in the store, 4 now"):
        record(tiny_lens, url, PROMPTS, resume=True, num_inference_steps=4, steps=[0, 1], **kw)
    random = Lens(dit_lens.tiny_pipeline(None))  # the same config, other weights: trained and random samples
    assert random.config_hash == tiny_lens.config_hash
    with pytest.raises(StoreError, match=r"weights \(hash\)"):
        record(random, url, PROMPTS, resume=True, num_inference_steps=3, steps=[0, 1], **kw)
    record(tiny_lens, url, PROMPTS, resume=True, num_inference_steps=3, steps=[0, 1], **kw)  # the same run resumes
    assert bool(open_store(url).complete.all())


def test_a_refused_or_failed_writer_leaves_no_claims(tiny_lens, tmp_path, monkeypatch):
    url = str(tmp_path / "c.zarr")
    kw = dict(seeds=[0], names="double.0.img.resid_post", num_inference_steps=2, progress=False)
    record(tiny_lens, url, PROMPTS, samples=[], **kw)
    os.makedirs(url + ".claims")
    open(url + ".claims/sample-1", "w").write("{}")  # another writer holds sample 1
    with pytest.raises(StoreError, match=r"samples \[1\] .* claimed by another writer.*takeover=True"):
        record(tiny_lens, url, PROMPTS, resume=True, **kw)
    assert os.listdir(url + ".claims") == ["sample-1"]  # nothing claimed for samples 0 and 2, no lease file
    os.remove(url + ".claims/sample-1")
    from dit_lens.store import writer as store_writer

    monkeypatch.setattr(store_writer.StoreWriter, "flush", lambda self, samples: (_ for _ in ()).throw(
        OSError("disk full")))
    with pytest.raises(StoreError, match="disk full"):
        record(tiny_lens, url, PROMPTS, resume=True, **kw)
    assert not os.path.exists(url + ".claims")  # a clean failure releases its claims: resume needs no takeover


def test_verify_names_flipped_truncated_and_deleted_chunks_without_crashing(tiny_lens, tmp_path, capsys):
    from pathlib import Path

    from dit_lens import channel_reduce
    from dit_lens.cli import main
    from dit_lens.store import verify

    url = str(tmp_path / "v.zarr")
    record(tiny_lens, url, PROMPTS, names="double.*.img.resid_post", num_inference_steps=3, progress=False)
    assert verify(url) == []
    good = open_store(url)["img.resid_post"].values
    data = Path(url) / "img.resid_post" / "c"
    flipped, truncated, deleted = data / "0/1/0/0/0", data / "1/2/0/0/0", data / "2/0/0/0/0"
    raw = bytearray(flipped.read_bytes())
    raw[len(raw) // 2] ^= 0x10  # one bit inside the compressed data
    flipped.write_bytes(bytes(raw))
    truncated.write_bytes(truncated.read_bytes()[: len(truncated.read_bytes()) // 2])
    deleted.unlink()
    bad = {(b["chunk"], b["problem"]) for b in verify(url)}
    assert bad == {("img.resid_post/c/0/1/0/0/0", "checksum"), ("img.resid_post/c/1/2/0/0/0", "checksum"),
                   ("img.resid_post/c/2/0/0/0/0", "missing")}
    assert main(["info", url, "--verify"]) == 1
    out = capsys.readouterr().out
    assert "3 bad chunks" in out and "img.resid_post/c/2/0/0/0/0 (sample 2, step 0): missing" in out
    with pytest.raises(StoreError, match=r"img.resid_post/c/0/1/0/0/0 \(checksum\)"):
        channel_reduce(url, "double.0.img.resid_post")
    with pytest.raises(StoreError, match=r"chunk img.resid_post/c/1/2/0/0/0 of .*: checksum"):
        open_store(url)["img.resid_post"].isel(sample=1).values  # a reader names the chunk it cannot read
    with pytest.warns(UserWarning, match="3 bad chunks read as missing"):
        masked = open_store(url, bad_chunks="mask")
    values = masked["img.resid_post"].values  # reads around the bad chunks: no error
    units = {(int(s), int(t)) for s, t in zip(*np.nonzero(np.isnan(values).all(axis=(2, 3, 4))))}
    assert units == {(0, 1), (1, 2), (2, 0)}  # exactly the bad chunks' units are masked
    assert np.array_equal(values[0, 0], good[0, 0]) and np.array_equal(values[2, 1], good[2, 1])
    assert len(masked.attrs["bad_chunks"]) == 3
    flags = Path(url) / "complete" / "c" / "1" / "0"
    flags.write_bytes(flags.read_bytes()[:-1] + b"\0")  # a flag row that is bad vouches for nothing
    bad = {(b["chunk"], b["problem"]) for b in verify(url)}
    assert ("complete/c/1/0", "checksum") in bad and ("img.resid_post/c/1/2/0/0/0", "checksum") not in bad


def test_verify_reads_no_truncated_frame_in_a_store_without_checksums(tiny_lens, tmp_path, monkeypatch):
    """Stores written before chunks carried checksums: a truncated Blosc frame is caught by its header, never
    handed to the decoder (which crashed the process on one)."""
    from pathlib import Path

    from zarr.codecs import BloscCodec

    from dit_lens.store import schema, verify

    monkeypatch.setattr(schema, "compressors", lambda: [BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")])
    url = str(tmp_path / "old.zarr")
    record(tiny_lens, url, PROMPTS[:1], names="double.0.img.resid_post", num_inference_steps=2, progress=False)
    chunk = Path(url) / "img.resid_post" / "c" / "0" / "1" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-100])
    assert [(b["chunk"], b["problem"]) for b in verify(url)] == [("img.resid_post/c/0/1/0/0/0", "truncated")]


def test_a_recording_at_another_size_than_the_validation_call_is_laid_out_for_its_own_size(tmp_path):
    """The store takes the call's token count and grid (64 x 32: 4 x 2 tokens) from its height x width, not the
    validation call's (64 x 64); a size it cannot know before the run is an error at the first step, never a
    partly filled store."""
    from dit_lens.errors import RunError
    from dit_lens.testing import lens as row_lens

    lens, kw = row_lens("flux")
    name = "double.0.img.resid_post"
    url = record(lens, str(tmp_path / "a.zarr"), ["a", "b"], names=name, num_inference_steps=2, progress=False,
                 **dict(kw, width=32))
    ds = open_store(url)
    assert ds.sizes["img_token"] == 8 and bool(ds.complete.all())
    assert list(ds.token_row.values) == [0, 0, 1, 1, 2, 2, 3, 3] and list(ds.token_col.values) == [0, 1] * 4
    live = lens.generate(num_inference_steps=2, seed=0, cache=name, **dict(kw, width=32)).cache
    assert np.array_equal(ds.dit.sel(name).isel(step=1, sample=0).values, live[name, 1][0].numpy())  # seed 0
    unknown = {k: v for k, v in kw.items() if k != "width"}  # the pipeline's default width: 256 image tokens
    with pytest.raises(RunError, match=r"256 tokens x 32 channels at step 0, but the store is laid out for 16"):
        record(lens, str(tmp_path / "b.zarr"), ["a", "b"], names=name, num_inference_steps=2, progress=False,
               **unknown)
    assert not bool(open_store(str(tmp_path / "b.zarr")).complete.any())


def test_a_chunk_holds_no_more_layers_than_the_store_and_resume_keeps_the_stores_own_chunks(tiny_lens, tmp_path,
                                                                                          monkeypatch):
    """zarr encodes a chunk at full size: 6 layers in chunks of 64 padded every write with 58 layers of fill value
    (writer CPU 1.90 s -> 0.23 s on 16 prompts x 20 steps). A store made with wider chunks is resumed with them."""
    import zarr

    from dit_lens.store import schema

    args = dict(names="*.*.img.resid_post", num_inference_steps=2, progress=False, batch_size=1)  # same batches
    url = record(tiny_lens, str(tmp_path / "new.zarr"), PROMPTS[:2], **args)
    arr = zarr.open_group(url, mode="r")["img.resid_post"]
    assert arr.chunks[2] == arr.shape[2] == 6
    # 12 layers of 1.5 MiB in ~8 MiB chunks: 3 chunks of 4, not 5, 5 and 2 padded to 5
    assert schema.layers_per_chunk(1024, 384, "float32", layers=12) == 4
    wide = str(tmp_path / "wide.zarr")
    monkeypatch.setattr(schema, "layers_per_chunk", lambda *a, **k: 64)  # as an older dit-lens laid stores out
    record(tiny_lens, wide, PROMPTS[:2], samples=[0], **args)
    monkeypatch.undo()
    record(tiny_lens, wide, PROMPTS[:2], resume=True, **args)
    assert zarr.open_group(wide, mode="r")["img.resid_post"].chunks[2] == 64
    a, b = open_store(url), open_store(wide)
    assert bool(b.complete.all())
    assert np.array_equal(a["img.resid_post"].values, b["img.resid_post"].values)


def test_a_store_that_cannot_be_made_is_refused_before_the_run_or_at_its_first_step(tiny_lens, tmp_path,
                                                                                      monkeypatch):
    """The template is written on the writer's thread beside the first batch: a place that cannot hold a store is
    refused before the run; a template that fails to write stops the run at its next value, flagging nothing."""
    import threading

    import dit_lens.store.writer as writer

    (tmp_path / "f").write_text("")
    kw = dict(names="double.0.img.resid_post", num_inference_steps=2, progress=False)
    calls = []
    hook = tiny_lens.pipeline.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(StoreError, match=r"cannot create a store at .*f/x.zarr: .*f is not a folder"):
            record(tiny_lens, str(tmp_path / "f" / "x.zarr"), PROMPTS[:1], **kw)
        assert not calls  # before the model ran

        def broken(url, layout, storage_options=None):
            raise StoreError(f"cannot create a store at {url}: disk full")
        monkeypatch.setattr(writer, "create", broken)  # what StoreWriter.create calls
        url = str(tmp_path / "y.zarr")
        with pytest.raises(StoreError, match="disk full"):
            record(tiny_lens, url, PROMPTS[:2], batch_size=1, **kw)
        assert len(calls) <= 2  # stopped within the first batch (one call per step here)
    finally:
        hook.remove()
    assert not [t for t in threading.enumerate() if t.name.startswith("dit-lens")]
    assert not (tmp_path / "y.zarr.claims").exists() or not list((tmp_path / "y.zarr.claims").iterdir())
