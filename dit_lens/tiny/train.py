"""Train the embedded model: rectified flow on procedural shapes, seeded, logged, resumable, CPU or GPU.

    python -m dit_lens.tiny.train --out runs/tiny --steps 4000                       # start or resume (CPU)
    python -m dit_lens.tiny.train --out runs/gpu --steps 100000 --batch-size 128 \\
        --device cuda --workers 3 --time-limit 420 --eval-every 60                   # a few minutes on a GPU

The batch of step ``s`` is a function of ``(seed, s)`` alone (``data.batch``), however many loader workers draw
it, so a run resumes exactly. Every ``--ckpt-every`` steps (and at the end) the run writes ``ckpt.pt`` (model,
EMA, optimiser, step) atomically and the EMA weights as ``ema.safetensors``, whose metadata holds the hyper-parameters
and the transformer config. ``--eval-every S`` scores the EMA model every S seconds on held-out prompts (the
evaluator) and logs the image stream's top-1/median channel ratio per block, so a log shows how quality and massive
activations grow with training. ``--heads/--double/--single`` change width and depth (ablations).

Conditioning (ablations towards a model whose prompt travels as in Flux, through its text tokens):
``--pooled none`` feeds zeros instead of CLIP's pooled output to every block's modulation; ``--pooled-dropout P``
keeps it but zeroes it for a fraction P of training rows (a weak pooled path); ``--registers R`` appends R learned
register tokens to every prompt's text tokens (candidate attention sinks). The conditioning is stored in the weights.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from . import data, evaluate
from ..models import config_hash
from .pipeline import TinyShapesPipeline, build, conditioning, pack, transformer_config

__all__ = ["evaluate_modules", "train", "main"]


class _Batches(torch.utils.data.Dataset):
    """Item ``s`` is the training batch of step ``s``."""

    def __init__(self, seed: int, batch_size: int):
        self.seed, self.batch_size = seed, batch_size

    def __len__(self):
        return 10_000_000

    def __getitem__(self, step):
        images, prompts, _ = data.batch(self.seed * 10_000_000 + step, self.batch_size)
        return torch.from_numpy(images), prompts


def _save_safetensors(modules: dict[str, torch.nn.Module], path: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    state = {f"{name}.{k}": v.detach().cpu().contiguous().clone() for name, m in modules.items()
             for k, v in m.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    os.replace(tmp, path)


@torch.no_grad()
def evaluate_modules(pipe: TinyShapesPipeline, n: int = 100, steps: int = 20, guidance_scale: float = 4.0) -> dict:
    """Evaluator scores on ``n`` held-out prompts and, per block, the image stream's top-1/median channel ratio of
    mean |x| over tokens (conditional rows, averaged over images and steps) and its max |x|."""
    from .demo import demo_prompts, top1_over_median

    prompts = demo_prompts(n)
    blocks = {f"double.{i}": b for i, b in enumerate(pipe.transformer.transformer_blocks)}
    blocks.update({f"single.{i}": b for i, b in enumerate(pipe.transformer.single_transformer_blocks)})
    ratios = {k: [] for k in blocks}
    peaks = {k: 0.0 for k in blocks}

    def hook(name):
        def fn(module, args, out):
            img = out[1][out[1].shape[0] // 2:].float()  # batch is [uncond; cond]
            ratios[name].append(top1_over_median(img).mean().item())
            peaks[name] = max(peaks[name], img.abs().max().item())
        return fn

    handles = [b.register_forward_hook(hook(k)) for k, b in blocks.items()]
    try:
        gens = [torch.Generator().manual_seed(i) for i in range(n)]
        images = pipe(prompts, num_inference_steps=steps, guidance_scale=guidance_scale, generator=gens).images
    finally:
        for h in handles:
            h.remove()
    scores = evaluate.score(images, prompts).to_dict()
    return dict(scores=scores, top1_over_median={k: round(float(np.mean(v)), 2) for k, v in ratios.items()},
                max_abs={k: round(v, 2) for k, v in peaks.items()})


def train(out: Path, steps: int, batch_size: int = 32, lr: float = 2e-3, weight_decay: float = 0.0,
          warmup: int = 200, ema_decay: float = 0.999, p_uncond: float = 0.1, seed: int = 0,
          ckpt_every: int = 250, log_every: int = 25, threads: int = 1, device: str = "cpu", workers: int = 0,
          time_limit: float | None = None, eval_every: float | None = None, eval_n: int = 100,
          heads: int | None = None, double: int | None = None, single: int | None = None, pooled: str = "clip",
          pooled_dropout: float = 0.0, registers: int = 0) -> int:
    """Train (or resume) to ``steps`` or ``time_limit`` seconds, whichever comes first; returns the last step."""
    torch.set_num_threads(threads)
    device = torch.device(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls for training; shipped weights run in float32
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cfg = transformer_config(heads, double, single)
    cond = conditioning(pooled, registers)
    if not 0.0 <= pooled_dropout < 1.0 or (pooled_dropout and pooled == "none"):
        raise ValueError(f"pooled_dropout={pooled_dropout}: in [0, 1), and only with pooled='clip'")
    pipe = build(weights=None, config=cfg, cond=cond).to(device)
    model = torch.nn.ModuleDict({"transformer": pipe.transformer, "text_encoder": pipe.text_encoder})
    model.train()
    ema = copy.deepcopy(model).eval()
    ema_pipe = TinyShapesPipeline(ema["transformer"], ema["text_encoder"], pipe.tokenizer,
                                  copy.deepcopy(pipe.scheduler), cond["pooled"])
    ema_pipe.set_progress_bar_config(disable=True)
    fused = device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99), fused=fused)
    start = 0
    ckpt = out / "ckpt.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        start = state["step"]
        print(f"resumed from step {start}", flush=True)
    hparams = dict(steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup=warmup,
                   ema_decay=ema_decay, p_uncond=p_uncond, seed=seed, config_hash=config_hash(pipe),
                   pooled_dropout=pooled_dropout)
    (out / "hparams.json").write_text(json.dumps(dict(hparams, transformer_config=cfg, conditioning=cond),
                                                 indent=2))
    log = open(out / "log.jsonl", "a")
    loader = torch.utils.data.DataLoader(_Batches(seed, batch_size), batch_size=None, sampler=range(start, steps),
                                         num_workers=workers, prefetch_factor=4 if workers else None)
    params, ema_params = list(model.parameters()), list(ema.parameters())
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    next_eval = eval_every
    running = torch.zeros((), device=device)
    done = start

    def save(step_done: int) -> None:
        tmp = out / "ckpt.tmp"
        torch.save(dict(model=model.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), step=step_done), tmp)
        os.replace(tmp, ckpt)
        _save_safetensors(dict(ema.items()), out / "ema.safetensors",
                          dict(hparams, step=step_done, transformer_config=cfg, conditioning=cond))

    def log_eval(step_done: int) -> None:
        rec = dict(step=step_done, samples=step_done * batch_size, sec=round(time.time() - t0, 1),
                   **evaluate_modules(ema_pipe, eval_n))
        log.write(json.dumps(rec) + "\n")
        log.flush()
        s = rec["scores"]
        print(f"eval step {step_done}: colour {s['colour']:.2f} background {s['background']:.2f} shape "
              f"{s['shape']:.2f} IoU {s['iou']:.3f}; top1/median {rec['top1_over_median']}", flush=True)

    for step, (images, prompts) in zip(range(start, steps), loader):
        gen.manual_seed(seed * 1_000_003 + step)  # noise, timesteps and prompt dropout are functions of the step
        drop = torch.rand(batch_size, generator=gen) < p_uncond
        prompts = ["" if d else p for d, p in zip(drop.tolist(), prompts)]
        x0 = pack(images).to(device, non_blocking=True)
        noise = torch.randn(x0.shape, generator=gen).to(device, non_blocking=True)
        t = torch.sigmoid(torch.randn(batch_size, generator=gen)).to(device)  # logit-normal timesteps
        xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
        embeds, pooled_vec = pipe.encode_prompt(prompts)
        if pooled_dropout:  # drawn only then: runs without it keep the exact random stream they always had
            pooled_vec = pooled_vec * (torch.rand(batch_size, generator=gen) >= pooled_dropout).to(device)[:, None]
        v = pipe.denoise(xt, embeds, pooled_vec, t)
        loss = torch.nn.functional.mse_loss(v, noise - x0)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1.0 - (ema_decay if step > warmup else 0.0))
        running += loss.detach()
        done = step + 1
        if done % log_every == 0:
            rec = dict(step=done, loss=running.item() / log_every, sec=round(time.time() - t0, 1))
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(rec, flush=True)
            running.zero_()
        out_of_time = time_limit is not None and time.time() - t0 >= time_limit
        if done % ckpt_every == 0 or done == steps or out_of_time:
            save(done)
        if next_eval is not None and (time.time() - t0 >= next_eval or out_of_time or done == steps):
            log_eval(done)
            next_eval = time.time() - t0 + eval_every
        if out_of_time:
            print(f"time limit reached at step {done}", flush=True)
            return done
    return done


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=0, help="data loader processes (0: draw batches in-process)")
    p.add_argument("--time-limit", type=float, default=None, help="stop (and save) after this many seconds")
    p.add_argument("--eval-every", type=float, default=None, help="evaluate the EMA model every this many seconds")
    p.add_argument("--eval-n", type=int, default=100)
    p.add_argument("--heads", type=int, default=None, help="attention heads of 32 channels (width = 32 x heads)")
    p.add_argument("--double", type=int, default=None, help="number of double-stream blocks")
    p.add_argument("--single", type=int, default=None, help="number of single-stream blocks")
    p.add_argument("--pooled", choices=("clip", "none"), default="clip",
                   help="what modulates every block: CLIP's pooled output, or nothing (text tokens carry the prompt)")
    p.add_argument("--pooled-dropout", type=float, default=0.0, help="zero the pooled vector for this fraction of rows")
    p.add_argument("--registers", type=int, default=0, help="learned register tokens appended to the text tokens")
    a = p.parse_args(argv)
    if a.steps < 1 or a.batch_size < 1 or not math.isfinite(a.lr):
        p.error("--steps and --batch-size must be >= 1 and --lr finite")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {a.device}: torch {torch.__version__} sees no CUDA device")
    train(a.out, a.steps, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay, seed=a.seed,
          ckpt_every=a.ckpt_every, log_every=a.log_every, threads=a.threads, device=a.device, workers=a.workers,
          time_limit=a.time_limit, eval_every=a.eval_every, eval_n=a.eval_n, heads=a.heads, double=a.double,
          single=a.single, pooled=a.pooled, pooled_dropout=a.pooled_dropout, registers=a.registers)


if __name__ == "__main__":
    main()
