"""``dit-lens demo``: the embedded model end to end, offline, on the CPU.

    demo_prompts(n)        held-out prompts (their data seeds are never used in training)
    channel_profile(cache) per name: top-1 / median channel of mean |x| over tokens, and the top channels
    demo(out, ...)         generate a grid through the Lens, score it, profile the image stream; writes
                           grid.png, profile.png and scores.json in ``out``
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from . import data, evaluate

HELD_OUT = 10**9  # data seeds >= this are never drawn in training (train seeds are < 10**8)


def demo_prompts(n: int = 20) -> list[str]:
    return [data.sample(HELD_OUT + i).prompt for i in range(n)]


def channel_profile(cache, names, k: int = 4) -> dict:
    """mean |x| over (rows, tokens, steps) per channel -> ratio of the top channel to the median, top-k channels."""
    out = {}
    for name in names:
        x = cache.stack(name).abs().float().mean(dim=(0, 1, 2))
        order = torch.argsort(x, descending=True)
        out[name] = dict(top1_over_median=float(x[order[0]] / x.median()), top=order[:k].tolist(),
                         top_values=[round(float(v), 3) for v in x[order[:k]]], median=float(x.median()))
    return out


def _grid(images, prompts, scores, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 5
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.1, rows * 2.4))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, img, prompt, row in zip(np.atleast_1d(axes).ravel(), images, prompts, scores.rows):
        ax.imshow(img, interpolation="nearest")
        ok = row["colour_ok"] and row["background_ok"] and row["shape_ok"]
        c, s, b = evaluate.parse_prompt(prompt)
        ax.set_title(f"{c} {s}\non {b}\nread: {row['colour_read']} {row['shape_read']}", fontsize=7,
                     color="darkgreen" if ok else "firebrick")
    fig.suptitle(f"dit-lens tiny model: colour {scores.colour:.0%}, background {scores.background:.0%}, "
                 f"shape {scores.shape:.0%}, IoU {scores.iou:.2f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _profile_figure(profile: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(profile)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(range(len(names)), [profile[n]["top1_over_median"] for n in names], color="steelblue")
    ax.set_xticks(range(len(names)), [n.rsplit(".", 2)[0] for n in names], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("top-1 / median channel\n(mean |x| over image tokens)")
    ax.set_yscale("log")
    ax.set_title("image-stream channel magnitudes per block (resid_post)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def demo(out, model: str = "tiny", steps: int = 20, seed: int = 0, n: int = 20, guidance_scale: float = 4.0) -> dict:
    from ..lens import Lens

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    lens = Lens(model)
    prompts = demo_prompts(n)
    names = lens.names("*.*.img.resid_post")
    g = lens.generate(prompts, num_inference_steps=steps, seed=seed, guidance_scale=guidance_scale, cache=names,
                      cache_cfg="cond")
    seconds = time.time() - t0
    images = np.asarray(g.images)
    scores = evaluate.score(images, prompts)
    profile = channel_profile(g.cache, names)
    _grid(images, prompts, scores, out / "grid.png")
    _profile_figure(profile, out / "profile.png")
    report = dict(model=model, steps=steps, seed=seed, guidance_scale=guidance_scale, prompts=prompts,
                  seconds=round(seconds, 2), scores=scores.to_dict(), channel_profile=profile)
    (out / "scores.json").write_text(json.dumps(report, indent=2))
    print(f"{len(prompts)} images in {seconds:.1f} s -> {out / 'grid.png'}")
    print(f"colour {scores.colour:.0%}  background {scores.background:.0%}  shape {scores.shape:.0%}  "
          f"IoU {scores.iou:.2f}   (scores.json, profile.png)")
    return report
