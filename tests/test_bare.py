"""A bare transformer in the user's own sampling loop: the same names, edits, cache and recording as the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dit_lens
from dit_lens import Lens, zero
from dit_lens.errors import ArgumentError, RunError
from dit_lens.tiny.pipeline import image_ids, pack, unpack

PROMPTS = ["a red circle on a blue background", "a green square on a white background"]
STEPS = 3


def _loop(pipe, prompts, generators, num_inference_steps=STEPS, guidance_scale=4.0):
    """The embedded model's sampling written out by hand, as a researcher's own loop: Euler flow matching with
    classifier-free guidance batched as [uncond; cond]."""
    n = len(prompts)
    embeds, pooled = pipe.encode_prompt([""] * n + list(prompts))
    x = pack(torch.stack([torch.randn(3, 32, 32, generator=g) for g in generators]))
    pipe.scheduler.set_timesteps(num_inference_steps)
    txt_ids = torch.zeros(embeds.shape[1], 3)
    with torch.no_grad():
        for t in pipe.scheduler.timesteps:
            v = pipe.transformer(hidden_states=torch.cat([x, x]), encoder_hidden_states=embeds,
                                 pooled_projections=pooled, timestep=(t / 1000.0).expand(2 * n), img_ids=image_ids(),
                                 txt_ids=txt_ids, return_dict=False)[0]
            uncond, cond = v.chunk(2)
            x = pipe.scheduler.step(uncond + guidance_scale * (cond - uncond), t, x, return_dict=False)[0]
    return ((unpack(x).clamp(-1, 1).permute(0, 2, 3, 1).numpy() + 1.0) * 127.5).round().astype(np.uint8)


@pytest.fixture(scope="module")
def lenses():
    pipe = dit_lens.tiny_pipeline()
    embeds, pooled = pipe.encode_prompt(PROMPTS)
    example = dict(hidden_states=torch.zeros(2, 256, 12), encoder_hidden_states=embeds, pooled_projections=pooled,
                   timestep=torch.ones(2), img_ids=image_ids(), txt_ids=torch.zeros(embeds.shape[1], 3),
                   return_dict=False)
    return Lens(pipe), Lens(pipe.transformer, example=example, cfg="batch"), pipe


def _gens():
    return [torch.Generator().manual_seed(i) for i in range(len(PROMPTS))]


def test_a_bare_transformer_loop_gives_the_pipelines_cache_and_edits(lenses):
    piped, bare, pipe = lenses
    assert bare.names() == piped.names() and bare.model is None
    names = "*.*.*.resid_post"
    g = piped.generate(PROMPTS, num_inference_steps=STEPS, generator=_gens(), cache=names)
    with bare.hooks(cache=names) as run:
        images = _loop(pipe, PROMPTS, _gens())
    assert np.array_equal(images, g.images)  # the hand-written loop is the pipeline's
    assert sorted(run.cache) == sorted(g.cache) and run.steps_run == STEPS
    assert all(torch.equal(run.cache[k], g.cache[k]) for k in g.cache)
    assert run.timesteps == pytest.approx(g.timesteps)
    edit = zero("double.1.img.resid_post", steps=[1], channels=[5, 9], cfg="cond")
    ge = piped.generate(PROMPTS, num_inference_steps=STEPS, generator=_gens(), cache="single.0.img.resid_post",
                        edits=[edit], cache_cfg="cond")
    with bare.hooks(cache="single.0.img.resid_post", edits=[edit], cache_cfg="cond") as run:
        edited = _loop(pipe, PROMPTS, _gens())
    assert np.array_equal(edited, ge.images) and not np.array_equal(edited, images)
    assert all(torch.equal(run.cache[k], ge.cache[k]) for k in ge.cache) and run.cache.branches == ["cond"]


def test_bare_transformer_errors(lenses):
    piped, bare, pipe = lenses
    with pytest.raises(ArgumentError, match="use `with lens.hooks"):
        bare.generate(PROMPTS, num_inference_steps=STEPS)
    with pytest.raises(ArgumentError, match="example="):
        Lens(pipe.transformer)
    with pytest.raises(IndexError, match="channels index 500"):
        bare.hooks(edits=[zero("double.0.img.resid_post", channels=[500])])
    with pytest.raises(RunError, match=r"steps \[7\] were asked for, but the loop made 3 steps"):
        with bare.hooks(edits=[zero("double.0.img.resid_post", steps=[7])]):
            _loop(pipe, PROMPTS, _gens())
    plain = Lens(pipe.transformer, example=bare.example)  # no CFG declared
    with pytest.raises(ArgumentError, match="on a loop without CFG"):
        with plain.hooks(edits=[zero("double.0.img.resid_post", cfg="cond")]):
            _loop(pipe, PROMPTS, _gens())


def test_recording_a_bare_transformer_through_the_users_loop(lenses, tmp_path):
    piped, bare, pipe = lenses
    kw = dict(names="*.*.img.resid_post", num_inference_steps=STEPS, progress=False)
    dit_lens.record(piped, str(tmp_path / "p.zarr"), PROMPTS, seeds=[0], batch_size=2, **kw)
    dit_lens.record(bare, str(tmp_path / "b.zarr"), PROMPTS, seeds=[0], batch_size=2,
                    loop=lambda prompts, generators, num_inference_steps: _loop(pipe, prompts, generators,
                                                                                 num_inference_steps), **kw)
    a, b = (dit_lens.open_store(str(tmp_path / f)) for f in ("p.zarr", "b.zarr"))
    assert bool(b.complete.all()) and np.array_equal(a["img.resid_post"].values, b["img.resid_post"].values)
    assert np.array_equal(a.image.values, b.image.values)
    with pytest.raises(ArgumentError, match="loop="):
        dit_lens.record(bare, str(tmp_path / "c.zarr"), PROMPTS, **kw)


def test_a_recording_whose_loop_makes_more_steps_than_asked_flags_nothing(lenses, tmp_path):
    _, bare, pipe = lenses
    kw = dict(names="*.*.img.resid_post", num_inference_steps=STEPS, progress=False, batch_size=2)
    url = str(tmp_path / "more.zarr")
    with pytest.raises(RunError, match=f"ran {STEPS + 1} steps, {STEPS} expected"):
        dit_lens.record(bare, url, PROMPTS, loop=lambda p, g, num_inference_steps: _loop(pipe, p, g, STEPS + 1), **kw)
    assert not dit_lens.open_store(url).complete.values.any()  # the steps it made were written, none flagged


def test_a_call_that_misses_a_name_or_takes_one_twice_is_an_error():
    from types import SimpleNamespace

    from dit_lens._collect import Hooked
    from dit_lens._stats import StepReducer

    def run(index):
        return SimpleNamespace(step=SimpleNamespace(index=index, call=index, branch="batch",
                                                    timestep=torch.ones(1)), rows=lambda h, cfg: h)
    taken = []
    hooked = Hooked(["a", "b"], "cond", {0, 1}, 2, None, False, StepReducer(2),
                    emit=lambda name, h: taken.append((hooked.step, name)), check=None)
    h = torch.ones(1, 4, 3)
    hooked.value(run(0), "a", h)
    hooked.value(run(0), "b", h)
    assert hooked.end(run(0))[0] == 0 and taken == [(0, "a"), (0, "b")]
    hooked.value(run(1), "a", h)
    with pytest.raises(RunError, match=r"call 1 \(step 1\) produced no value of \['b'\]"):
        hooked.end(run(1))
    for name in ("a", "a", "b"):
        hooked.value(run(1), name, h)
    with pytest.raises(RunError, match=r"\['a'\] more than once"):
        hooked.end(run(1))
    hooked.value(run(2), "a", h)  # a call past the recorded steps: counted by the run, not taken
    assert hooked.end(run(2)) is None and len(taken) == 6
