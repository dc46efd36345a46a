"""Pipelines in the states people load them in: dtypes, offloading, layerwise casting, quantized weights, LoRA —
reads equal plain torch hooks and edits apply in each; states the lens cannot trace are clear errors."""

from __future__ import annotations

import warnings

import pytest
import torch

from dit_lens import Lens, zero
from dit_lens.errors import ArgumentError, UnsupportedModelError
from dit_lens.testing import ROWS
from dit_lens.testing import lens as row_lens

ROW_KEYS = ["flux", "flux2_klein", "flux2_klein_distilled", "qwenimage", "sd3"]
NAME = "double.0.img.resid_post"  # every one of these rows' double blocks return (txt, img)


def _cast(kw, dtype):
    return {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in kw.items()}


def _bf16(pipe, kw):
    pipe.to(torch.bfloat16)
    return _cast(kw, torch.bfloat16)


def _fp16(pipe, kw):
    pipe.to(torch.float16)
    return _cast(kw, torch.float16)


def _layerwise(pipe, kw):
    pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    return kw


def _group_offload(pipe, kw):
    cpu = torch.device("cpu")
    pipe.transformer.enable_group_offload(onload_device=cpu, offload_device=cpu, offload_type="block_level",
                                          num_blocks_per_group=1)
    return kw


def _model_offload(pipe, kw):
    pipe.enable_model_cpu_offload(device="cpu")  # accelerate's hooks, re-added by diffusers after every call
    return kw


def _torchao(pipe, kw):
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(pipe.transformer, Int8WeightOnlyConfig())
    return kw


def _quanto(pipe, kw):
    from optimum.quanto import freeze, qint8, quantize

    quantize(pipe.transformer, weights=qint8)
    freeze(pipe.transformer)
    return kw


def _lora(pipe, kw, tmp_path):
    """A LoRA made with peft on another copy of the transformer, saved as safetensors, loaded from the folder."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    donor = type(pipe.transformer)(**pipe.transformer.config)
    donor.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"],
                                 init_lora_weights=False))
    type(pipe).save_lora_weights(tmp_path, transformer_lora_layers=get_peft_model_state_dict(donor))
    pipe.load_lora_weights(tmp_path, adapter_name="test")
    return kw


MODES = {"float32": lambda p, kw, t: kw, "bfloat16": lambda p, kw, t: _bf16(p, kw),
         "float16": lambda p, kw, t: _fp16(p, kw), "layerwise casting": lambda p, kw, t: _layerwise(p, kw),
         "group offload": lambda p, kw, t: _group_offload(p, kw), "model CPU offload": lambda p, kw, t:
         _model_offload(p, kw), "torchao int8": lambda p, kw, t: _torchao(p, kw),
         "quanto int8": lambda p, kw, t: _quanto(p, kw), "LoRA": _lora}


def _hooked(pipe, kw, steps):
    """Every call's image stream of double.0 by a plain torch forward hook."""
    seen = []
    handle = pipe.transformer.transformer_blocks[0].register_forward_hook(
        lambda m, a, k, out: seen.append(out[1].detach().clone()), with_kwargs=True)
    try:
        pipe(num_inference_steps=steps, generator=[torch.Generator().manual_seed(i) for i in range(2)], **kw)
    finally:
        handle.remove()
    return seen


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("key", ROW_KEYS)
def test_reads_equal_plain_hooks_and_edits_apply(key, mode, tmp_path):
    pipe, kw = ROWS[key].build()
    kw = MODES[mode](pipe, kw, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # float16's range warning, tested below
        lens = Lens(pipe, example=dict(kw, num_inference_steps=1))
    g = lens.generate(num_inference_steps=2, seed=0, cache=NAME, **kw)
    calls = [(s, b) for s in range(2) for b in g.cache.branches]  # the order the pipeline calls the transformer
    hooked = _hooked(pipe, kw, 2)
    assert len(hooked) == len(calls)
    for (s, b), h in zip(calls, hooked):
        value = g.cache[NAME, s, b]
        assert value.dtype == h.dtype and torch.equal(value, h), (mode, s, b)
    edited = lens.generate(num_inference_steps=2, seed=0, cache=NAME, edits=[zero(NAME, steps=[1], channels=[2])],
                           **kw)
    assert all(torch.all(edited.cache[NAME, 1, b][:, :, 2] == 0) for b in edited.cache.branches)
    assert all(torch.equal(edited.cache[NAME, 0, b], g.cache[NAME, 0, b]) for b in g.cache.branches)


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("key", ROW_KEYS)
def test_a_recording_by_hooks_equals_one_in_a_trace(key, mode, tmp_path, monkeypatch):
    import importlib

    import numpy as np

    import dit_lens

    rec = importlib.import_module("dit_lens.record")  # the module (the package exports the function by its name)
    pipe, kw = ROWS[key].build()
    kw = MODES[mode](pipe, kw, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lens = Lens(pipe, example=dict(kw, num_inference_steps=1))
    kw = dict(kw)
    prompts = kw.pop("prompt", None) or ["x", "y"]  # embeddings-driven rows: one row per sample
    got = []
    for traced in (True, False):
        monkeypatch.setattr(rec, "_TRACED", traced)
        url = str(tmp_path / f"{traced}.zarr")
        rec.record(lens, url, prompts, names=[NAME], num_inference_steps=2, batch_size=2, progress=False, **kw)
        got.append(dit_lens.open_store(url))
    a, b = got
    assert bool(b.complete.all())
    for var in ("img.resid_post", "img.resid_post.stats", "timestep"):
        assert np.array_equal(a[var].values, b[var].values, equal_nan=True), (mode, var)


def test_states_the_lens_cannot_trace_are_clear_errors():
    pipe, kw = ROWS["flux"].build()
    pipe.transformer = torch.compile(pipe.transformer)
    with pytest.raises(UnsupportedModelError, match=r"torch.compile'd .*_orig_mod"):
        Lens(pipe, example=dict(kw, num_inference_steps=1))
    pipe, kw = ROWS["flux"].build()
    lens = Lens(pipe, example=dict(kw, num_inference_steps=1))
    pipe.transformer.single_transformer_blocks[0].compile()  # compiled after the lens was made: caught at the run
    with pytest.raises(UnsupportedModelError, match=r"torch.compile is set on \['single_transformer_blocks.0'\]"):
        lens.generate(num_inference_steps=2, seed=0, **kw)
    with pytest.raises(ArgumentError, match="a pipeline object is used as it is"):
        Lens(ROWS["flux"].build()[0], revision="main")


def test_dtype_is_applied_and_float16_warns():
    pipe, kw = ROWS["flux"].build()
    lens = Lens(pipe, example=dict(_cast(kw, torch.bfloat16), num_inference_steps=1), torch_dtype=torch.bfloat16)
    assert lens.pipeline.transformer.dtype == torch.bfloat16
    pipe, kw = ROWS["flux"].build()
    with pytest.warns(RuntimeWarning, match="float16, whose range ends at 65,504"):
        Lens(pipe, example=dict(_cast(kw, torch.float16), num_inference_steps=1), torch_dtype=torch.float16)


def test_a_block_hook_that_changes_the_output_is_named():
    lens, kw = row_lens("flux")
    block = lens.pipeline.transformer.single_transformer_blocks[0]
    handle = block.register_forward_hook(lambda m, a, k, out: (out[0], out[1] + 1e6), with_kwargs=True)
    try:
        with pytest.warns(RuntimeWarning, match=r"blocks \['single_transformer_blocks.0'\] have torch forward hooks"):
            g = lens.generate(num_inference_steps=1, seed=0, cache=["single.0.img.resid_post",
                                                                     "single.1.img.resid_pre"], **kw)
    finally:
        handle.remove()
    # what the docs say: the read is the block's return value, before its hooks; the next block sees the hooked one
    assert g.cache["single.0.img.resid_post", 0].abs().max() < 1e3 < g.cache["single.1.img.resid_pre", 0].abs().max()


def test_a_recording_reads_a_hooked_block_before_its_hooks_and_warns(tmp_path):
    import dit_lens

    lens, kw = row_lens("flux")
    kw = dict(kw)
    prompts = kw.pop("prompt", None) or ["x", "y"]  # the row's embeddings: one row per sample
    names = ["single.0.img.resid_post", "single.1.img.resid_pre"]
    block = lens.pipeline.transformer.single_transformer_blocks[0]
    handle = block.register_forward_hook(lambda m, a, k, out: (out[0], out[1] + 1e6), with_kwargs=True)
    try:
        with pytest.warns(RuntimeWarning, match=r"blocks \['single_transformer_blocks.0'\] have torch forward hooks"):
            dit_lens.record(lens, str(tmp_path / "s.zarr"), prompts, names=names, num_inference_steps=1,
                            batch_size=2, progress=False, **kw)
    finally:
        handle.remove()
    ds = dit_lens.open_store(str(tmp_path / "s.zarr"))
    post, pre = (abs(ds.dit.sel(n).values).max() for n in names)
    assert post < 1e3 < pre  # the block's return value, as a traced read has it; the next block sees the hooked one
