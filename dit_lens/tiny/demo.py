"""``dit-lens demo``: the embedded model end to end, offline, on the CPU.

    demo_prompts(n)        held-out prompts (their data seeds are never used in training)
    top1_over_median(h)    per row of (rows, tokens, channels): largest / median channel of mean |x| over tokens
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

__all__ = ["HELD_OUT", "demo_prompts", "top1_over_median", "channel_profile", "demo"]

HELD_OUT = 10**9  # data seeds >= this are never drawn in training (train seeds are < 10**8)


def demo_prompts(n: int = 20) -> list[str]:
    return [data.sample(HELD_OUT + i).prompt for i in range(n)]


def top1_over_median(h: torch.Tensor) -> torch.Tensor:
    """(rows, tokens, channels) -> (rows,): the massive-activation ratio used in training logs and the demo."""
    m = h.float().abs().mean(1)
    return m.max(1).values / m.median(1).values


def channel_profile(cache, names, k: int = 4) -> dict:
    """Per name: channel magnitudes m[c] = mean |x| over tokens, per (step, image), then
      top1_over_median  mean over cases of max(m) / median(m)
      max_abs           largest |x| anywhere, and its ratio to the median |x|
      top               the k channels with the largest m averaged over cases
      top1_agreement    fraction of cases whose top-1 channel is the overall top-1
      topk_jaccard      mean Jaccard of each case's top-k set with the overall top-k"""
    out = {}
    for name in names:
        x = cache.stack(name).float()  # (steps, rows, tokens, channels)
        cases = x.reshape(-1, *x.shape[2:])  # (steps * rows, tokens, channels)
        m = cases.abs().mean(1)  # (cases, channels)
        overall = m.mean(0)
        top = torch.argsort(overall, descending=True)[:k]
        case_top = torch.topk(m, k, dim=1).indices
        jac = [len(set(r.tolist()) & set(top.tolist())) / len(set(r.tolist()) | set(top.tolist())) for r in case_top]
        out[name] = dict(
            top1_over_median=round(float(top1_over_median(cases).mean()), 2),
            max_abs=round(float(x.abs().max()), 3),
            max_over_median_abs=round(float(x.abs().max() / x.abs().median()), 1),
            top=top.tolist(),
            top1_agreement=round(float((case_top[:, 0] == top[0]).float().mean()), 3),
            topk_jaccard=round(float(sum(jac) / len(jac)), 3),
        )
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


def _colour_swaps(n: int) -> list[tuple[str, str]]:
    """(source, target) prompt pairs differing only in the subject colour, from held-out samples."""
    pairs = []
    for i in range(n):
        smp = data.sample(HELD_OUT + 500 + i)
        other = [c for c in data.COLOURS if c not in (smp.colour, smp.background)][i % 6]
        pairs.append((smp.prompt, data.prompt_for(other, smp.shape, smp.background)))
    return pairs


def demo(out, model: str = "tiny", steps: int = 20, seed: int = 0, n: int = 20, guidance_scale: float = 4.0,
         full: bool = True) -> dict:
    """Generate and score a grid; with ``full`` also record -> detect -> disrupt -> cluster -> transport and
    write ``report.md``."""
    from tqdm.auto import tqdm

    from ..lens import Lens

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stages = tqdm(total=6 if full else 1, desc="demo: generate and score", unit="stage")
    t0 = time.time()
    lens = Lens(model)
    prompts = demo_prompts(n)
    names = lens.names("*.*.*.resid_post")
    g = lens.generate(prompts, num_inference_steps=steps, seed=seed, guidance_scale=guidance_scale, cache=names,
                      cache_cfg="cond")
    seconds = time.time() - t0
    images = np.asarray(g.images)
    scores = evaluate.score(images, prompts)
    profile = channel_profile(g.cache, names)
    del g
    _grid(images, prompts, scores, out / "grid.png")
    _profile_figure({n: v for n, v in profile.items() if ".img." in n}, out / "profile.png")
    report = dict(model=model, steps=steps, seed=seed, guidance_scale=guidance_scale, prompts=prompts,
                  seconds=round(seconds, 2), scores=scores.to_dict(), channel_profile=profile)
    stages.update()
    if full:
        stages.set_description("demo: record a store")
    print(f"{len(prompts)} images in {seconds:.1f} s -> {out / 'grid.png'}")
    print(f"colour {scores.colour:.0%}  background {scores.background:.0%}  shape {scores.shape:.0%}  "
          f"IoU {scores.iou:.2f}")
    if full:
        report["recipes"] = _recipes(lens, out, steps, stages)
        from .page import write_page

        write_page(out, report)
        from ..view import standalone_html

        standalone_html(out)  # the same page as HTML, its figures embedded: one file to open or send
        print(f"report: {out / 'report.md'} and {out / 'report.html'}")
    stages.close()
    (out / "scores.json").write_text(json.dumps(report, indent=2, default=float))
    return report


def _recipes(lens, out: Path, steps: int, stages) -> dict:
    import shutil

    from .. import cluster, detect, disrupt, open_store, record, transport

    store = out / "demo.zarr"
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(str(store) + ".claims", ignore_errors=True)
    keep = sorted({0, steps // 4, steps // 2, 3 * steps // 4, steps - 1})
    record(lens, str(store), demo_prompts(8), seeds=[0], names="*.*.img.resid_post", num_inference_steps=steps,
           steps=keep, batch_size=8)
    stages.update()
    stages.set_description("demo: detect")
    ds = open_store(str(store))
    det = detect(ds, k=4)
    det.figures(out)
    stages.update()
    stages.set_description("demo: disrupt")
    # every step with the controls; then the massive channels in each third of the run alone: the paper's reading
    # (content lost) against detail guidance's (content kept, detail lost)
    one = dict(prompts=demo_prompts(4), seeds=[0, 1], k=4, detection=det, num_inference_steps=steps,
               ablations=("zero",))
    dis = disrupt(lens, **one)
    dis.figure(out)
    win = disrupt(lens, **one, sets=("massive",), windows=("early", "middle", "late"))
    stages.update()
    stages.set_description("demo: cluster")
    clu = cluster(ds, k=4, K=2, steps=[keep[2], keep[-1]], detection=det)
    clu.figure(out)
    stages.update()
    stages.set_description("demo: transport")
    # as the paper transports: massive channels x each sample's cluster mask (target and source), every step; the
    # controls share the source and target generations of the first call (runs)
    swap = dict(pairs=_colour_swaps(3), seeds=[0, 1], detection=det, num_inference_steps=steps, runs={})
    tra = transport(lens, k=4, alphas=(0.5, 1.0), spatial="cluster", **swap)
    tra.figure(out)
    controls = {  # alpha 1: all tokens, random channels, each third of the run, the pooled text embedding
        "massive 4, all tokens": transport(lens, k=4, alphas=(1.0,), **swap),
        "random 4, cluster mask": transport(lens, k=4, alphas=(1.0,), channel_set="random", spatial="cluster",
                                            **swap),
        **{f"massive 4, cluster mask, {w} steps": transport(lens, k=4, alphas=(1.0,), spatial="cluster", steps=w,
                                                            **swap) for w in ("early", "late")},
        "pooled embedding only": transport(lens, k=0, alphas=(1.0,), pooled_alpha=1.0, **swap),
    }
    stages.update()
    stages.set_description("demo: report")
    return {"store": str(store), "detect": det.to_dict(), "disrupt": dis.to_dict(),
            "disrupt_windows": win.to_dict(), "readings": {**dis.readings(), **win.readings()},
            "cluster": clu.to_dict(), "transport": tra.to_dict(),
            "transport_controls": {k: v.to_dict() for k, v in controls.items()}}
