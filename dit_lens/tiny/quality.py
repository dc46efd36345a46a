"""Quality and massive-activation report of embedded-model weights (the numbers in the README come from here).

    python -m dit_lens.tiny.quality [--weights FILE ...] [--n 200] [--steps 20] [--json OUT]

For each weights file (default: the shipped ones): evaluator scores on ``n`` held-out prompts, seconds per image
(batched generation), and the channel profile of every resid_post name on 16 prompts at 5 steps.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from . import evaluate
from .demo import channel_profile, demo_prompts
from .pipeline import WEIGHTS, build

__all__ = ["report", "main"]


def report(weights, n: int = 200, steps: int = 20, batch: int = 50, guidance_scale: float = 4.0) -> dict:
    from ..lens import Lens

    pipe = build(weights)
    prompts = demo_prompts(n)
    images = []
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        chunk = prompts[i:i + batch]
        gens = [torch.Generator().manual_seed(i + j) for j in range(len(chunk))]
        images.append(pipe(chunk, num_inference_steps=steps, guidance_scale=guidance_scale, generator=gens).images)
    seconds = (time.perf_counter() - t0) / n
    scores = evaluate.score(np.concatenate(images), prompts)
    lens = Lens(pipe, example={"prompt": prompts[:1], "num_inference_steps": 1})
    cache_steps = sorted({0, steps // 4, steps // 2, 3 * steps // 4, steps - 1})
    names = lens.names("*.*.*.resid_post")
    g = lens.generate(prompts[:16], num_inference_steps=steps, seed=0, guidance_scale=guidance_scale, cache=names,
                      cache_steps=cache_steps, cache_cfg="cond")
    profile = channel_profile(g.cache, names)
    return dict(weights=str(weights), n=n, steps=steps, seconds_per_image=round(seconds, 3),
                threads=torch.get_num_threads(), scores=scores.to_dict(), profile=profile)


def _summary(r: dict) -> str:
    s = r["scores"]
    lines = [f"{r['weights']}: colour {s['colour']:.1%}  background {s['background']:.1%}  shape {s['shape']:.1%}  "
             f"IoU {s['iou']:.3f}  ({r['n']} prompts, {r['seconds_per_image']:.3f} s/image on {r['threads']} threads)",
             "  per shape: " + ", ".join(f"{k} {v:.0%}" for k, v in s["per_shape"].items())]
    for name, p in r["profile"].items():
        lines.append(f"  {name:<26} top1/median {p['top1_over_median']:>6.2f}  max|x| {p['max_abs']:>8.2f} "
                     f"({p['max_over_median_abs']:>6.1f}x median)  top {p['top']}  top1 agreement "
                     f"{p['top1_agreement']:.2f}  top-4 Jaccard {p['topk_jaccard']:.2f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", nargs="*", default=[str(WEIGHTS)])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--json", default=None, help="write all results to this file")
    a = p.parse_args(argv)
    results = []
    for w in a.weights:
        r = report(w, n=a.n, steps=a.steps)
        print(_summary(r), flush=True)
        results.append(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
