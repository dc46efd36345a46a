"""Recipes on the embedded model (small settings, scored by its evaluator) and on tiny random configs of every
architecture (no scorer: model-independent measures only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dit_lens import Lens, Scorer, cluster, detect, disrupt, record, transport
from dit_lens.recipes import run_file
from dit_lens.recipes.disrupt import hf_energy, psnr, ssim
from dit_lens.testing import ROWS
from dit_lens.testing import lens as row_lens

PROMPTS = ["a red circle on a blue background", "a green square on a white background"]


@pytest.fixture(scope="module")
def tiny_lens():
    return Lens("tiny")


@pytest.mark.parametrize("key", sorted(ROWS))
def test_detect_offline_on_each_architecture(key, tmp_path):
    pipe, kw = ROWS[key].build()
    lens = Lens(pipe, example=dict(kw, num_inference_steps=1))
    full, stats = str(tmp_path / "f.zarr"), str(tmp_path / "s.zarr")
    prompts = kw.pop("prompt", ["a", "b"])  # embeddings-driven rows: the prompts only label the samples
    common = dict(names="*.*.img.resid_post", num_inference_steps=3, batch_size=2, progress=False, **kw)
    record(lens, full, prompts, **common)
    record(lens, stats, prompts, stats_only=True, **common)
    a, b = detect(full, k=3), detect(stats, k=3)
    assert a.per_name.keys() == b.per_name.keys() == set(lens.names("*.*.img.resid_post"))
    for name in a.per_name:
        assert a.massive(name) == b.massive(name)
        assert a.per_name[name]["ratio"] >= 1.0
        assert 0.0 <= a.per_name[name]["jaccard_prompts"] <= 1.0
    with pytest.raises(ValueError, match="k="):
        detect(full, k=10_000)
    with pytest.raises(KeyError, match="matches no name"):
        detect(full, names="double.99.img.resid_post")


def test_detect_live_and_figures(tiny_lens, tmp_path):
    d = detect(tiny_lens, names="*.*.img.resid_post", k=4, prompts=PROMPTS, seeds=[0], num_inference_steps=3)
    assert len(d.per_name) == 6 and all(len(v["top"]) == 4 for v in d.per_name.values())
    name = "single.3.img.resid_post"
    assert not set(d.massive(name)) & set(d.low(name))
    paths = d.figures(tmp_path)
    assert all(p.stat().st_size > 1000 for p in paths)
    with pytest.raises(ValueError, match="prompts"):
        detect(tiny_lens)


def test_image_metrics():
    rng = np.random.default_rng(0)
    a = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], 32, 0).repeat(3, 2)  # smooth ramp
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    assert psnr(a, b) < 30 and ssim(a, b) < 0.95
    flat = np.full((32, 32, 3), 128, np.uint8)
    assert hf_energy(flat) == 0.0 < hf_energy(a) < hf_energy(b)


def test_disrupt_small(tiny_lens, tmp_path):
    d = disrupt(tiny_lens, prompts=PROMPTS, seeds=[0, 1], k=4, num_inference_steps=4)
    assert set(d.metrics) == {f"{a}/{s}" for a in ("zero", "mean") for s in ("massive", "low", "random")}
    m = d.metrics["zero/massive"]
    assert m["psnr"]["n"] == 4 and m["psnr"]["lo"] <= m["psnr"]["mean"] <= m["psnr"]["hi"]
    assert "shape_acc" in m  # the embedded model is scored by the ground-truth evaluator
    for s in ("massive", "low", "random"):
        assert all(len(c) == 4 for c in d.channels[s].values())
    assert not set(d.channels["random"]["double.0.img.resid_post"]) & set(d.channels["massive"][
        "double.0.img.resid_post"])
    assert d.figure(tmp_path).exists()
    with pytest.raises(ValueError, match="k="):
        disrupt(tiny_lens, prompts=PROMPTS, k=1000, num_inference_steps=4)
    with pytest.raises(IndexError, match="steps"):
        disrupt(tiny_lens, prompts=PROMPTS, k=4, steps=[9], num_inference_steps=4)


def test_run_recipe_file(tmp_path):
    recipe = tmp_path / "d.toml"
    recipe.write_text('recipe = "detect"\nmodel = "tiny"\nk = 2\nnames = "double.*.img.resid_post"\n'
                      f'prompts = {json.dumps(PROMPTS)}\nseeds = [0]\nnum_inference_steps = 2\n')
    report = run_file(recipe, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["recipe"] == "detect" and saved["parameters"]["k"] == 2
    assert saved["source"]["config_hash"] and saved["dit_lens_version"]
    assert set(saved["result"]["per_name"]) == {"double.0.img.resid_post", "double.1.img.resid_post"}
    assert len(report["figures"]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('recipe = "detect"\nmodel = "tiny"\nkay = 2\n')
    with pytest.raises(ValueError, match="no arguments"):
        run_file(bad, tmp_path / "o2")


def test_recipe_file_sweep(tmp_path):
    base = ('recipe = "detect"\nmodel = "tiny"\nnames = "double.0.img.resid_post"\n'
            f'prompts = {json.dumps(PROMPTS[:1])}\nseeds = [0]\n')
    recipe = tmp_path / "s.toml"
    recipe.write_text(base + "[sweep]\nk = [1, 3]\nnum_inference_steps = [1, 2]\n")
    report = run_file(recipe, tmp_path / "out", progress=False)
    assert [r["parameters"] for r in report["runs"]] == [
        {"k": 1, "num_inference_steps": 1}, {"k": 1, "num_inference_steps": 2},
        {"k": 3, "num_inference_steps": 1}, {"k": 3, "num_inference_steps": 2}]
    assert [len(r["result"]["per_name"]["double.0.img.resid_post"]["top"]) for r in report["runs"]] == [1, 1, 3, 3]
    assert (tmp_path / "out" / "k-3_num_inference_steps-2").is_dir()
    assert json.loads((tmp_path / "out" / "report.json").read_text())["sweep"] == {"k": [1, 3],
                                                                                  "num_inference_steps": [1, 2]}
    for extra, match in (("[sweep]\nkay = [1]\n", "no arguments"), ("[sweep]\nk = 3\n", "non-empty list"),
                         ("k = 2\n[sweep]\nk = [1]\n", "outside the sweep")):
        recipe.write_text(base + extra)
        with pytest.raises(ValueError, match=match):
            run_file(recipe, tmp_path / "o3")


def test_cluster_offline_with_controls_and_errors(tiny_lens, tmp_path):
    from dit_lens.recipes.cluster import best_iou

    labels = np.array([[0, 0], [1, 1]])
    assert best_iou(labels, np.array([[False, False], [True, True]]), 2) == 1.0
    url = str(tmp_path / "c.zarr")
    record(tiny_lens, url, PROMPTS, seeds=[0, 1], names="double.*.img.resid_post", num_inference_steps=3,
           progress=False)
    c = cluster(url, k=4, K=2, steps=[2])
    assert set(c.summary) >= {"massive", "all", "random", "low"}
    assert all(0.0 <= c.summary[x] <= 1.0 for x in ("massive", "all", "random", "low"))
    assert c.masks.shape == (4, 16, 16) and c.masks.any()
    assert c.figure(tmp_path).exists()
    with pytest.raises(ValueError, match="K=1"):
        cluster(url, K=1)
    with pytest.raises(ValueError, match="masks of shape"):
        cluster(url, masks=np.zeros((3, 16, 16), bool))
    with pytest.raises(ValueError, match="do not divide into the 16x16 token grid"):
        cluster(url, masks=np.zeros((4, 24, 24), bool))
    with pytest.raises(ValueError, match="steps"):
        cluster(url, steps=[7])


def test_transport_small(tiny_lens, tmp_path):
    pairs = [("a red circle on a blue background", "a green circle on a blue background")]
    r = transport(tiny_lens, pairs=pairs, seeds=[0, 1], alphas=(0.5, 1.0), num_inference_steps=3, k=4)
    assert set(r.success) == set(r.blend_success) == {0.5, 1.0}
    assert all(0.0 <= v <= 1.0 for v in r.success.values())
    assert r.images[1.0].shape == r.images["target"].shape
    assert (r.images[1.0] != r.images["target"]).any(), "patching the massive channels changed nothing"
    assert r.figure(tmp_path).exists()
    sub = transport(tiny_lens, pairs=pairs, seeds=[0], alphas=(1.0,), num_inference_steps=3, spatial="subject")
    assert sub.images[1.0].shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="alphas"):
        transport(tiny_lens, pairs=pairs, alphas=(2.0,), num_inference_steps=3)
    with pytest.raises(ValueError, match="pairs"):
        transport(tiny_lens, pairs=[("only one",)], num_inference_steps=3)
    rnd = transport(tiny_lens, pairs=pairs, seeds=[0, 1], alphas=(1.0,), num_inference_steps=3, k=4,
                    channel_set="random", detection=None)
    assert rnd.params["channel_set"] == "random"
    assert r.channels == r.massive and all(len(v) == 4 for v in rnd.channels.values())
    assert all(not set(rnd.channels[n]) & set(rnd.massive[n]) for n in rnd.channels), "random drew massive ones"
    assert (rnd.images[1.0] != r.images[1.0]).any(), "random channels patched the same as the massive ones"
    with pytest.raises(ValueError, match="channel_set"):
        transport(tiny_lens, pairs=pairs, channel_set="huge", num_inference_steps=3)
    with pytest.raises(ValueError, match="k=129 outside 1..128"):
        transport(tiny_lens, pairs=pairs, k=129, num_inference_steps=3)
    with pytest.raises(ValueError, match="outside the 4 massive ones: k <= 124"):
        transport(tiny_lens, pairs=pairs, k=125, channel_set="random", num_inference_steps=3)
    with pytest.raises(ValueError, match="k=0 outside 1..128"):
        transport(tiny_lens, pairs=pairs, k=0, num_inference_steps=3)


def test_transport_pooled_embedding(tiny_lens, tmp_path):
    pairs = [("a red circle on a blue background", "a green circle on a blue background")]
    alone = transport(tiny_lens, pairs=pairs, seeds=[0], alphas=(1.0,), num_inference_steps=3, k=0,
                      pooled_alpha=1.0)
    assert alone.params["pooled_alpha"] == 1.0 and alone.params["k"] == 0
    assert (alone.images[1.0] != alone.images["target"]).any(), "moving the pooled embedding changed nothing"
    both = transport(tiny_lens, pairs=pairs, seeds=[0], alphas=(1.0,), num_inference_steps=3, k=4,
                     pooled_alpha=1.0)
    assert (both.images[1.0] != alone.images[1.0]).any()
    with pytest.raises(ValueError, match="pooled_alpha=2"):
        transport(tiny_lens, pairs=pairs, k=0, pooled_alpha=2, num_inference_steps=3)
    with pytest.raises(ValueError, match="live source"):
        transport(tiny_lens, pairs=pairs, pooled_alpha=0.5, num_inference_steps=3,
                  source_store=str(tmp_path / "none.zarr"))


def test_transport_controls_sharing_runs_reuse_source_and_target(tiny_lens, monkeypatch):
    from dit_lens.recipes.detect import detect
    pairs = [("a red circle on a blue background", "a green circle on a blue background")]
    det = detect(tiny_lens, k=4, prompts=sorted(set(pairs[0])), seeds=[0], num_inference_steps=3)
    same = dict(pairs=pairs, seeds=[0], alphas=(1.0,), num_inference_steps=3, detection=det)
    controls = {"massive": dict(k=4), "random": dict(k=4, channel_set="random"),
                "pooled": dict(k=0, pooled_alpha=1.0), "pooled + massive": dict(k=4, pooled_alpha=1.0)}
    alone = {c: transport(tiny_lens, **same, **kw) for c, kw in controls.items()}
    calls, generate = [], tiny_lens.generate
    monkeypatch.setattr(tiny_lens, "generate", lambda *a, **kw: calls.append(1) or generate(*a, **kw))
    runs: dict = {}
    shared = {c: transport(tiny_lens, **same, **kw, runs=runs) for c, kw in controls.items()}
    assert len(calls) == 2 + len(controls), "source and target should be generated once for all four controls"
    for c in controls:
        for key in ("source", "target", 1.0):
            assert np.array_equal(shared[c].images[key], alone[c].images[key]), (c, key)


def test_transport_reuses_a_generation_only_for_the_same_pipeline_arguments():
    from dit_lens.recipes._sources import reused as _reused

    emb = torch.zeros(2, 3)
    runs = {"target": (("p",), dict(prompt_embeds=emb, guidance_scale=4.0), "images")}
    assert _reused(runs, "target", ("p",), dict(prompt_embeds=emb, guidance_scale=4.0)) == "images"
    assert _reused(runs, "target", ("p",), dict(prompt_embeds=emb.clone(), guidance_scale=4.0)) is None
    assert _reused(runs, "target", ("p",), dict(prompt_embeds=emb, guidance_scale=5.0)) is None
    assert _reused(runs, "target", ("q",), dict(prompt_embeds=emb, guidance_scale=4.0)) is None
    assert _reused(runs, "source", ("p",), {}) is None


def test_transport_sweep_generates_shared_source_and_target_once(tmp_path, monkeypatch):
    calls, generate = [], Lens.generate
    monkeypatch.setattr(Lens, "generate", lambda self, *a, **kw: calls.append(1) or generate(self, *a, **kw))
    recipe = tmp_path / "t.toml"
    recipe.write_text('recipe = "transport"\nmodel = "tiny"\nseeds = [0]\nalphas = [1.0]\nnum_inference_steps = 2\n'
                      'pairs = [["a red circle on a blue background", "a green circle on a blue background"]]\n'
                      '[sweep]\nchannel_set = ["massive", "random"]\n')
    report = run_file(recipe, tmp_path / "out", progress=False)
    assert [r["parameters"] for r in report["runs"]] == [{"channel_set": "massive"}, {"channel_set": "random"}]
    assert len(calls) == 3 + 1, "the second sweep point should generate only its patched run"


def test_transport_offline_from_a_store(tiny_lens, tmp_path):
    pairs = [("a red circle on a blue background", "a green circle on a blue background")]
    url = str(tmp_path / "src.zarr")
    record(tiny_lens, url, [pairs[0][0]], seeds=[0], names="*.*.img.resid_post", num_inference_steps=3,
           progress=False)
    off = transport(tiny_lens, pairs=pairs, seeds=[0], alphas=(1.0,), num_inference_steps=3, source_store=url)
    assert off.params["source_store"] == url
    assert (off.images[1.0] != off.images["target"]).any()
    np.testing.assert_array_equal(off.images["source"], open_store_images(url))
    with pytest.raises(ValueError, match="no sample for prompt"):
        transport(tiny_lens, pairs=[("a blue ring on a red background", pairs[0][1])], seeds=[0], alphas=(1.0,),
                  num_inference_steps=3, source_store=url)
    with pytest.raises(ValueError, match="steps"):
        transport(tiny_lens, pairs=pairs, seeds=[0], alphas=(1.0,), num_inference_steps=5, source_store=url)


def open_store_images(url):
    from dit_lens.store import open_store

    return open_store(url).image.values


def test_image_source_noises_the_image_to_each_sigma(tiny_lens):
    import torch

    from dit_lens.recipes._sources import image_source
    from dit_lens.tiny import data

    smp = data.sample(123)
    name = "single.3.img.resid_post"
    latents = tiny_lens.spec.image_latents(tiny_lens.pipeline, smp.image[None], [0])
    acts = image_source(tiny_lens, latents, [PROMPTS[1]], [0], [name], 3)
    live = tiny_lens.generate([PROMPTS[1]], num_inference_steps=3, generator=[torch.Generator().manual_seed(0)],
                              cache=name)
    # step 0 has sigma 1: the noised image is pure seeded noise, i.e. exactly the run's own initial latents
    (cfg, step0), = acts[name, 0]
    assert cfg is None and torch.equal(step0, live.cache[name, 0])
    assert not torch.equal(acts[name, 2][0][1], live.cache[name, 2])  # later steps see the source image
    r = transport(tiny_lens, pairs=[(smp.prompt, PROMPTS[1])], seeds=[0], alphas=(1.0,), num_inference_steps=3,
                  source_images=smp.image[None])
    assert (r.images[1.0] != r.images["target"]).any()
    with pytest.raises(ValueError, match="source_images"):
        transport(tiny_lens, pairs=[(smp.prompt, PROMPTS[1])], seeds=[0], num_inference_steps=3,
                  source_images=smp.image[None].astype(float))
    with pytest.raises(ValueError, match="the embedded model draws 32x32"):
        transport(tiny_lens, pairs=[(smp.prompt, PROMPTS[1])], seeds=[0], num_inference_steps=3,
                  source_images=np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="no such files"):
        transport(tiny_lens, pairs=[(smp.prompt, PROMPTS[1])], seeds=[0], num_inference_steps=3,
                  source_images=["nowhere.png"])


def test_image_transport_recipe_file_reads_its_images():
    import tomllib

    from PIL import Image

    from pathlib import Path

    root = Path(__file__).resolve().parents[1]  # the recipe's paths are relative to the repository root
    spec = tomllib.loads((root / "recipes" / "transport_image_tiny.toml").read_text())
    images = [np.asarray(Image.open(root / p).convert("RGB")) for p in spec["source_images"]]
    assert len(images) == len(spec["pairs"]) and all(im.shape == (32, 32, 3) for im in images)
    from dit_lens.tiny.evaluate import analyse, parse_prompt

    for im, (caption, _) in zip(images, spec["pairs"]):  # each image shows what its caption says
        colour, shape, background = parse_prompt(caption)
        a = analyse(im)
        assert (a.colour, a.background) == (colour, background), caption


@pytest.mark.parametrize("key", sorted(ROWS))
def test_recipes_run_on_every_architecture(key, tmp_path):
    """disrupt (zero and mean), transport (all tokens, and cluster-masked) and cluster on each contract row,
    sequential CFG included: with no scorer
    the model-independent measures; the embedded model's row is scored by its own evaluator."""
    lens, kw = row_lens(key)
    prompts = kw.pop("prompt", None) or ["p0", "p1"]
    names = lens.names("*.*.img.resid_post")[-2:]
    k = 2
    d = disrupt(lens, prompts=prompts[:1], seeds=[0, 1], names=names, k=k, num_inference_steps=2,
                sets=("massive", "random"), pipeline=kw)
    assert set(d.metrics) == {f"{a}/{s}" for a in ("zero", "mean") for s in ("massive", "random")}
    for m in d.metrics.values():
        change = m["rel_l2"] if "rel_l2" in m else m["mse"]
        assert change["n"] == 2 and 0 <= change["lo"] <= change["mean"] <= change["hi"]
    zeroed = d.metrics["zero/massive"]
    assert (zeroed["rel_l2"] if "rel_l2" in zeroed else zeroed["mse"])["mean"] > 0, "zeroing changed nothing"
    assert ("shape_acc" in zeroed) == (key == "tiny")
    assert d.figure(tmp_path).stat().st_size > 1000
    # embeddings-driven rows: one row per (pair, seed); the sources' rows are other embeddings
    source = {k2: v.flip(0) for k2, v in kw.items() if k2 in ("prompt_embeds", "pooled_prompt_embeds")}
    t = transport(lens, pairs=[(prompts[0], prompts[1])], seeds=[0, 1], alphas=(0.5, 1.0), k=k, names=names,
                  num_inference_steps=2, pipeline=kw, source_pipeline=source or None)
    assert set(t.toward_source) == {0.5, 1.0} and np.isfinite(t.toward_source[1.0]["mean"])
    assert (t.images[1.0] != t.images["target"]).any(), "transport changed nothing"
    assert bool(t.success) == (key == "tiny")  # only the embedded model's scorer judges transport
    assert t.figure(tmp_path).stat().st_size > 1000
    masked = transport(lens, pairs=[(prompts[0], prompts[1])], seeds=[0, 1], alphas=(1.0,), k=k, names=names,
                       num_inference_steps=2, pipeline=kw, source_pipeline=source or None, spatial="cluster")
    assert 0 < masked.mask_fraction < 1 and (masked.images[1.0] != masked.images["target"]).any()
    url = str(tmp_path / "c.zarr")
    record(lens, url, prompts, seeds=[0], names=names, num_inference_steps=2, progress=False, **kw)
    c = cluster(url, k=k, steps=[lens.steps_of(2, **kw) - 1])  # the last step run (img2img runs fewer)
    agree = c.summary["agreement"]["massive"]
    assert 0.5 <= agree["across_layers"] <= 1.0 and 0.5 <= agree["with_all_channels"] <= 1.0
    assert (c.masks is not None) == (key == "tiny") and c.figure(tmp_path).stat().st_size > 1000


class Brightness(Scorer):
    """A scorer a user might write: brightness as the per-image score, 'bright' / 'dark' prompts by similarity,
    the brighter half of the pixels as the subject."""

    name = "brightness"

    def score(self, images, prompts):
        return {"bright": np.asarray(images, np.float64).mean((1, 2, 3)) / 255.0}

    def similarity(self, images, prompts):
        b = self.score(images, prompts)["bright"]
        return np.array([v if "bright" in p else 1 - v for v, p in zip(b, prompts)])

    def masks(self, images):
        lum = np.asarray(images, np.float64).mean(-1)
        return lum > np.median(lum, axis=(1, 2), keepdims=True)


def test_a_user_scorer_and_user_masks_drive_the_recipes(tiny_lens, tmp_path):
    from PIL import Image

    from dit_lens.recipes.cluster import agreement
    from dit_lens.scoring import implements

    assert implements(Brightness(), "transported") and not implements(None, "score")
    d = disrupt(tiny_lens, prompts=PROMPTS[:1], seeds=[0], k=2, num_inference_steps=2, sets=("massive",),
                ablations=("zero",), scorer=Brightness())
    m = d.metrics["zero/massive"]
    assert set(m) >= {"bright", "baseline_bright", "psnr"} and "shape_acc" not in m
    assert d.params["scorer"] == "brightness" and 0 <= m["bright"]["lo"] <= m["bright"]["hi"] <= 1
    none = disrupt(tiny_lens, prompts=PROMPTS[:1], seeds=[0], k=2, num_inference_steps=2, sets=("massive",),
                   ablations=("zero",), scorer="none")
    assert "shape_acc" not in none.metrics["zero/massive"] and none.params["scorer"] is None
    t = transport(tiny_lens, pairs=[PROMPTS], seeds=[0], alphas=(1.0,), k=4, num_inference_steps=2,
                  scorer=Brightness(), spatial="subject")
    assert set(t.success) == {1.0} and t.params["scorer"] == "brightness"
    left = np.zeros((1, 32, 32), bool)
    left[:, :, :16] = True  # a user's subject mask for the one pair: the left half
    given = transport(tiny_lens, pairs=[PROMPTS], seeds=[0], alphas=(1.0,), k=4, num_inference_steps=2,
                      spatial="subject", masks=left, scorer="none")
    assert given.params["masks"] == "argument" and not given.success
    assert given.tokens == [r * 16 + c for r in range(16) for c in range(8)]  # the left half of the token grid
    assert t.tokens and len(t.tokens) < 256  # the scorer's subject: some tokens, not all
    with pytest.raises(ValueError, match="would be unused"):
        transport(tiny_lens, pairs=[PROMPTS], seeds=[0], num_inference_steps=2, masks=left)
    with pytest.raises(ValueError, match="cannot score this run"):
        disrupt(tiny_lens, prompts=PROMPTS[:1], k=2, num_inference_steps=2, scorer=Brightness(),
                pipeline={"output_type": "latent"})
    url = str(tmp_path / "m.zarr")
    record(tiny_lens, url, PROMPTS, seeds=[0], names="double.*.img.resid_post", num_inference_steps=2,
           progress=False)
    files = []
    for i in range(2):  # a user's mask images: the left half is the subject, at image resolution
        mask = np.zeros((32, 32), np.uint8)
        mask[:, :16] = 255
        files.append(tmp_path / f"mask{i}.png")
        Image.fromarray(mask).save(files[-1])
    c = cluster(url, k=4, steps=[1], masks=[str(f) for f in files])
    assert c.params["masks"] == "argument" and c.masks.shape == (2, 16, 16) and c.masks[:, :, :8].all()
    by_scorer = cluster(url, k=4, steps=[1], scorer=Brightness())
    assert by_scorer.params["masks"] == "brightness"
    assert cluster(url, k=4, steps=[1], scorer="none").masks is None
    with pytest.raises(FileNotFoundError, match="no such files"):
        cluster(url, masks=["nowhere.png", "nowhere.png"])
    labels = np.array([[0, 1], [1, 1]])
    assert agreement(labels, 1 - labels, 2) == 1.0 and agreement(labels, np.zeros_like(labels), 2) == 0.75
