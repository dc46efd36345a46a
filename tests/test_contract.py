"""The lens contract, run on a tiny random-weight pipeline of every supported architecture (dit_lens.testing.ROWS).

Adding an architecture = one file in dit_lens/archs/ + one row in dit_lens.testing.ROWS. A row's CFG style (one
batched call per step, or a cond and an uncond call) is what the adapter's own rule says for the row's arguments.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from dit_lens import Lens, zero
from dit_lens.archs import ARCHS, arch_for
from dit_lens.errors import CacheKeyError
from dit_lens.lens import pipeline_images
from dit_lens.testing import ROWS

STEPS = 3


def _sequential(key) -> bool:
    pipe, kw = ROWS[key].build()
    return arch_for(pipe.transformer).calls_per_step(kw, pipe) == 2


SEQUENTIAL = sorted(k for k in ROWS if _sequential(k))  # two transformer calls per step


def _case(key):
    pipe, kw = ROWS[key].build()
    lens = Lens(pipe, example=dict(kw, num_inference_steps=1))
    return key, lens, kw, ROWS[key].families


@pytest.fixture(scope="module", params=sorted(ROWS))
def case(request):
    return _case(request.param)


@pytest.fixture(scope="module", params=sorted(set(ROWS) - set(SEQUENTIAL)))
def batch_case(request):
    return _case(request.param)


def test_every_adapter_has_a_contract_row_and_both_cfg_styles_are_covered():
    covered = {type(ROWS[k].build()[0].transformer).__name__ for k in ROWS}
    assert set(ARCHS) <= covered, f"adapters without a row in dit_lens.testing.ROWS: {sorted(set(ARCHS) - covered)}"
    assert {"qwenimage", "flux_true_cfg", "flux2_klein"} <= set(SEQUENTIAL)
    assert not {"sd3", "flux2", "flux2_klein_distilled"} & set(SEQUENTIAL)


def _run(lens, kw, **extra):
    return lens.generate(num_inference_steps=STEPS, seed=0, **kw, **extra)


def _rows(kw):
    return 2 if "prompt" not in kw else len(kw["prompt"])


def test_families_and_every_name_resolves(case):
    key, lens, kw, families = case
    assert {n.split(".")[0] for n in lens.names()} == families
    assert lens.names("*.*.img.resid_post"), "every model has image-stream outputs"
    g = _run(lens, kw, cache="*")
    branches = ["cond", "uncond"] if key in SEQUENTIAL else [g.cache.branches[0]]
    ran = lens.steps_of(STEPS, **kw)  # img2img strength runs fewer steps
    assert g.cache.branches == branches and g.cache.steps == list(range(ran)) and g.cache.names == lens.names()
    for name in lens.names():
        tokens, channels = lens.shape(name)
        for s in range(ran):
            for b in branches:
                v = g.cache[name, s, b]
                expected = lens.tokens(name, "uncond" if b == "uncond" else "cond", kw) or tokens
                assert v.shape[1:] == (expected, channels), (name, v.shape)
                assert v.shape[0] == (2 * _rows(kw) if b == "batch" else _rows(kw))
                assert torch.isfinite(v).all()
    assert len(g.timesteps) == ran and len(set(g.timesteps)) == ran


def test_cache_keys_are_the_same_on_every_architecture(case):
    """(name, step, branch) everywhere; (name, step) wherever one branch was recorded; the conditional branch
    alone on request, with cond rows only."""
    key, lens, kw, _ = case
    name = lens.names("*.*.img.resid_post")[-1]
    ran = lens.steps_of(STEPS, **kw)
    everything = _run(lens, kw, cache=name)
    cond = _run(lens, kw, cache=name, cache_cfg="cond")
    assert cond.cache.branches == ["cond"] and cond.cache[name, 1].shape[0] == _rows(kw)
    assert cond.cache.stack(name).shape == (ran, _rows(kw), *lens.shape(name))
    assert torch.equal(cond.cache.stack(name, branch="cond")[1], cond.cache[name, 1, "cond"])
    if key in SEQUENTIAL:
        assert torch.equal(cond.cache[name, 1], everything.cache[name, 1, "cond"])
        assert everything.cache.stack(name, branch="uncond").shape == (ran, _rows(kw), *lens.shape(name))
        with pytest.raises(CacheKeyError, match=r"holds branches \['cond', 'uncond'\]"):
            everything.cache[name, 1]
        with pytest.raises(CacheKeyError, match="branch="):
            everything.cache.stack(name)
    else:
        held = everything.cache.branches[0]
        rows = everything.cache[name, 1]
        assert torch.equal(rows, everything.cache[name, 1, held])
        # batched CFG holds both halves in the arch's order ([uncond; cond] for most): its cond half is what a
        # cond-only run caches
        half = slice(None) if rows.shape[0] == _rows(kw) else \
            slice(0, _rows(kw)) if lens.arch.batch_order[0] == "cond" else slice(_rows(kw), None)
        assert torch.equal(rows[half], cond.cache[name, 1])
    with pytest.raises(CacheKeyError, match="cached steps"):
        cond.cache[name, ran]



def test_depth_order_is_execution_order(case):
    _, lens, _, _ = case
    blocks = lens.info()["blocks"]
    assert [b["depth"] for b in blocks] == list(range(len(blocks)))
    fams = [b["block"].split(".")[0] for b in blocks]
    if "single" in fams:  # double-stream blocks run before single-stream ones
        assert fams.index("single") > max(i for i, f in enumerate(fams) if f == "double")
    depths = [lens.depth(n) for n in lens.names()]
    assert depths == sorted(depths)


def _raw_outputs(lens, kw):
    """Plain torch forward hooks: every block's raw return value on the first transformer call of each step."""
    pipe = lens.pipeline
    seen, handles = {}, []
    for b in lens.info()["blocks"]:
        mod = pipe.transformer.get_submodule(b["module"].split(".", 1)[1])

        def hook(m, a, k, out, name=b["block"]):
            seen.setdefault(name, []).append(out)
        handles.append(mod.register_forward_hook(hook, with_kwargs=True))
    try:
        # nnsight's seed=s gives image i the seed s + i
        args = dict(kw, num_inference_steps=STEPS, generator=[torch.Generator().manual_seed(i)
                                                                for i in range(_rows(kw))])
        result = pipe(**args)
    finally:
        for h in handles:
            h.remove()
    return seen, result


def test_stream_split_equals_manual_slice(batch_case):
    key, lens, kw, _ = batch_case
    g = _run(lens, kw, cache="*.*.*.resid_post")
    raw, _ = _raw_outputs(lens, kw)
    T = None
    for name in lens.names("*.*.*.resid_post"):
        fam, i, stream, _ = name.split(".")
        out = raw[f"{fam}.{i}"][-1]
        layout = [f for f in lens.arch.families if f.name == fam][0].output
        if layout == "txt,img":
            manual = out[0] if stream == "txt" else out[1]
        elif layout == "img,txt":
            manual = out[1] if stream == "txt" else out[0]
        elif layout == "img":
            manual = out
        else:  # joint [txt; img]
            T = lens.shape(name.replace("img", "txt"))[0] if stream == "img" else lens.shape(name)[0]
            manual = out[:, :T] if stream == "txt" else out[:, T:]
        assert torch.equal(g.cache[name, lens.steps_of(STEPS, **kw) - 1], manual), name


def test_edit_changes_only_named_channels_from_its_step_on(batch_case):
    key, lens, kw, _ = batch_case
    names = lens.names("*.*.img.resid_post")
    target = names[len(names) // 2]
    base = _run(lens, kw, cache="*")
    edited = _run(lens, kw, cache="*", edits=[zero(target, steps=[1], channels=[0, 2])])
    order = lens.names()
    for (name, s, b), v in base.cache.items():
        e = edited.cache[name, s, b]
        if s < 1 or (s == 1 and order.index(name) < order.index(target)):
            assert torch.equal(v, e), (name, s)
    v, e = base.cache[target, 1], edited.cache[target, 1]
    changed = (v != e).any(0).any(0).nonzero().flatten().tolist()
    assert changed == [0, 2]
    assert torch.all(e[:, :, [0, 2]] == 0)
    assert not torch.equal(base.images, edited.images) if isinstance(base.images, torch.Tensor) else \
        (base.images != edited.images).any()


def test_edit_equals_torch_forward_hook(batch_case):
    key, lens, kw, _ = batch_case
    target = lens.names("*.*.img.resid_post")[-1]
    fam, i = target.split(".")[:2]
    layout = [f for f in lens.arch.families if f.name == fam][0].output
    module = [b["module"] for b in lens.info()["blocks"] if b["block"] == f"{fam}.{i}"][0].split(".", 1)[1]
    T = lens.shape(target.replace(".img.", ".txt."))[0] if layout == "joint" else None
    calls = {"n": 0}

    def hook(m, a, k, out):
        calls["n"] += 1
        if calls["n"] != 2:  # step 1
            return None
        if layout == "img":
            out = out.clone()
            out[:, :, 5] = 0
            return out
        if layout == "joint":
            out = out.clone()
            out[:, T:, 5] = 0
            return out
        j = 1 if layout == "txt,img" else 0
        img = out[j].clone()
        img[:, :, 5] = 0
        return (out[0], img) if j == 1 else (img, out[1])

    h = lens.pipeline.transformer.get_submodule(module).register_forward_hook(hook, with_kwargs=True)
    try:
        _, hooked = _raw_outputs(lens, kw)
    finally:
        h.remove()
    ours = _run(lens, kw, edits=[zero(target, steps=[1], channels=[5])])
    a = pipeline_images(hooked)  # .images, or a video pipeline's .frames
    b = ours.images
    assert (torch.equal(torch.as_tensor(a), torch.as_tensor(b)))


def test_sequential_cfg_maps_calls_to_steps():
    for key in SEQUENTIAL:
        pipe, kw = ROWS[key].build()
        lens = Lens(pipe, example=dict(kw, num_inference_steps=1))
        name = lens.names("*.*.img.resid_post")[0]
        base = _run(lens, kw, cache=name)
        assert sorted(base.cache) == sorted((name, s, b) for s in range(STEPS) for b in ("cond", "uncond"))
        assert len(base.timesteps) == STEPS
        # cond and uncond calls see different text, so their streams differ
        assert not torch.equal(base.cache[name, 0, "cond"], base.cache[name, 0, "uncond"])
        only_uncond = _run(lens, kw, cache=name, edits=[zero(name, steps=[2], cfg="uncond")])
        assert torch.equal(only_uncond.cache[name, 2, "cond"], base.cache[name, 2, "cond"])
        assert torch.all(only_uncond.cache[name, 2, "uncond"] == 0)


@pytest.mark.parametrize("key,name,cond_first", [("sd3", "double.0.img.resid_post", False),
                                                 ("lumina_next", "blocks.0.img.resid_post", True)])
def test_batch_cfg_edit_touches_one_branch(key, name, cond_first):
    """Batched CFG rows are [uncond; cond] on SD3 and [cond; uncond] on Lumina-Next: cfg="cond" edits the right
    half of each."""
    pipe, kw = ROWS[key].build()
    lens = Lens(pipe, example=dict(kw, num_inference_steps=1))
    base = _run(lens, kw, cache=name)
    ed = _run(lens, kw, cache=name, edits=[zero(name, steps=[1], cfg="cond")])
    b, e = base.cache[name, 1], ed.cache[name, 1]
    kept, zeroed = (slice(2, 4), slice(0, 2)) if cond_first else (slice(0, 2), slice(2, 4))
    assert torch.equal(b[kept], e[kept]) and not torch.equal(b[zeroed], e[zeroed])
    assert torch.all(e[zeroed] == 0)
    assert torch.equal(b[zeroed], _run(lens, kw, cache=name, cache_cfg="cond").cache[name, 1])  # the cond half


def _first_of_each_kind(lens) -> list[str]:
    """The first name of every (family, stream, site) the model has."""
    first = {}
    for n in lens.names():
        fam, _, stream, site = n.split(".")
        first.setdefault((fam, stream, site), n)
    return list(first.values())


def test_sub_sites_equal_manual_slice_of_the_module_output(batch_case):
    """Every sub-site (attn_out, attn2_out, xattn_out, mlp_out) of every family reads what a plain forward hook on
    its sub-module sees, sliced by hand: the whole output, one element of a tuple, or a [txt; img] split."""
    key, lens, kw, _ = batch_case
    subs = [n for n in _first_of_each_kind(lens) if not n.endswith(("resid_pre", "resid_post"))]
    if not subs:
        pytest.skip(f"{key}: no sub-sites")
    g = _run(lens, kw, cache=subs)
    last = lens.steps_of(STEPS, **kw) - 1
    for name in subs:
        fam, i, stream, site = name.split(".")
        family = [f for f in lens.arch.families if f.name == fam][0]
        sub, index = family.sites[site][stream]
        seen = []
        h = lens.pipeline.transformer.get_submodule(f"{family.path}.{i}.{sub}").register_forward_hook(
            lambda m, a, out: seen.append(out))
        try:
            _raw_outputs(lens, kw)
        finally:
            h.remove()
        out = seen[-1]
        if index == "joint":
            T = lens.shape(name.replace(".img.", ".txt."))[0] if stream == "img" else lens.shape(name)[0]
            manual = out[:, :T] if stream == "txt" else out[:, T:]
        else:
            manual = out if index is None else out[index]
        assert torch.equal(g.cache[name, last], manual), name


def test_every_site_kind_is_editable(batch_case):
    _, lens, kw, _ = batch_case
    out = lens.names("*.*.img.resid_post")[-1]  # the last image-stream value (decoded images may round a change away)
    last = lens.steps_of(STEPS, **kw) - 1
    base = _run(lens, kw, cache=out)
    for name in _first_of_each_kind(lens):
        g = _run(lens, kw, cache=[name, out], edits=[zero(name, steps=[0], channels=[1])])
        assert torch.all(g.cache[name, 0][:, :, 1] == 0), name
        if lens.depth(name) < lens.depth(out) or ".img." in name:
            assert not torch.equal(g.cache[out, last], base.cache[out, last]), f"zeroing {name} had no effect"


@pytest.mark.parametrize("cfg", ["cond", "uncond"])
def test_recording_by_hooks_equals_recording_in_a_trace(case, cfg, tmp_path, monkeypatch):
    """The recorder takes a local pipeline's values by plain torch hooks; the same store, bit for bit, as through an
    nnsight trace (how remote recordings run), for every site kind of the model's width — or the same error."""
    import numpy as np
    import xarray as xr

    rec = importlib.import_module("dit_lens.record")  # the module (the package exports the function by its name)

    key, lens, kw, _ = case
    kw = dict(kw)
    prompts = kw.pop("prompt", None) or ["x", "y"]
    width = lens.shape(lens.names("*.*.img.resid_post")[0])[1]
    names = [n for n in lens.names() if lens.shape(n)[1] == width]
    got = {}
    for traced in (True, False):
        monkeypatch.setattr(rec, "_TRACED", traced)
        url = str(tmp_path / f"{traced}.zarr")
        try:
            rec.record(lens, url, prompts, names=names, num_inference_steps=STEPS, batch_size=2, cfg=cfg,
                       progress=False, **kw)
            got[traced] = xr.open_zarr(url, consolidated=False).load()
        except Exception as e:  # noqa: BLE001 - the two paths must fail alike
            got[traced] = type(e)
    a, b = got[True], got[False]
    if isinstance(a, type) or isinstance(b, type):
        assert a is b, (a, b)
        assert cfg == "uncond" and key not in SEQUENTIAL, a  # only a run without an uncond branch may fail
        return
    assert set(a.data_vars) == set(b.data_vars)
    for v in a.data_vars:
        assert np.array_equal(a[v].values, b[v].values, equal_nan=True), v
    assert a["complete"].values.all() and a.attrs["names"] == b.attrs["names"]
