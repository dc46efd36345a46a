"""Scorers for real models: the CLIP score (a tiny random-config CLIP built here, loaded from a folder; no hub), and
the recipes on a tiny random Flux that draws images, judged by it and given user masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dit_lens import Lens, cluster, disrupt, record, transport
from dit_lens.scoring import CLIPScorer, resolve_scorer
from dit_lens.testing import ROWS


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A CLIPModel + CLIPProcessor of random weights and a character vocabulary, saved as a folder."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    d = tmp_path_factory.mktemp("clip")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz0123456789":
        vocab[c], vocab[c + "</w>"] = len(vocab), len(vocab) + 1
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    torch.manual_seed(3)  # a seed whose scores are not all clamped at 0
    model = CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=32, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                           num_attention_heads=4), projection_dim=16))
    model.save_pretrained(d)
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32,
                                                                                          "width": 32}),
                  tokenizer=tokenizer).save_pretrained(d)
    return d


def test_clip_score_is_the_clamped_cosine_of_clips_embeddings(clip_folder):
    from transformers import CLIPModel, CLIPProcessor

    images = np.random.default_rng(0).integers(0, 255, (3, 40, 40, 3), dtype=np.uint8)
    prompts = ["a red cat", "blue dog", "green"]
    scorer = resolve_scorer(f"clip:{clip_folder}", None)
    assert isinstance(scorer, CLIPScorer) and str(clip_folder) in scorer.name
    model, processor = CLIPModel.from_pretrained(clip_folder).eval(), CLIPProcessor.from_pretrained(clip_folder)
    batch = processor(text=prompts, images=list(images), return_tensors="pt", padding=True)
    with torch.no_grad():
        img = model.get_image_features(pixel_values=batch["pixel_values"]).pooler_output
        txt = model.get_text_features(input_ids=batch["input_ids"],
                                      attention_mask=batch["attention_mask"]).pooler_output
    cos = torch.nn.functional.cosine_similarity(img, txt).numpy()
    assert (cos > 0).any() and (cos < 0).any()
    np.testing.assert_allclose(scorer.similarity(images, prompts), 100 * np.maximum(cos, 0), rtol=1e-5, atol=1e-4)
    score = scorer.score(images, prompts)["clip_score"]
    assert ((0 <= score) & (score <= 1)).all()
    assert scorer.transported(images, prompts, prompts[::-1], images).dtype == bool


def test_recipes_on_a_random_flux_with_the_clip_score_and_user_masks(clip_folder, tmp_path):
    pipe, kw = ROWS["flux_images"].build()
    lens = Lens(pipe, example=dict(kw, num_inference_steps=1))
    assert lens.spec is None  # no default scorer: the CLIP score is given
    clip = CLIPScorer(clip_folder)
    d = disrupt(lens, prompts=["p"], seeds=[0, 1], k=2, num_inference_steps=2, sets=("massive", "random"),
                ablations=("zero", "mean"), scorer=clip, pipeline=kw)
    for m in d.metrics.values():
        assert {"psnr", "ssim", "clip_score", "baseline_clip_score"} <= set(m)
    assert d.params["scorer"].startswith("CLIP score")
    source = {k: v.flip(0) for k, v in kw.items() if k in ("prompt_embeds", "pooled_prompt_embeds")}
    t = transport(lens, pairs=[("a red cat", "a blue dog")], seeds=[0, 1], alphas=(0.5, 1.0), k=2,
                  num_inference_steps=2, scorer=f"clip:{clip_folder}", pipeline=kw, source_pipeline=source)
    assert set(t.success) == set(t.blend_success) == {0.5, 1.0}
    assert all(0 <= v <= 1 for v in t.success.values()) and t.images[1.0].dtype == np.uint8
    masks = np.zeros((1, 32, 32), bool)
    masks[:, 8:24, 8:24] = True  # the user's subject: the centre
    sub = transport(lens, pairs=[("a red cat", "a blue dog")], seeds=[0, 1], alphas=(1.0,), k=2,
                    num_inference_steps=2, spatial="subject", masks=masks, pipeline=kw, source_pipeline=source)
    assert sub.tokens == [r * 16 + c for r in range(4, 12) for c in range(4, 12)]
    url = str(tmp_path / "f.zarr")
    record(lens, url, ["a", "b"], seeds=[0], names="*.*.img.resid_post", num_inference_steps=2, progress=False,
           **kw)
    c = cluster(url, k=2, steps=[1], masks=np.repeat(masks, 2, axis=0))
    assert c.params["masks"] == "argument" and 0 <= c.summary["massive"] <= 1
    assert cluster(url, k=2, steps=[1]).masks is None  # no masks, no scorer with masks: agreement only
    with pytest.raises(ValueError, match="cannot score this run"):
        disrupt(lens, prompts=["p"], seeds=[0, 1], k=2, num_inference_steps=2, scorer=clip,
                pipeline=dict(kw, output_type="latent"))
