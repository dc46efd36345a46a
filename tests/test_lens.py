"""Lens behaviour beyond the per-architecture contract: names, errors, edit kinds, caches, remote=local, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import dit_lens
from dit_lens import Lens, add, patch, scale, set_to, zero
from dit_lens.names import expand, parse
from dit_lens.testing import ROWS

STEPS = 3


@pytest.fixture(scope="module")
def flux_lens():
    pipe, kw = ROWS["flux"].build()
    return Lens(pipe, example=dict(kw, num_inference_steps=1)), kw


def test_parse_and_glob():
    assert str(parse("double.3.img.resid_post")) == "double.3.img.resid_post"
    valid = ["double.0.img.resid_post", "double.1.img.resid_post", "single.0.img.resid_post"]
    assert expand("double.*.img.resid_post", valid) == valid[:2]
    assert expand(["single.0.img.resid_post", "double.0.*"], valid) == [valid[0], valid[2]]
    with pytest.raises(KeyError, match="family 'triple'"):
        parse("triple.0.img.resid_post")


def test_unknown_name_names_ranges_and_closest(flux_lens):
    lens, _ = flux_lens
    with pytest.raises(KeyError) as e:
        lens.names("double.7.img.resid_post")
    msg = str(e.value)
    assert "double.0-1" in msg and "single.0-1" in msg and "closest match: 'double.1.img.resid_post'" in msg
    with pytest.raises(KeyError, match="not a canonical name"):
        lens.names("transformer_blocks.0")


def test_bad_indices_fail_before_running(flux_lens):
    lens, kw = flux_lens
    tokens, channels = lens.shape("double.0.img.resid_post")
    cases = [
        (dict(channels=[channels]), f"channels index {channels} out of range"),
        (dict(tokens=[tokens + 3]), "tokens index"),
        (dict(steps=[STEPS]), "steps index"),
    ]
    for where, msg in cases:
        with pytest.raises(IndexError, match=msg):
            lens.generate(num_inference_steps=STEPS, seed=0, edits=[zero("double.0.img.resid_post", **where)], **kw)
    with pytest.raises(ValueError, match="num_inference_steps is required"):
        lens.generate(seed=0, **kw)
    with pytest.raises(IndexError, match="cache_steps"):
        lens.generate(num_inference_steps=STEPS, cache="double.0.img.resid_post", cache_steps=[5], **kw)
    with pytest.raises(ValueError, match="indices must be"):
        zero("double.0.img.resid_post", channels=[-1])


def test_unsupported_architecture_lists_supported():
    from diffusers import DiTTransformer2DModel

    class Pipe:
        transformer = DiTTransformer2DModel(num_layers=1, attention_head_dim=8, num_attention_heads=2, in_channels=4,
                                            sample_size=4)
    with pytest.raises(TypeError, match="no adapter for DiTTransformer2DModel.*FluxTransformer2DModel"):
        dit_lens.archs.arch_for(Pipe.transformer)


def test_adapter_mismatch_is_loud(flux_lens, monkeypatch):
    import dataclasses

    from dit_lens import AdapterMismatch, _validate
    from dit_lens.archs import ARCHS

    lens, kw = flux_lens
    arch = ARCHS["FluxTransformer2DModel"]
    wrong = dataclasses.replace(arch, families=(dataclasses.replace(arch.families[0], output="img"),
                                                arch.families[1]))
    with pytest.raises(AdapterMismatch, match=r"transformer_blocks.0 \(double.0\) returned \(Tensor"):
        _validate.probe(lens.pipeline, wrong, dict(kw, num_inference_steps=1))
    wrong = dataclasses.replace(arch, pooled=("guidance", 6))  # None: the tiny config has no guidance embedding
    with pytest.raises(AdapterMismatch, match="declares a pooled text embedding"):
        _validate.probe(lens.pipeline, wrong, dict(kw, num_inference_steps=1))


def test_edit_kinds(flux_lens):
    lens, kw = flux_lens
    name = "single.0.img.resid_post"
    base = lens.generate(num_inference_steps=STEPS, seed=0, cache=name, **kw)
    h = base.cache[name, 1]
    channels = h.shape[-1]
    mean = h.mean(dim=(0, 1))[[3, 4]]
    vec = torch.arange(channels, dtype=torch.float32)
    donor = torch.full_like(h[:, :2, :], 7.0)
    checks = [
        (zero(name, steps=[1], channels=[3]), lambda e: torch.all(e[:, :, 3] == 0)),
        (set_to(name, mean, steps=[1], channels=[3, 4]), lambda e: torch.allclose(e[:, :, [3, 4]], mean.expand(
            h.shape[0], h.shape[1], 2))),
        (scale(name, 2.0, steps=[1], tokens=[0, 1]), lambda e: torch.equal(e[:, :2], h[:, :2] * 2)
         and torch.equal(e[:, 2:], h[:, 2:])),
        (add(name, vec, steps=[1]), lambda e: torch.allclose(e, h + vec)),
        (patch(name, {1: donor}, tokens=[0, 1]), lambda e: torch.all(e[:, :2] == 7.0) and torch.equal(e[:, 2:],
                                                                                                      h[:, 2:])),
    ]
    for edit, ok in checks:
        g = lens.generate(num_inference_steps=STEPS, seed=0, cache=name, edits=[edit], **kw)
        assert ok(g.cache[name, 1]), edit.kind
        assert torch.equal(g.cache[name, 0], base.cache[name, 0]), edit.kind


def test_patch_value_shape_mismatch_is_an_error(flux_lens):
    lens, kw = flux_lens
    with pytest.raises(Exception, match="does not fit the selection"):
        lens.generate(num_inference_steps=STEPS, seed=0, edits=[
            patch("single.0.img.resid_post", torch.zeros(3, 5), channels=[1, 2])], **kw)


def test_each_edit_kind_identical_under_remote_local(flux_lens):
    lens, kw = flux_lens
    name = "double.1.img.resid_post"
    edits = [zero(name, steps=[1], channels=[0, 3]), set_to(name, 0.5, steps=[0], channels=[1]),
             scale("single.0.txt.resid_pre", 2.0, steps=[2]), add(name, torch.ones(32), steps=[1]),
             patch(name, {2: torch.zeros(2, 16, 32)})]
    for edit in edits:
        local = lens.generate(num_inference_steps=STEPS, seed=0, edits=[edit], cache="single.1.img.resid_post", **kw)
        remote = lens.generate(num_inference_steps=STEPS, seed=0, edits=[edit], cache="single.1.img.resid_post",
                               remote="local", **kw)
        assert torch.equal(local.images, remote.images), edit.kind
        assert all(torch.equal(local.cache[k], remote.cache[k]) for k in local.cache)


def test_run_with_cache_and_stack(flux_lens):
    lens, kw = flux_lens
    images, cache = lens.run_with_cache(names="*.*.img.resid_post", num_inference_steps=STEPS, steps=[0, 2], seed=0,
                                        **kw)
    assert cache.steps == [0, 2]
    assert cache.names == lens.names("*.*.img.resid_post")
    assert cache.stack("double.0.img.resid_post").shape == (2, 2, 16, 32)


def test_in_trace_api(flux_lens):
    lens, kw = flux_lens
    with lens.trace(num_inference_steps=STEPS, seed=0, **kw) as tracer:
        seen = list().save()
        for step in tracer.dit.steps():
            h = tracer.dit.read("double.1.img.resid_post")
            seen.append((step.index, tuple(h.shape)))
            if step.index == 1:
                tracer.dit.write("double.1.img.resid_post", h * 0)
        out = lens.model.output.save()
    assert seen == [(0, (2, 16, 32)), (1, (2, 16, 32)), (2, (2, 16, 32))]
    g = lens.generate(num_inference_steps=STEPS, seed=0, edits=[zero("double.1.img.resid_post", steps=[1])], **kw)
    assert torch.equal(out.images, g.images)


def test_pooled_embedding_read_and_set_per_step(flux_lens):
    lens, kw = flux_lens
    seen = []
    same = lens.generate(num_inference_steps=STEPS, seed=0, on_step=lambda run, step: (
        seen.append(tuple(run.pooled().shape)), run.set_pooled(run.pooled())), **kw)
    base = lens.generate(num_inference_steps=STEPS, seed=0, **kw)
    assert seen == [(2, 32)] * STEPS
    assert torch.equal(same.images, base.images)
    zeroed = lens.generate(num_inference_steps=STEPS, seed=0, on_step=lambda run, step: run.set_pooled(
        run.pooled() * 0) if step.index == 2 else None, **kw)
    assert not torch.equal(zeroed.images, base.images), "setting the pooled embedding changed nothing"
    pipe, pkw = ROWS["pixart"].build()
    plens = Lens(pipe, example=dict(pkw, num_inference_steps=1))
    assert plens.arch.pooled is None
    with pytest.raises(ValueError, match="no pooled text embedding"):
        plens.generate(num_inference_steps=1, seed=0, on_step=lambda run, step: run.pooled(), **pkw)


def test_cli_names_json(capsys):
    from dit_lens.cli import main

    assert main(["names", "--json", "double.*.img.resid_post"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["transformer"] == "FluxTransformer2DModel"
    assert list(info["names"]) == ["double.0.img.resid_post", "double.1.img.resid_post"]
    assert info["names"]["double.1.img.resid_post"] == {"tokens": 256, "channels": 128, "depth": 1}
    assert main(["names", "double.9.img.resid_post"]) == 2
    assert "closest match" in capsys.readouterr().err


def test_load_from_save_pretrained_folder(tmp_path, flux_lens):
    lens, kw = flux_lens
    lens.pipeline.save_pretrained(tmp_path)
    absent = dict(vae=None, text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None)
    loaded = Lens(str(tmp_path), example=dict(kw, num_inference_steps=1), **absent)
    assert loaded.names() == lens.names()
    a = loaded.generate(num_inference_steps=2, seed=0, **kw).images
    b = lens.generate(num_inference_steps=2, seed=0, **kw).images
    assert torch.equal(a, b)


def test_miscounted_cfg_calls_are_an_error_not_mislabelled_steps():
    import dataclasses

    pipe, kw = ROWS["flux_true_cfg"].build()
    lens = Lens(pipe, example=dict(kw, num_inference_steps=1))
    lens.arch = dataclasses.replace(lens.arch, sequential_cfg=None)  # an adapter that forgot the true-CFG rule
    with pytest.raises(RuntimeError, match="did not call the transformer once per step"):
        lens.generate(num_inference_steps=STEPS, seed=0, cache="double.0.img.resid_post", **kw)


def test_fewer_calls_than_expected_is_an_error(flux_lens):
    import copy
    import dataclasses

    from dit_lens.archs import SequentialCFG

    lens, kw = flux_lens
    wrong = copy.copy(lens)
    wrong.arch = dataclasses.replace(lens.arch, sequential_cfg=SequentialCFG("made_up_scale", 5.0, ()))
    with pytest.raises(RuntimeError, match="did not call the transformer once per step"):
        wrong.generate(num_inference_steps=STEPS, seed=0, cache="double.0.img.resid_post", **kw)


def test_steps_are_the_ones_the_scheduler_runs_custom_sigmas(flux_lens):
    lens, kw = flux_lens
    sig = dict(kw, sigmas=[1.0, 0.6, 0.3])
    assert lens.steps_of(5, **sig) == 3 and lens.steps_of(5, **kw) == 5
    g = lens.generate(num_inference_steps=5, seed=0, cache="double.1.img.resid_post", **sig)
    assert g.cache.steps == [0, 1, 2] and g.timesteps == pytest.approx([1.0, 0.6, 0.3])
    edited = lens.generate(num_inference_steps=5, seed=0, cache="double.1.img.resid_post",
                           edits=[zero("double.1.img.resid_post", steps=[2], channels=[4])], **sig)
    assert torch.all(edited.cache["double.1.img.resid_post", 2][:, :, 4] == 0)
    assert torch.equal(edited.cache["double.1.img.resid_post", 1], g.cache["double.1.img.resid_post", 1])
    with pytest.raises(IndexError, match="steps index 3 out of range"):
        lens.generate(num_inference_steps=5, seed=0, edits=[zero("double.1.img.resid_post", steps=[3])], **sig)


def test_img2img_strength_reads_and_edits_by_the_steps_it_runs():
    from dit_lens.testing import lens as row_lens

    lens, kw = row_lens("flux_img2img")
    assert lens.steps_of(4, **kw) == 2 and lens.steps_of(4, **dict(kw, strength=1.0)) == 4
    name = "single.1.img.resid_post"
    base = lens.generate(num_inference_steps=4, seed=0, cache=name, **kw)
    assert base.cache.steps == [0, 1] and base.timesteps == pytest.approx([0.5, 0.25])
    ours = lens.generate(num_inference_steps=4, seed=0, cache=name, edits=[zero(name, steps=[1], channels=[3])],
                         **kw)
    assert torch.equal(ours.cache[name, 0], base.cache[name, 0]) and torch.all(ours.cache[name, 1][:, :, 3] == 0)
    with pytest.raises(IndexError, match="steps index 2 out of range"):
        lens.generate(num_inference_steps=4, seed=0, edits=[zero(name, steps=[2])], **kw)


def test_steps_asked_for_but_not_run_are_an_error(flux_lens, monkeypatch):
    lens, kw = flux_lens
    monkeypatch.setattr(lens, "steps_of", lambda n, **k: 6)  # a pipeline whose shortening the lens mispredicts
    with pytest.raises(RuntimeError, match=r"steps \[4\] were asked for, but the run made 3 steps"):
        lens.generate(num_inference_steps=STEPS, seed=0, edits=[zero("double.0.img.resid_post", steps=[4])], **kw)


def test_token_indices_are_checked_per_cfg_branch():
    from dit_lens.errors import OutOfRangeError
    from dit_lens.testing import lens as row_lens

    lens, kw = row_lens("qwenimage")
    neg = dict(kw, negative_prompt_embeds=kw["negative_prompt_embeds"][:, :4],
               negative_prompt_embeds_mask=kw["negative_prompt_embeds_mask"][:, :4])
    name = "double.0.txt.resid_post"
    with pytest.raises(OutOfRangeError, match=r"tokens index 5 out of range \(valid 0..3 in the uncond calls\)"):
        lens.generate(num_inference_steps=2, seed=0, edits=[zero(name, tokens=[5])], **neg)
    g = lens.generate(num_inference_steps=2, seed=0, cache=name, edits=[zero(name, tokens=[5], cfg="cond")], **neg)
    assert g.cache[name, 1, "cond"].shape[1] == 6 and g.cache[name, 1, "uncond"].shape[1] == 4
    assert torch.all(g.cache[name, 1, "cond"][:, 5] == 0)
    tiny = Lens("tiny")  # prompts: their text length is known in the run only, checked at its first call
    with pytest.raises(OutOfRangeError, match=r"tokens index 12 out of range \(valid 0..9 in step 0\)"):
        tiny.generate(["a red circle on a blue background"], num_inference_steps=3, seed=0,
                      edits=[zero("double.0.txt.resid_post", tokens=[12], steps=[2])])


def test_image_token_indices_follow_the_calls_resolution(flux_lens):
    lens, kw = flux_lens
    assert lens.shape("double.0.img.resid_post")[0] == 16  # the dry run: 64 x 64
    big = dict(kw, height=128, width=128)
    g = lens.generate(num_inference_steps=2, seed=0, cache="double.0.img.resid_post",
                      edits=[zero("double.0.img.resid_post", tokens=[40], channels=[1])], **big)
    assert g.cache["double.0.img.resid_post", 0].shape[1] == 64
    assert torch.all(g.cache["double.0.img.resid_post", 0][:, 40, 1] == 0)
    with pytest.raises(IndexError, match="tokens index 40 out of range"):
        lens.generate(num_inference_steps=2, seed=0, edits=[zero("double.0.img.resid_post", tokens=[40])], **kw)


@pytest.mark.parametrize("key", ["flux_img2img", "flux_inpaint", "flux_kontext", "sd3_img2img", "qwen_img2img",
                                 "flux2_klein_edit"])
def test_image_conditioned_pipelines_read_and_edit_by_the_steps_they_run(key):
    """img2img, inpainting and editing pipelines of Flux, SD3, Qwen-Image and FLUX.2: the steps are the ones the
    scheduler runs, and an edit at the last one equals a plain torch hook on that step's transformer calls."""
    from dit_lens.testing import lens as row_lens

    lens, kw = row_lens(key)
    n, calls = lens.steps_of(4, **kw), lens.calls_per_step(**kw)
    name = "double.0.img.resid_post"
    g = lens.generate(num_inference_steps=4, seed=0, cache=name, **kw)
    assert g.cache.steps == list(range(n)) and len(g.timesteps) == n
    edited = lens.generate(num_inference_steps=4, seed=0, cache=name, edits=[zero(name, steps=[n - 1], channels=[1])],
                           **kw)
    seen = {"calls": 0}

    def hook(m, a, k, out):  # double.0 returns (txt, img): zero channel 1 of the image stream at the last step
        seen["calls"] += 1
        if (seen["calls"] - 1) // calls == n - 1:
            img = out[1].clone()
            img[:, :, 1] = 0
            return out[0], img
    h = lens.pipeline.transformer.transformer_blocks[0].register_forward_hook(hook, with_kwargs=True)
    try:
        hooked = lens.pipeline(num_inference_steps=4, generator=[torch.Generator().manual_seed(i) for i in range(2)],
                               **kw).images
    finally:
        h.remove()
    assert seen["calls"] == n * calls
    assert np.array_equal(np.asarray(hooked), np.asarray(edited.images))
    for b in g.cache.branches:
        assert torch.equal(edited.cache[name, n - 2, b], g.cache[name, n - 2, b])
        assert torch.all(edited.cache[name, n - 1, b][:, :, 1] == 0)
