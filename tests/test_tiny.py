"""The embedded model: data and evaluator ground truth, training resume, shipped weights' quality, the demo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dit_lens.tiny import data, evaluate
from dit_lens.tiny.demo import HELD_OUT, demo_prompts

# shipped model on 200 held-out prompts: colour 1.0, background 1.0, shape 1.0, IoU 0.94
COLOUR_MIN, BACKGROUND_MIN, SHAPE_MIN, IOU_MIN = 0.9, 0.9, 0.8, 0.75


def test_data_is_deterministic_with_exact_masks():
    a, b = data.sample(7), data.sample(7)
    assert np.array_equal(a.image, b.image) and a.prompt == b.prompt
    assert a.prompt == data.prompt_for(a.colour, a.shape, a.background)
    fg = np.asarray(data.COLOURS[a.colour])
    assert np.all(np.abs(a.image[a.mask].astype(int) - fg).max(1) <= 128)  # masked pixels lean to the subject
    images, prompts, _ = data.batch(3, 4)
    assert images.shape == (4, 3, 32, 32) and images.min() >= -1 and images.max() <= 1 and len(prompts) == 4


def test_evaluator_on_ground_truth():
    samples = [data.sample(HELD_OUT + i) for i in range(60)]
    s = evaluate.score([x.image for x in samples], [x.prompt for x in samples])
    assert s.colour == s.background == s.shape == 1.0
    assert s.iou > 0.9
    noise = np.random.default_rng(0).integers(0, 255, (10, 32, 32, 3), dtype=np.uint8)
    assert evaluate.score(noise, [x.prompt for x in samples[:10]]).shape < 0.5
    with pytest.raises(ValueError, match="not a shapes prompt"):
        evaluate.parse_prompt("a photo of a cat")


def test_tokenizer_rejects_unknown_words():
    from dit_lens.tiny.pipeline import WordTokenizer

    with pytest.raises(ValueError, match="outside the tiny model's vocabulary.*'cat'"):
        WordTokenizer()(["a red cat on a blue background"])


def test_training_resumes_exactly(tmp_path):
    from safetensors.torch import load_file

    from dit_lens.tiny.train import train

    kw = dict(batch_size=4, ckpt_every=2, warmup=2, log_every=1, threads=torch.get_num_threads())
    train(tmp_path / "a", steps=4, **kw)
    train(tmp_path / "b", steps=2, **kw)
    train(tmp_path / "b", steps=4, workers=1, **kw)  # resumes at step 2, batches drawn by a loader process
    a, b = load_file(tmp_path / "a" / "ema.safetensors"), load_file(tmp_path / "b" / "ema.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


@pytest.fixture(scope="module")
def shipped():
    import dit_lens

    return dit_lens.tiny_pipeline()


def test_shipped_weights_draw_the_prompts(shipped):
    prompts = demo_prompts(24)
    gens = [torch.Generator().manual_seed(i) for i in range(len(prompts))]
    images = shipped(prompts, num_inference_steps=20, generator=gens).images
    s = evaluate.score(images, prompts)
    # random weights score colour 0.12, background 0.17, shape 0.17, IoU 0.17 on 200 such prompts
    assert s.colour >= COLOUR_MIN and s.background >= BACKGROUND_MIN, s.to_dict()
    assert s.shape >= SHAPE_MIN and s.iou >= IOU_MIN, s.to_dict()


def test_demo_quick(tmp_path):
    from dit_lens.cli import main

    assert main(["demo", "--out", str(tmp_path), "--quick", "--steps", "8"]) == 0
    report = json.loads((tmp_path / "scores.json").read_text())
    assert report["scores"]["n"] == 20 and (tmp_path / "grid.png").stat().st_size > 10_000


def test_demo_full_report_numbers_come_from_the_run(tmp_path):
    from dit_lens.tiny.demo import demo

    report = demo(tmp_path, steps=4, n=5)
    page = (tmp_path / "report.md").read_text()
    r = report["recipes"]
    assert f"| massive | {r['cluster']['summary']['massive']:.3f} |" in page
    for label, t in {"massive 4, cluster mask": r["transport"], **r["transport_controls"]}.items():
        for a, v in t["success_interval"].items():
            assert f"| {label} | {a} | {v['mean']:.3g} [{v['lo']:.3g}, {v['hi']:.3g}] |" in page
            assert 0 <= v["lo"] <= v["mean"] <= v["hi"] <= 1
    assert r["transport_controls"]["pooled embedding only"]["params"]["k"] == 0
    assert r["transport"]["params"]["spatial"] == "cluster" and 0 < r["transport"]["mask_fraction"] < 1
    from dit_lens.tiny.page import verdicts

    for claim, v in verdicts(r).items():  # each verdict stated as the run decided it
        assert f"| {claim} | {'yes' if v['holds'] else 'no'} | {v['why']} |" in page
    assert set(r["readings"]) == {"all", "early", "middle", "late"}
    for w, v in r["readings"].items():
        assert f"| {w} | {v['supports']} |" in page
    for fig in ("grid.png", "profile.png", "detect_heatmap.png", "disrupt_grid.png", "cluster_masks.png",
                "transport_sweep.png"):
        assert f"({fig})" in page and (tmp_path / fig).stat().st_size > 5_000, fig
    html = (tmp_path / "report.html").read_text()  # the same report, figures embedded
    assert html.count('src="data:image/png;base64,') == page.count("![") >= 6 and "<h2>Verdicts</h2>" in html


def test_text_token_conditioning_and_register_tokens_train_save_and_load(tmp_path):
    """The v2 levers: prompts through the text tokens alone (no pooled modulation), register tokens, a weak pooled
    path; trained a few steps on the CPU, saved with their conditioning, loaded back and traced by name."""
    from dit_lens import Lens
    from dit_lens.tiny.pipeline import build, weights_config
    from dit_lens.tiny.train import train

    kw = dict(batch_size=4, ckpt_every=2, warmup=2, log_every=1, threads=torch.get_num_threads())
    train(tmp_path / "v2", steps=2, pooled="none", registers=2, **kw)
    path = tmp_path / "v2" / "ema.safetensors"
    assert weights_config(path, "conditioning") == {"pooled": "none", "registers": 2}
    pipe = build(path)
    embeds, pooled = pipe.encode_prompt(["a red circle on a blue background"])
    assert embeds.shape[1] == 12 and not pooled.any()  # 10 text tokens + 2 registers; nothing pooled
    lens = Lens(pipe, example=dict(prompt=["a red circle on a blue background"], num_inference_steps=1))
    g = lens.generate(["a red circle on a blue background"], num_inference_steps=2, cache="double.0.txt.resid_post")
    assert g.cache["double.0.txt.resid_post", 1, "batch"].shape[1] == 12
    train(tmp_path / "weak", steps=2, pooled_dropout=0.5, **kw)
    assert json.loads((tmp_path / "weak" / "hparams.json").read_text())["pooled_dropout"] == 0.5
    with pytest.raises(ValueError, match="only with pooled='clip'"):
        train(tmp_path / "bad", steps=1, pooled="none", pooled_dropout=0.5, **kw)
    with pytest.raises(Exception, match="registers=17"):
        build(None, cond=dict(registers=17))
