"""Lens overhead, measured side by side in one run (not a test).

For each model it times, interleaved over repeats (median of each):
  plain    the diffusers pipeline call
  hooks    the same call with plain torch forward hooks copying every block's image stream to CPU at every step
  lens     Lens.generate caching the same names (every *.*.img.resid_post, every step)
  lens0    Lens.generate with nothing to read or edit (the wrapping cost alone)
and prints lens/plain, lens/hooks and lens0/plain. The random Flux runs in each of ``--modes``: float32, bfloat16
(weights and embeddings), and offload (diffusers' model CPU offload, whose accelerate hooks the lens re-instruments
before every run; on a CPU-only machine it moves nothing, so it times the hooks' cost alone).

    python bench/lens_overhead.py [--repeats 5] [--steps 10] [--modes float32,bfloat16,offload]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dit_lens import Lens
from dit_lens.testing import medium_flux


def tiny(batch=8):
    from dit_lens import tiny_pipeline
    from dit_lens.tiny.demo import demo_prompts

    return tiny_pipeline(), dict(prompt=demo_prompts(batch), guidance_scale=4.0)


def bench(label, pipe, kw, steps, repeats):
    pipe.set_progress_bar_config(disable=True)
    lens = Lens(pipe, example=dict(kw, num_inference_steps=1))
    names = lens.names("*.*.img.resid_post")
    blocks = [b for b in lens.info()["blocks"]]
    rows = len(kw["prompt"]) if "prompt" in kw else kw["prompt_embeds"].shape[0]

    def gens():
        return [torch.Generator().manual_seed(i) for i in range(rows)]

    def plain():
        pipe(**kw, num_inference_steps=steps, generator=gens())

    def hooks():
        saved, handles = [], []
        for b in blocks:
            mod = pipe.transformer.get_submodule(b["module"].split(".", 1)[1])
            handles.append(mod.register_forward_hook(
                lambda m, a, out: saved.append((out[1] if isinstance(out, tuple) else out).detach().to(
                    "cpu", copy=True))))
        try:
            plain()
        finally:
            for h in handles:
                h.remove()
        assert len(saved) == len(blocks) * steps

    def lens_cache():
        g = lens.generate(num_inference_steps=steps, seed=0, cache=names, **kw)
        assert len(g.cache) == len(names) * steps

    def lens_empty():
        lens.generate(num_inference_steps=steps, seed=0, **kw)

    fns = dict(plain=plain, hooks=hooks, lens=lens_cache, lens0=lens_empty)
    for f in fns.values():  # warm-up
        f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{label}: {len(names)} names x {steps} steps, {rows} images, median of {repeats}")
    for k, v in med.items():
        print(f"  {k:<6} {v * 1000:9.1f} ms")
    print(f"  lens/plain  {med['lens'] / med['plain']:.3f}x   (goal <= 1.10)")
    print(f"  lens/hooks  {med['lens'] / med['hooks']:.3f}x   (goal <= 1.10)")
    print(f"  lens0/plain {med['lens0'] / med['plain']:.3f}x")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--modes", default="float32,bfloat16,offload")
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench("embedded tiny model (Flux, 2+4 blocks, 256 img tokens, CFG batch)", *tiny(), a.steps, a.repeats)
    for mode in a.modes.split(","):
        pipe, kw = medium_flux()
        if mode == "bfloat16":
            pipe.to(torch.bfloat16)
            kw = {k: v.to(torch.bfloat16) if torch.is_tensor(v) else v for k, v in kw.items()}
        elif mode == "offload":
            pipe.enable_model_cpu_offload(device="cpu" if not torch.cuda.is_available() else "cuda")
        elif mode != "float32":
            raise SystemExit(f"unknown mode {mode!r}")
        bench(f"random Flux (4+8 blocks, width 384, 256 img tokens), {mode}", pipe, kw, a.steps, a.repeats)


if __name__ == "__main__":
    main()
