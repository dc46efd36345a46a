"""Bad input gets a clear error before any work starts: one row per case a user (or a hostile tester) tried."""

from __future__ import annotations

import pytest
import torch

from dit_lens import Lens, add, patch, record, scale, set_to, zero
from dit_lens.errors import DitLensError
from dit_lens.testing import lens as row_lens

NAME = "double.0.img.resid_post"


@pytest.fixture(scope="module")
def flux():
    return row_lens("flux")


@pytest.fixture(scope="module")
def tiny():
    return Lens("tiny")


EDITS = [  # (id, builder, message)
    ("float channel", lambda: zero(NAME, channels=[1.7]), "channels: 1.7 is not an integer index"),
    ("bool token", lambda: zero(NAME, tokens=[True]), "booleans are not indices"),
    ("string step", lambda: zero(NAME, steps=["1"]), "steps: '1' is not an integer index"),
    ("NaN add", lambda: add(NAME, torch.tensor([float("nan")] * 32)), "add vector holds inf or NaN"),
    ("inf set", lambda: set_to(NAME, float("inf")), "set_to value holds inf or NaN"),
    ("text scale", lambda: scale(NAME, "abc"), "scale factor='abc' is not a number"),
    ("NaN scale", lambda: scale(NAME, float("nan")), "scale factor holds inf or NaN"),
    ("string step key", lambda: patch(NAME, {"1": torch.zeros(2, 16, 32)}), "patch step key: '1' is not an"),
    ("empty patch", lambda: patch(NAME, {}), "mapping is empty"),
    ("no names", lambda: zero([]), "needs canonical names"),
    ("bad cfg", lambda: zero(NAME, cfg="bogus"), "cfg='bogus'"),
    ("negative channel", lambda: zero(NAME, channels=[-1]), "non-negative integers"),
]


@pytest.mark.parametrize("case, build, message", EDITS, ids=[e[0] for e in EDITS])
def test_edits_refuse_bad_values(case, build, message):
    with pytest.raises(DitLensError, match=message):
        build()


def test_a_tensor_step_key_is_an_integer_step(flux):
    lens, kw = flux
    g = lens.generate(num_inference_steps=2, seed=0, cache=NAME,
                      edits=[patch(NAME, {torch.tensor(1): torch.zeros(2, 16, 32)})], **kw)
    assert torch.all(g.cache[NAME, 1] == 0)


GENERATE = [  # (id, call keyword arguments on top of the row's, message)
    ("fractional steps", dict(num_inference_steps=2.7), "num_inference_steps=2.7: expected a whole number"),
    ("zero steps", dict(num_inference_steps=0), "num_inference_steps=0"),
    ("list seed", dict(num_inference_steps=2, seed=[0, 1]), "seed=\\[0, 1\\]: one integer"),
    ("bogus cache_cfg", dict(num_inference_steps=2, cache="*", cache_cfg="bogus"), "cache_cfg='bogus'"),
    ("float cache step", dict(num_inference_steps=2, cache="*", cache_steps=[0.5]), "cache_steps: 0.5"),
]


@pytest.mark.parametrize("case, extra, message", GENERATE, ids=[g[0] for g in GENERATE])
def test_generate_refuses_bad_calls(flux, case, extra, message):
    lens, kw = flux
    with pytest.raises(DitLensError, match=message):
        lens.generate(**{**kw, **extra})


def test_empty_prompts_and_bad_models(tiny, tmp_path):
    with pytest.raises(DitLensError, match="the prompt list is empty"):
        tiny.generate([], num_inference_steps=2)
    with pytest.raises(DitLensError, match="Lens takes a diffusers pipeline"):
        Lens(123)
    with pytest.raises(DitLensError, match="no such folder '/nonexistent/pipe'"):
        Lens("/nonexistent/pipe")
    with pytest.raises(DitLensError, match="has no model_index.json"):
        Lens(str(tmp_path))
    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(DitLensError, match="is not valid JSON"):
        Lens(str(tmp_path))


RECORD = [  # (id, record keyword arguments, message)
    ("empty prompts", dict(prompts=[]), "at least one prompt and one seed"),
    ("empty seeds", dict(seeds=[]), "at least one prompt and one seed"),
    ("empty steps", dict(steps=[]), "steps=\\[\\]"),
    ("negative sample", dict(samples=[-1]), "samples \\[-1\\] out of range"),
    ("sample beyond", dict(samples=[99]), "samples \\[99\\] out of range: the store has samples 0..1"),
    ("float sample", dict(samples=[0.5]), "samples: 0.5 is not an integer index"),
    ("zero batch", dict(batch_size=0), "batch_size=0"),
    ("float image tokens", dict(img_tokens=[0.5, 1.9]), "img_tokens: 0.5 is not an integer index"),
    ("bogus cfg", dict(cfg="bogus"), "cfg='bogus'"),
    ("fractional steps", dict(num_inference_steps=2.7), "num_inference_steps=2.7"),
]


@pytest.mark.parametrize("case, extra, message", RECORD, ids=[r[0] for r in RECORD])
def test_record_refuses_bad_arguments_and_leaves_no_store(tiny, tmp_path, case, extra, message):
    url = tmp_path / "s.zarr"
    args = {"prompts": ["a red circle on a blue background"], "seeds": [0, 1], "num_inference_steps": 2,
            "names": NAME, "progress": False, **extra}
    with pytest.raises(DitLensError, match=message):
        record(tiny, str(url), args.pop("prompts"), **args)
    assert not url.exists() and not (tmp_path / "s.zarr.claims").exists()


def test_a_file_where_a_store_should_be(tiny, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a store")
    with pytest.raises(DitLensError, match="is a file, not a store"):
        record(tiny, str(path), ["a red circle on a blue background"], num_inference_steps=2, progress=False)
    assert path.read_text() == "not a store"


def test_recipe_arguments_of_the_wrong_type(tmp_path):
    from dit_lens.recipes import run_file

    recipe = tmp_path / "d.toml"
    recipe.write_text('recipe = "detect"\nmodel = "tiny"\nk = "four"\n'
                      'prompts = ["a red circle on a blue background"]\n')
    with pytest.raises(DitLensError, match="k='four': expected int"):
        run_file(recipe, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_cli_answers_in_one_line(tmp_path, capsys):
    from dit_lens.cli import main

    assert main(["record", str(tmp_path / "s.zarr"), "--prompts", "x", "--storage-options", "{not json"]) == 2
    err = capsys.readouterr().err
    assert "--storage-options is not JSON" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["record", str(tmp_path / "s.zarr"), "--prompts", "x", "--guidance-scale", "nan"]) == 2
    assert "--guidance-scale nan: expected a finite number" in capsys.readouterr().err
    assert main(["record", str(tmp_path / "s.zarr"), "--model", "/nonexistent/pipe", "--prompts", "x"]) == 2
    assert "no such folder '/nonexistent/pipe'" in capsys.readouterr().err
    assert main(["record", str(tmp_path / "s.zarr"), "--prompts", "x", "--write-threads", "0"]) == 2
    err = capsys.readouterr().err
    assert "--write-threads=0: expected a whole number >= 1" in err and "loading" not in err  # before any model
    recipe, out = tmp_path / "d.toml", tmp_path / "out.txt"
    recipe.write_text('recipe = "detect"\nstore = "x.zarr"\n')
    out.write_text("")
    assert main(["run", str(recipe), "--out", str(out)]) == 2
    assert "is a file: give a folder" in capsys.readouterr().err
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert capsys.readouterr().out.startswith("dit-lens ")


def test_record_cli_refuses_an_existing_store_before_loading_and_says_when_there_is_nothing_to_do(tmp_path, capsys):
    from dit_lens.cli import main

    url = str(tmp_path / "s.zarr")
    args = ["record", url, "--prompts", "a red circle on a blue background", "--num-inference-steps", "2",
            "--names", "double.0.img.resid_post", "--stats-only"]
    assert main(args) == 0
    assert "recorded 1 samples (1 of 1 complete)" in capsys.readouterr().out
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already exists: pass --resume" in err and "loading" not in err  # refused before the model loads
    assert main(args + ["--resume"]) == 0
    assert "nothing to do: all 1 samples" in capsys.readouterr().out


def test_guiders_that_change_calls_per_step_are_refused_before_the_run():
    """HunyuanImage runs CFG through guider components: guiders that disagree, guide over a window of steps, or
    make more than two calls per step are clear errors, not miscounted steps."""
    import diffusers

    lens, kw = row_lens("hunyuanimage")
    assert lens.calls_per_step(**kw) == 2
    pipe = lens.pipeline
    guider, ocr = pipe.guider, pipe.ocr_guider
    try:
        pipe.ocr_guider = diffusers.AdaptiveProjectedMixGuidance(enabled=False)
        with pytest.raises(DitLensError, match="guiders .* differ in calls per step"):
            lens.generate(num_inference_steps=2, **kw)
        pipe.ocr_guider = diffusers.AdaptiveProjectedMixGuidance(start=0.5)
        with pytest.raises(DitLensError, match="guides only from 0.5 to 1.0"):
            lens.generate(num_inference_steps=2, **kw)
        pipe.guider = pipe.ocr_guider = diffusers.AdaptiveProjectedMixGuidance(enabled=False)
        assert lens.calls_per_step(**kw) == 1
        assert lens.generate(num_inference_steps=2, cache="double.0.img.resid_post", **kw).cache.branches == ["cond"]
    finally:
        pipe.guider, pipe.ocr_guider = guider, ocr


def test_a_keyword_an_adapter_cannot_follow_is_refused():
    lens, kw = row_lens("glm_image")
    with pytest.raises(DitLensError, match="image= is not supported.*condition image"):
        lens.generate(num_inference_steps=2, image=[torch.zeros(3, 64, 32)], **kw)
