"""Tiny random-weight pipelines of each supported architecture, built from configs (no hub, no text encoders).

Each builder returns ``(pipeline, kwargs)``: the pipeline has its transformer and scheduler only, and ``kwargs``
drive it with precomputed text embeddings and ``output_type="latent"``, so a full denoising loop runs in
milliseconds. ``BUILDERS`` maps an architecture's transformer class to its builder: one row per architecture.
"""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler


def _embeds(b, t, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, d, generator=g)


def _pooled(b, d, seed=1):
    return torch.randn(b, d, generator=torch.Generator().manual_seed(seed))


def flux(batch=2):
    from diffusers import FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    tr = FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=2, num_single_layers=2, attention_head_dim=16,
                                num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                                axes_dims_rope=[4, 4, 8])
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=None, text_encoder=None, tokenizer=None,
                        text_encoder_2=None, tokenizer_2=None, transformer=tr)
    kw = dict(prompt_embeds=_embeds(batch, 6, 32), pooled_prompt_embeds=_pooled(batch, 32), height=64, width=64,
              output_type="latent", guidance_scale=1.0)
    return pipe, kw


def flux_true_cfg(batch=2):
    pipe, kw = flux(batch)
    kw.update(true_cfg_scale=3.0, negative_prompt_embeds=_embeds(batch, 6, 32, seed=5),
              negative_pooled_prompt_embeds=_pooled(batch, 32, seed=6))
    return pipe, kw


def flux2(batch=2):
    from diffusers import Flux2Pipeline, Flux2Transformer2DModel

    torch.manual_seed(0)
    tr = Flux2Transformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=2,
                                 attention_head_dim=16, num_attention_heads=2, joint_attention_dim=16,
                                 timestep_guidance_channels=256, axes_dims_rope=[4, 4, 4, 4])
    pipe = Flux2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=None, text_encoder=None, tokenizer=None,
                         transformer=tr)
    kw = dict(prompt_embeds=_embeds(batch, 6, 16), height=64, width=64, output_type="latent")
    return pipe, kw


def qwenimage(batch=2):
    from diffusers import QwenImagePipeline, QwenImageTransformer2DModel

    torch.manual_seed(0)
    tr = QwenImageTransformer2DModel(patch_size=2, in_channels=16, out_channels=4, num_layers=2,
                                     attention_head_dim=16, num_attention_heads=3, joint_attention_dim=16,
                                     guidance_embeds=False, axes_dims_rope=(8, 4, 4))
    pipe = QwenImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=None, text_encoder=None,
                             tokenizer=None, transformer=tr)
    kw = dict(prompt_embeds=_embeds(batch, 6, 16), prompt_embeds_mask=torch.ones(batch, 6, dtype=torch.long),
              negative_prompt_embeds=_embeds(batch, 6, 16, seed=3),
              negative_prompt_embeds_mask=torch.ones(batch, 6, dtype=torch.long),
              true_cfg_scale=4.0, height=64, width=64, output_type="latent")
    return pipe, kw


def sd3(batch=2):
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline

    torch.manual_seed(0)
    tr = SD3Transformer2DModel(sample_size=32, patch_size=1, in_channels=4, num_layers=2, attention_head_dim=8,
                               num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32,
                               pooled_projection_dim=64, out_channels=4)
    pipe = StableDiffusion3Pipeline(transformer=tr, scheduler=FlowMatchEulerDiscreteScheduler(), vae=None,
                                    text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
                                    text_encoder_3=None, tokenizer_3=None)
    kw = dict(prompt_embeds=_embeds(batch, 6, 32), pooled_prompt_embeds=_pooled(batch, 64),
              negative_prompt_embeds=_embeds(batch, 6, 32, seed=3), negative_pooled_prompt_embeds=_pooled(batch, 64, 4),
              guidance_scale=5.0, height=32, width=32, output_type="latent")
    return pipe, kw


def pixart(batch=2):
    from diffusers import DDIMScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    torch.manual_seed(0)
    tr = PixArtTransformer2DModel(sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8,
                                  num_attention_heads=3, caption_channels=32, in_channels=4, cross_attention_dim=24,
                                  out_channels=8, attention_bias=True, activation_fn="gelu-approximate",
                                  num_embeds_ada_norm=1000, norm_type="ada_norm_single",
                                  norm_elementwise_affine=False, norm_eps=1e-6)
    pipe = PixArtSigmaPipeline(tokenizer=None, text_encoder=None, vae=None, transformer=tr, scheduler=DDIMScheduler())
    mask = torch.ones(batch, 6, dtype=torch.long)
    kw = dict(prompt_embeds=_embeds(batch, 6, 32), prompt_attention_mask=mask,
              negative_prompt_embeds=_embeds(batch, 6, 32, seed=3), negative_prompt_attention_mask=mask,
              guidance_scale=4.5, height=64, width=64, output_type="latent", use_resolution_binning=False,
              negative_prompt=None)
    return pipe, kw


def sana(batch=2):
    from diffusers import SanaPipeline, SanaTransformer2DModel

    torch.manual_seed(0)
    tr = SanaTransformer2DModel(patch_size=1, in_channels=4, out_channels=4, num_layers=2, num_attention_heads=2,
                                attention_head_dim=4, num_cross_attention_heads=2, cross_attention_head_dim=4,
                                cross_attention_dim=8, caption_channels=8, sample_size=32)
    pipe = SanaPipeline(tokenizer=None, text_encoder=None, vae=None, transformer=tr,
                        scheduler=FlowMatchEulerDiscreteScheduler())
    mask = torch.ones(batch, 6, dtype=torch.long)
    kw = dict(prompt_embeds=_embeds(batch, 6, 8), prompt_attention_mask=mask,
              negative_prompt_embeds=_embeds(batch, 6, 8, seed=3), negative_prompt_attention_mask=mask,
              guidance_scale=4.5, height=256, width=256, output_type="latent", use_resolution_binning=False,
              complex_human_instruction=None, negative_prompt=None)
    return pipe, kw


def cogview4(batch=2):
    from diffusers import CogView4Pipeline, CogView4Transformer2DModel

    torch.manual_seed(0)
    tr = CogView4Transformer2DModel(patch_size=2, in_channels=4, num_layers=2, attention_head_dim=4,
                                    num_attention_heads=4, out_channels=4, text_embed_dim=32, time_embed_dim=8,
                                    condition_dim=4)
    pipe = CogView4Pipeline(tokenizer=None, text_encoder=None, vae=None, transformer=tr,
                            scheduler=FlowMatchEulerDiscreteScheduler())
    kw = dict(prompt_embeds=_embeds(batch, 6, 32), negative_prompt_embeds=_embeds(batch, 6, 32, seed=3),
              guidance_scale=5.0, height=64, width=64, output_type="latent")
    return pipe, kw


def auraflow(batch=2):
    from diffusers import AuraFlowPipeline, AuraFlowTransformer2DModel

    torch.manual_seed(0)
    tr = AuraFlowTransformer2DModel(sample_size=32, patch_size=2, in_channels=4, num_mmdit_layers=1,
                                    num_single_dit_layers=2, attention_head_dim=8, num_attention_heads=4,
                                    caption_projection_dim=32, joint_attention_dim=32, out_channels=4,
                                    pos_embed_max_size=256)
    pipe = AuraFlowPipeline(tokenizer=None, text_encoder=None, vae=None, transformer=tr,
                            scheduler=FlowMatchEulerDiscreteScheduler())
    mask = torch.ones(batch, 6, dtype=torch.long)
    kw = dict(prompt_embeds=_embeds(batch, 6, 32), prompt_attention_mask=mask,
              negative_prompt_embeds=_embeds(batch, 6, 32, seed=3), negative_prompt_attention_mask=mask,
              guidance_scale=3.5, height=64, width=64, output_type="latent")
    return pipe, kw


def chroma(batch=2):
    from diffusers import ChromaPipeline, ChromaTransformer2DModel

    torch.manual_seed(0)
    tr = ChromaTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=2,
                                  attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                  axes_dims_rope=[4, 4, 8], approximator_hidden_dim=32, approximator_layers=1,
                                  approximator_num_channels=16)
    pipe = ChromaPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=None, text_encoder=None, tokenizer=None,
                          transformer=tr)
    mask = torch.ones(batch, 6, dtype=torch.bool)
    kw = dict(prompt_embeds=_embeds(batch, 6, 32), negative_prompt_embeds=_embeds(batch, 6, 32, seed=3),
              prompt_attention_mask=mask, negative_prompt_attention_mask=mask,
              guidance_scale=5.0, height=64, width=64, output_type="latent")
    return pipe, kw


def tiny_shapes(batch=2):
    from dit_lens.tiny.pipeline import build

    torch.manual_seed(0)
    pipe = build(weights=None)
    prompts = ["a red circle on a blue background", "a green square on a white background"][:batch]
    return pipe, dict(prompt=prompts, guidance_scale=4.0)


# one row per architecture: (id, builder, expected families, sequential CFG calls per step)
BUILDERS = {
    "flux": (flux, {"double", "single"}),
    "flux_true_cfg": (flux_true_cfg, {"double", "single"}),
    "flux2": (flux2, {"double", "single"}),
    "qwenimage": (qwenimage, {"double"}),
    "sd3": (sd3, {"double"}),
    "pixart": (pixart, {"blocks"}),
    "sana": (sana, {"blocks"}),
    "tiny": (tiny_shapes, {"double", "single"}),
    "cogview4": (cogview4, {"double"}),
    "auraflow": (auraflow, {"double", "single"}),
    "chroma": (chroma, {"double", "single"}),
}
