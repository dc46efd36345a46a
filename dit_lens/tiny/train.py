"""Train the embedded model: rectified flow on procedural shapes, seeded, logged, resumable.

    python -m dit_lens.tiny.train --out runs/tiny --steps 4000          # start or resume

Every ``--ckpt-every`` steps the run writes ``ckpt.pt`` (model, EMA, optimiser, step) atomically and the EMA weights
as ``ema.safetensors``; rerunning the same command resumes from the last checkpoint with the same data stream.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path

import torch

from . import data
from .pipeline import build, config_hash, pack


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1.0 - decay)


def _save_safetensors(modules: dict[str, torch.nn.Module], path: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    state = {f"{name}.{k}": v.detach().contiguous().clone() for name, m in modules.items()
             for k, v in m.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={k: str(v) for k, v in meta.items()})
    os.replace(tmp, path)


def train(out: Path, steps: int, batch_size: int = 32, lr: float = 2e-3, weight_decay: float = 0.0,
          warmup: int = 200, ema_decay: float = 0.999, p_uncond: float = 0.1, seed: int = 0,
          ckpt_every: int = 250, log_every: int = 25, threads: int = 1) -> None:
    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    pipe = build(weights=None)
    model = torch.nn.ModuleDict({"transformer": pipe.transformer, "text_encoder": pipe.text_encoder})
    model.train()
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99))
    start = 0
    ckpt = out / "ckpt.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        start = state["step"]
        print(f"resumed from step {start}", flush=True)
    hparams = dict(steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup=warmup,
                   ema_decay=ema_decay, p_uncond=p_uncond, seed=seed, config_hash=config_hash())
    (out / "hparams.json").write_text(json.dumps(hparams, indent=2))
    log = open(out / "log.jsonl", "a")
    gen = torch.Generator().manual_seed(seed)
    t0, running = time.time(), 0.0
    for step in range(start, steps):
        gen.manual_seed(seed * 1_000_003 + step)  # the data stream is a function of the step: resume-exact
        images, prompts, _ = data.batch(seed * 10_000_000 + step, batch_size)
        drop = torch.rand(batch_size, generator=gen) < p_uncond
        prompts = ["" if d else p for d, p in zip(drop.tolist(), prompts)]
        x0 = pack(torch.from_numpy(images))
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.sigmoid(torch.randn(batch_size, generator=gen))  # logit-normal timesteps
        xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
        embeds, pooled = pipe.encode_prompt(prompts)
        v = pipe.denoise(xt, embeds, pooled, t)
        loss = torch.nn.functional.mse_loss(v, noise - x0)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        _ema_update(ema, model, ema_decay if step > warmup else 0.0)
        running += loss.item()
        if (step + 1) % log_every == 0:
            rec = dict(step=step + 1, loss=running / log_every, sec=round(time.time() - t0, 1))
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(rec, flush=True)
            running = 0.0
        if (step + 1) % ckpt_every == 0 or step + 1 == steps:
            tmp = out / "ckpt.tmp"
            torch.save(dict(model=model.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), step=step + 1),
                       tmp)
            os.replace(tmp, ckpt)
            _save_safetensors(dict(ema.items()), out / "ema.safetensors", dict(hparams, step=step + 1))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    if a.steps < 1 or a.batch_size < 1 or not math.isfinite(a.lr):
        p.error("--steps and --batch-size must be >= 1 and --lr finite")
    train(a.out, a.steps, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay, seed=a.seed,
          ckpt_every=a.ckpt_every, threads=a.threads)


if __name__ == "__main__":
    main()
