"""A request through the NDIF server's own execution code (ndif 0.1.2, in-process): the model built from its
hub-free remote key as a deployment builds it (``dit_lens.remote.DiT``), the request rebuilt and run by the
functions the server's model actor and its tensor-parallel shards call
(``ndif.services.ray.deployments.modeling.nns``: ``prepare_traced_block``, ``execute_traced_block``). The Ray actor
around them and the untrusted-request sandbox are not exercised here (docs/remote.md)."""

from __future__ import annotations

import numpy as np
import torch
from ndif.services.ray.deployments.modeling import nns
from nnsight.schema.request import RequestModel

from dit_lens import Lens, scale, zero
from dit_lens.remote import DiT, model_key

NAME = "single.1.img.resid_post"
PROMPTS = ["a red circle on a blue background", "a green square on a white background"]


def _serve(server, blob) -> dict:
    tracer, _ = nns.prepare_traced_block(server, blob, False, RequestModel.deserialize)
    with nns.block_scope():
        return nns.execute_traced_block(tracer, torch.float32)


def test_the_embedded_model_served_by_key_runs_edits_reads_and_a_recording_as_ndif_runs_them(blobs, tmp_path):
    lens = Lens("tiny")
    key = lens.model.to_model_key()
    assert key == model_key(spec="tiny") == 'dit_lens.remote.DiT:{"spec": "tiny"}'
    server = DiT.from_model_key(key)  # what a deployment configured with this key loads
    assert type(server.pipeline).__name__ == "TinyShapesPipeline"
    edits = [zero(NAME, steps=[2], channels=[0, 1]), scale("double.0.img.resid_post", 2.0, cfg="cond")]
    local = lens.generate(PROMPTS, num_inference_steps=4, seed=0, edits=edits, cache=NAME)
    lens.generate(PROMPTS, num_inference_steps=4, seed=0, edits=edits, cache=NAME, remote="local")
    saved = _serve(server, blobs[-1])
    cache = dict(local.cache.items())
    assert saved["saved"].keys() == cache.keys() and all(torch.equal(saved["saved"][k], cache[k]) for k in cache)
    assert np.array_equal(np.asarray(saved["output"].images), np.asarray(local.images))

    from dit_lens import open_store, record

    here = open_store(record(lens, str(tmp_path / "here.zarr"), PROMPTS, names=NAME, num_inference_steps=3,
                             stats_only=True, progress=False))
    record(lens, str(tmp_path / "there.zarr"), PROMPTS, names=NAME, num_inference_steps=3, stats_only=True,
           progress=False, remote="local")
    got = [g for g in _serve(server, blobs[-1])["got"] if g is not None]
    assert [g[0] for g in got] == [0, 1, 2] and all(g[3] is None for g in got)  # statistics only came back
    for index, t, (stats, count, _), values in got:
        assert np.array_equal(stats[NAME].transpose(1, 0, 2), here["img.resid_post.stats"].isel(step=index, layer=0)
                              .transpose("sample", "stat", "channel").values)


def test_a_pipeline_built_in_memory_says_why_it_cannot_run_remotely():
    from dit_lens.errors import ArgumentError
    from dit_lens.testing import lens as row_lens

    lens, _ = row_lens("flux")
    try:
        lens.model.to_model_key()
    except ArgumentError as e:
        assert "built in memory" in str(e) and "Lens('tiny')" in str(e)
    else:
        raise AssertionError("an in-memory pipeline produced a remote key")


def test_a_pipeline_folder_is_served_by_its_path(blobs, tmp_path):
    from dit_lens.testing import ROWS

    pipe, kw = ROWS["flux"].build()
    pipe.save_pretrained(tmp_path / "flux")
    absent = dict(vae=None, text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None)
    lens = Lens(str(tmp_path / "flux"), example=dict(kw, num_inference_steps=1), **absent)
    key = lens.model.to_model_key()
    assert key == model_key(folder=str(tmp_path / "flux"), absent=absent)
    server = DiT.from_model_key(key)
    local = lens.generate(num_inference_steps=2, seed=0, cache=NAME, edits=[zero(NAME, steps=[1])], **kw)
    lens.generate(num_inference_steps=2, seed=0, cache=NAME, edits=[zero(NAME, steps=[1])], remote="local", **kw)
    saved = _serve(server, blobs[-1])
    assert torch.equal(saved["output"].images, local.images)
    assert all(torch.equal(saved["saved"][k], v) for k, v in local.cache.items())


def test_cli_records_remotely(tmp_path):
    from dit_lens import open_store
    from dit_lens.cli import main

    args = ["--prompts", PROMPTS[0], "--num-inference-steps", "2", "--stats-only"]
    assert main(["record", str(tmp_path / "a.zarr"), *args]) == 0
    assert main(["record", str(tmp_path / "b.zarr"), *args, "--remote", "local"]) == 0
    a, b = open_store(str(tmp_path / "a.zarr")), open_store(str(tmp_path / "b.zarr"))
    assert np.array_equal(a["img.resid_post.stats"].values, b["img.resid_post.stats"].values)
