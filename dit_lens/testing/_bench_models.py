"""Random-weight models of real sizes for benchmarks.

    medium_flux(batch, size)   a Flux of moderate size (width 384, 4 + 8 blocks) for CPU benchmarks
    flux_dev(batch, device, shrink)   a transformer of Flux.1-dev's configuration in bf16 at 1024 x 1024 (GPU
                                      benchmarks); ``shrink``: its depth at width 64, for checking scripts on a CPU
"""

from __future__ import annotations

import torch

__all__ = ["medium_flux", "flux_dev"]


def medium_flux(batch=4, size=256):
    """A random-weight Flux pipeline of moderate size: width 384, 4 double + 8 single blocks, (size / 16)^2 image
    tokens (256 at the default 256 x 256, 1024 at 512 x 512), driven by embeddings."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    tr = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=4, num_single_layers=8,
                                attention_head_dim=64, num_attention_heads=6, joint_attention_dim=64,
                                pooled_projection_dim=64, axes_dims_rope=[16, 24, 24]).eval()
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=None, text_encoder=None, tokenizer=None,
                        text_encoder_2=None, tokenizer_2=None, transformer=tr)
    g = torch.Generator().manual_seed(0)
    kw = dict(prompt_embeds=torch.randn(batch, 32, 64, generator=g), pooled_prompt_embeds=torch.randn(batch, 64,
              generator=g), height=size, width=size, output_type="latent", guidance_scale=1.0)
    return pipe, kw


def flux_dev(batch=2, device="cuda", shrink=False):
    """A random-weight transformer of Flux.1-dev's configuration (19 + 38 blocks, width 3072) in bf16 at
    1024 x 1024 (4096 image tokens, 512 text tokens), built on ``device`` directly; no VAE (latents out),
    embeddings in (one row per sample). About 24 GB: a GPU's work. ``shrink``: the same depth (so the same names
    resolve) at width 64, 128 x 128 (64 image tokens) and 8 text tokens, in seconds on a CPU: for checking a
    benchmark script before a GPU runs it."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    cfg = dict(guidance_embeds=True)
    size, text, text_dim, pooled = 1024, 512, 4096, 768
    if shrink:
        cfg.update(num_attention_heads=4, attention_head_dim=16, axes_dims_rope=[4, 6, 6], joint_attention_dim=32,
                   pooled_projection_dim=32)
        size, text, text_dim, pooled = 128, 8, 32, 32
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            tr = FluxTransformer2DModel(**cfg).eval()
    finally:
        torch.set_default_dtype(default)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True,
                                                                  base_shift=0.5, max_shift=1.15),
                        vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
                        transformer=tr)
    g = torch.Generator().manual_seed(0)
    kw = dict(prompt_embeds=torch.randn(batch, text, text_dim, generator=g).to(torch.bfloat16),
              pooled_prompt_embeds=torch.randn(batch, pooled, generator=g).to(torch.bfloat16),
              height=size, width=size, output_type="latent", guidance_scale=3.5)
    return pipe, kw
