"""The paper's method as dit-lens runs it: transport under a per-sample cluster mask (the K=2 clustering of image
tokens on the massive channels, target and source), timestep windows, and windowed disruption read against the
detail-guidance counter-claim; on the embedded model (scored by its evaluator) and on a tiny random Flux (no ground
truth, no scorer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dit_lens import Lens, disrupt, patch, transport, zero
from dit_lens.errors import ArgumentError, OutOfRangeError, RecipeError
from dit_lens.recipes._intervals import wilson
from dit_lens.recipes._windows import window_steps
from dit_lens.recipes.cluster import agreement, subject_tokens
from dit_lens.testing import lens as row_lens

PAIRS = [("a red circle on a blue background", "a green circle on a blue background"),
         ("a yellow square on a black background", "a white square on a black background")]
NAME = "single.1.img.resid_post"


@pytest.fixture(scope="module")
def tiny():
    return Lens("tiny")


def test_a_patch_mask_moves_only_the_tokens_it_marks_in_each_row():
    h, v = torch.zeros(2, 3, 4), torch.ones(2, 3, 4)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    out = patch("x", v[..., :2], alpha=0.5, mask=mask, channels=[0, 1]).apply(h, 0)
    assert torch.equal(out[..., 0], 0.5 * mask.float()) and torch.equal(out[..., 1], out[..., 0])
    assert not out[..., 2:].any()  # channels outside the selection untouched
    stepwise = patch("x", {3: v}, mask={3: mask}).apply(h, 3)
    assert torch.equal(stepwise[..., 0], mask.float())
    with pytest.raises(ArgumentError, match="mask of shape"):
        patch("x", v, mask=mask[:, :2]).apply(h, 0)
    with pytest.raises(ArgumentError, match="mask steps"):
        patch("x", {3: v}, mask={4: mask})
    with pytest.raises(ArgumentError, match="takes tokens="):
        zero("x").__class__("zero", ("x",), mask=mask)
    with pytest.raises(ArgumentError, match="mask covers"):  # checked against the name before a run
        patch("x", v, mask=mask).check("x", tokens=5, channels=4, num_steps=1)


def test_a_masked_patch_in_a_run_changes_exactly_what_it_marks(tiny):
    base = tiny.generate(PAIRS[0][1:], num_inference_steps=2, seed=0, cache=NAME)
    v = base.cache[NAME, 0, "batch"] + 5.0
    rows, tokens = v.shape[:2]
    none = tiny.generate(PAIRS[0][1:], num_inference_steps=2, seed=0, cache=NAME,
                         edits=[patch(NAME, {0: v}, mask={0: torch.zeros(rows, tokens, dtype=torch.bool)})])
    assert torch.equal(none.cache[NAME, 0, "batch"], base.cache[NAME, 0, "batch"])
    half = torch.zeros(rows, tokens, dtype=torch.bool)
    half[:, : tokens // 2] = True
    some = tiny.generate(PAIRS[0][1:], num_inference_steps=2, seed=0, cache=NAME,
                         edits=[patch(NAME, {0: v}, mask={0: half})])
    got = some.cache[NAME, 0, "batch"]
    assert torch.equal(got[:, : tokens // 2], v[:, : tokens // 2])
    assert torch.equal(got[:, tokens // 2:], base.cache[NAME, 0, "batch"][:, tokens // 2:])


def test_subject_tokens_find_the_blob_and_agree_with_scikit_learn():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 64, 4))
    blob = np.zeros((8, 8), bool)
    blob[2:5, 3:6] = True
    x[:, blob.ravel()] += 4
    m = subject_tokens(x, (8, 8))
    assert (m == blob.ravel()).all()  # the blob, not the border-holding background
    assert all(agreement(KMeans(2, n_init=4, random_state=0).fit_predict(x[i]), m[i].astype(int), 2) == 1.0
               for i in range(6))
    with pytest.raises(RecipeError, match="do not fill"):
        subject_tokens(x, (7, 8))


def test_windows_are_the_runs_thirds():
    assert window_steps("early", 10) == [0, 1, 2, 3] and window_steps("late", 10) == [7, 8, 9]
    assert window_steps("middle", 3) == [1] and window_steps(None, 5) is None and window_steps("all", 5) is None
    assert window_steps([1, 2], 3) == [1, 2]
    with pytest.raises(RecipeError, match="early"):
        window_steps("first", 10)
    with pytest.raises(RecipeError, match="no late third"):
        window_steps("late", 2)
    with pytest.raises(OutOfRangeError):
        window_steps([5], 3)


def test_wilson_intervals_stay_in_range():
    assert wilson([True] * 5) == pytest.approx(dict(mean=1.0, lo=wilson([True] * 5)["lo"], hi=1.0, n=5))
    all_wrong = wilson([False] * 5)
    assert all_wrong["lo"] == 0.0 and 0 < all_wrong["hi"] < 0.5


@pytest.mark.parametrize("row", ["tiny", "flux"])
def test_cluster_masked_transport_by_window(row, tiny, tmp_path):
    """spatial="cluster" needs no ground truth: on a random Flux it runs on the model's own clusters."""
    lens, kw = (tiny, {}) if row == "tiny" else row_lens("flux")
    pairs = PAIRS if row == "tiny" else [("p0", "p1")]
    source = {k: v.flip(0) for k, v in kw.items() if k in ("prompt_embeds", "pooled_prompt_embeds")} or None
    runs: dict = {}
    same = dict(pairs=pairs, seeds=[0, 1], k=2, num_inference_steps=3, pipeline=kw, source_pipeline=source,
                runs=runs, alphas=(1.0,))
    if row == "flux":
        same["names"] = lens.names("*.*.img.resid_post")[-2:]
    late = transport(lens, spatial="cluster", steps="late", **same)
    assert late.params["step_indices"] == [2] and late.params["steps"] == "late"
    assert 0 < late.mask_fraction < 1
    assert (late.images[1.0] != late.images["target"]).any(), "a cluster-masked transport changed nothing"
    everywhere = transport(lens, spatial="all", steps="late", **same)
    assert runs["source"] and (everywhere.images["source"] == late.images["source"]).all()  # shared source run
    if row == "tiny":  # scored: success with Wilson intervals, localisation against pixel blending
        for ci in (late.success_ci[1.0], late.blend_success_ci[1.0]):
            assert 0 <= ci["lo"] <= ci["mean"] <= ci["hi"] <= 1 and ci["n"] == 4
        assert late.localisation[1.0]["n"] == 4 and late.blend_localisation[1.0]["mean"] >= 0
        assert "outside/inside" in late.describe()
    assert late.figure(tmp_path).stat().st_size > 1000
    with pytest.raises(RecipeError, match="'all', 'subject' or 'cluster'"):
        transport(lens, spatial="clusters", **same)
    with pytest.raises(RecipeError, match="a window is one of"):
        transport(lens, spatial="cluster", steps="start", **same)


@pytest.mark.parametrize("row", ["tiny", "flux"])
def test_windowed_disruption_says_which_reading_each_window_supports(row, tiny):
    lens, kw = (tiny, {}) if row == "tiny" else row_lens("flux")
    prompts = [PAIRS[0][0]] if row == "tiny" else kw.pop("prompt", None) or ["p0"]
    names = "*.*.img.resid_post" if row == "tiny" else lens.names("*.*.img.resid_post")[-2:]
    d = disrupt(lens, prompts=prompts[:1], seeds=[0, 1], names=names, k=2, num_inference_steps=3, pipeline=kw,
                ablations=("zero",), sets=("massive", "random"), windows=("early", "late", "all"))
    assert set(d.metrics) == {f"zero/{s}{w}" for s in ("massive", "random") for w in ("@early", "@late", "")}
    assert d.params["window_steps"] == {"early": [0], "late": [2], "all": None}
    readings = d.readings()
    assert set(readings) == {"early", "late", "all"}
    for r in readings.values():
        assert r["supports"] in ("semantic", "detail", "neither")
        if row == "tiny":
            assert set(r["semantic"]) == {"shape_acc", "colour_acc"} and not r["note"]
            assert all(-1 <= v["lo"] <= v["mean"] <= v["hi"] <= 1 for v in r["semantic"].values())
        else:
            assert r["semantic"] == {} and "not measured" in r["note"] and r["supports"] != "semantic"
    with pytest.raises(RecipeError, match="not both"):
        disrupt(lens, prompts=prompts[:1], names=names, k=2, num_inference_steps=3, pipeline=kw, steps=[0],
                windows=("early",))
    with pytest.raises(RecipeError, match="windows="):
        disrupt(lens, prompts=prompts[:1], names=names, k=2, num_inference_steps=3, pipeline=kw, windows=("first",))


def test_every_recipe_file_in_the_repository_checks():
    from pathlib import Path

    from dit_lens.recipes.runner import check_file

    files = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.toml"))
    assert len(files) >= 11
    for f in files:
        name, fn, spec, sweep = check_file(f)
        assert name in ("detect", "disrupt", "cluster", "transport"), f
        for key in ("steps", "windows"):  # windows are named as the recipes resolve them
            for v in [spec.get(key), *sweep.get(key, [])]:
                if isinstance(v, str):
                    window_steps(v, spec.get("num_inference_steps", 20))
