"""The paper's models at their real size on a GPU, random weights (not a test): the lens's cost and memory.

For FLUX.1-dev, FLUX.2-klein base 4B, Qwen-Image and SANA 1.5 1.6B — transformers of their published configs with
random weights, in bf16, at 1024 x 1024, text embeddings in and latents out (no text encoders, no VAE decode) — it
loads each under a Lens (names checked by a small dry run), then times, for 2 prompts x 28 steps:
  plain   the pipeline call
  lens    Lens.generate with one edit (zero 4 channels of the middle block's image stream at every step)
  stats   a stats-only recording of every image-stream block output at every step, then detect on that store
and prints peak GPU memory, lens/plain and stats/plain. Random weights: only the timings and memory mean anything.

    python bench/gpu_check.py [--models flux-dev,flux2-klein,qwen-image,sana] [--steps 28] [--json out.json]
    python bench/gpu_check.py --shrink          # tiny versions of the same configs, on the CPU: checks the script

About 5 minutes on one H100-class GPU; --shrink takes seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

def _embeds(n, t, d, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, t, d, generator=g).to(device, dtype)


def build(model: str, shrink: bool, device: str, dtype):
    """(pipeline, call kwargs for 2 prompts, dry-run example): the transformer of ``model``'s published config (tiny
    with ``shrink``), random weights, built on ``device`` in ``dtype``."""
    import diffusers

    n, size = 2, (64 if shrink else 1024)
    small = dict(num_attention_heads=2, attention_head_dim=16)
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            if model == "flux-dev":
                cfg = dict(guidance_embeds=True) if not shrink else dict(
                    num_layers=1, num_single_layers=2, joint_attention_dim=32, pooled_projection_dim=32,
                    in_channels=4, axes_dims_rope=[4, 4, 8], guidance_embeds=True, **small)
                tr = diffusers.FluxTransformer2DModel(**cfg)
                pipe = diffusers.FluxPipeline(scheduler=diffusers.FlowMatchEulerDiscreteScheduler(), vae=None,
                                              text_encoder=None, tokenizer=None, text_encoder_2=None,
                                              tokenizer_2=None, transformer=tr)
                text, pooled = (8, 32) if shrink else (512, 768)
                kw = dict(prompt_embeds=_embeds(n, text, tr.config.joint_attention_dim, dtype, device),
                          pooled_prompt_embeds=_embeds(n, 1, pooled, dtype, device)[:, 0], guidance_scale=3.5)
            elif model == "flux2-klein":
                cfg = dict(num_layers=5, num_single_layers=20, num_attention_heads=24, attention_head_dim=128,
                           joint_attention_dim=7680, in_channels=128, guidance_embeds=False) if not shrink else dict(
                    num_layers=1, num_single_layers=2, joint_attention_dim=16, in_channels=16,
                    axes_dims_rope=[4, 4, 4, 4], guidance_embeds=False, **small)
                tr = diffusers.Flux2Transformer2DModel(**cfg)
                latent = cfg["in_channels"] // 4
                vae = diffusers.AutoencoderKLFlux2(  # a stand-in: the pipeline reads its latent statistics
                    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                    block_out_channels=(4, 4, 4, 4), layers_per_block=1, latent_channels=latent, norm_num_groups=1,
                    use_quant_conv=False, use_post_quant_conv=False)
                pipe = diffusers.Flux2KleinPipeline(scheduler=diffusers.FlowMatchEulerDiscreteScheduler(), vae=vae,
                                                    text_encoder=None, tokenizer=None, transformer=tr)
                text = 8 if shrink else 512
                kw = dict(prompt_embeds=_embeds(n, text, cfg["joint_attention_dim"], dtype, device),
                          negative_prompt_embeds=_embeds(n, text, cfg["joint_attention_dim"], dtype, device, 1),
                          guidance_scale=4.0)
            elif model == "qwen-image":
                cfg = {} if not shrink else dict(num_layers=2, joint_attention_dim=16, in_channels=16, out_channels=4,
                                                 axes_dims_rope=(8, 4, 4), num_attention_heads=3,
                                                 attention_head_dim=16)
                tr = diffusers.QwenImageTransformer2DModel(**cfg)
                pipe = diffusers.QwenImagePipeline(scheduler=diffusers.FlowMatchEulerDiscreteScheduler(), vae=None,
                                                   text_encoder=None, tokenizer=None, transformer=tr)
                text, neg = (8, 5) if shrink else (128, 16)
                mask = torch.ones(n, text, dtype=torch.long, device=device)
                kw = dict(prompt_embeds=_embeds(n, text, tr.config.joint_attention_dim, dtype, device),
                          prompt_embeds_mask=mask,
                          negative_prompt_embeds=_embeds(n, neg, tr.config.joint_attention_dim, dtype, device, 1),
                          negative_prompt_embeds_mask=mask[:, :neg], true_cfg_scale=4.0)
            elif model == "sana":
                cfg = {} if not shrink else dict(num_layers=2, num_attention_heads=2, attention_head_dim=8,
                                                 num_cross_attention_heads=2, cross_attention_head_dim=8,
                                                 cross_attention_dim=16, caption_channels=16, in_channels=4,
                                                 out_channels=4)
                tr = diffusers.SanaTransformer2DModel(**cfg)
                pipe = diffusers.SanaPipeline(tokenizer=None, text_encoder=None, vae=None, transformer=tr,
                                              scheduler=diffusers.FlowMatchEulerDiscreteScheduler())
                text = 8 if shrink else 300
                mask = torch.ones(n, text, dtype=torch.long, device=device)
                kw = dict(prompt_embeds=_embeds(n, text, tr.config.caption_channels, dtype, device),
                          prompt_attention_mask=mask,
                          negative_prompt_embeds=_embeds(n, text, tr.config.caption_channels, dtype, device, 1),
                          negative_prompt_attention_mask=mask, guidance_scale=4.5, use_resolution_binning=False,
                          complex_human_instruction=None, negative_prompt=None)
            else:
                raise SystemExit(f"unknown model {model!r}")
    finally:
        torch.set_default_dtype(default)
    pipe.set_progress_bar_config(disable=True)
    kw.update(height=size, width=size, output_type="latent")
    small_size = 64 if shrink else 256  # the dry run at a quarter of the side: image tokens scale with the call
    example = dict({k: v[:1] if torch.is_tensor(v) else v for k, v in kw.items()}, height=small_size,
                   width=small_size, num_inference_steps=1)
    return pipe, kw, example


def _timed(fn, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def check(model: str, steps: int, shrink: bool, device: str, root: Path) -> dict:
    import dit_lens

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    pipe, kw, example = build(model, shrink, device, torch.bfloat16)
    lens = dit_lens.Lens(pipe, example=example)
    loaded = time.perf_counter() - t0
    names = lens.names("*.*.img.resid_post")
    middle = names[len(names) // 2]
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(2)]  # noqa: E731
    edit = dit_lens.zero(middle, channels=[0, 1, 2, 3])
    pipe(**kw, num_inference_steps=2, generator=gens())  # warm-up: kernels, allocator
    plain_s, _ = _timed(lambda: pipe(**kw, num_inference_steps=steps, generator=gens()), device)
    lens_s, g = _timed(lambda: lens.generate(num_inference_steps=steps, generator=gens(), edits=[edit],
                                             cache=names[-1], cache_steps=[0], cache_cfg="cond", **kw), device)
    url = str(root / f"{model}.zarr")
    stats_s, _ = _timed(lambda: dit_lens.record(lens, url, ["p0", "p1"], names=names, num_inference_steps=steps,
                                                stats_only=True, batch_size=2, progress=False, **kw), device)
    det = dit_lens.detect(url, k=4)
    last = det.per_name[names[-1]]
    return dict(model=model, blocks=len(names), image_tokens=int(g.cache[names[-1], 0].shape[1]),
                calls_per_step=lens.calls_per_step(**kw),
                load_s=round(loaded, 1), plain_s=round(plain_s, 2), lens_s=round(lens_s, 2),
                stats_s=round(stats_s, 2), lens_over_plain=round(lens_s / plain_s, 3),
                stats_over_plain=round(stats_s / plain_s, 3), steps_run=len(g.timesteps),
                peak_gpu_gib=round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None,
                top_channels_last_block=last["top"], top1_over_median_last_block=round(last["ratio"], 2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="flux-dev,flux2-klein,qwen-image,sana")
    p.add_argument("--steps", type=int, default=28)
    p.add_argument("--shrink", action="store_true", help="tiny configs on the CPU: checks the script in seconds")
    p.add_argument("--device", default=None, help="default: cuda when available (required unless --shrink)")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    a = p.parse_args()
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and not a.shrink:
        raise SystemExit("the real configs need a GPU (tens of GB in bf16): run on one, or pass --shrink")
    steps = 3 if a.shrink and a.steps == 28 else a.steps
    print(f"torch {torch.__version__}, device {device}"
          f"{' (' + torch.cuda.get_device_name() + ')' if device.startswith('cuda') else ''}, {steps} steps, "
          f"2 prompts, {'shrunken configs' if a.shrink else '1024 x 1024, bf16, random weights'}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="dit-lens-gpu-check-"))
    rows = []
    try:
        for model in a.models.split(","):
            row = check(model, steps, a.shrink, device, root)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("\n| model | blocks | image tokens | calls/step | peak GPU GiB | plain s | lens/plain | stats/plain |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['blocks']} | {r['image_tokens']} | {r['calls_per_step']} | {r['peak_gpu_gib']} | "
              f"{r['plain_s']} | {r['lens_over_plain']}x | {r['stats_over_plain']}x |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
