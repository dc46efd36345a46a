"""Random-weight pipelines built from configs (no hub, no text encoders), for tests and benchmarks.

    ROWS                 contract rows: id -> Row(build, families), at least one per supported architecture
    Row.build(batch=2)   -> (pipeline, kwargs): the pipeline has its transformer and scheduler only; ``kwargs``
                         drive it with precomputed text embeddings and ``output_type="latent"`` (the embedded
                         model's row: prompts and images), so a denoising loop runs in milliseconds
    lens(row_id)         -> (Lens, kwargs) of a row, validated with a one-step call of those kwargs
    medium_flux(batch, size)   a Flux of moderate size (width 384, 4 + 8 blocks) for CPU benchmarks
    flux_dev(batch, device)    a transformer of Flux.1-dev's configuration in bf16 at 1024 x 1024 (GPU benchmarks)

Adding an architecture = its file in dit_lens/archs/ + one row here; tests/test_contract.py runs the shared contract
on every row, with the CFG style each row's arguments select by the adapter's own rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

__all__ = ["Row", "ROWS", "lens", "medium_flux", "flux_dev"]


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
    from .models import get

    torch.manual_seed(0)
    pipe = get("tiny").build(None)
    prompts = ["a red circle on a blue background", "a green square on a white background"][:batch]
    return pipe, dict(prompt=prompts, guidance_scale=4.0)


@dataclass(frozen=True)
class Row:
    builder: object  # (batch=2) -> (pipeline, kwargs)
    families: frozenset  # the name families the row's model must expose

    def build(self, batch: int = 2):
        """(pipeline, kwargs) with ``batch`` rows (its progress bar off: a denoising loop takes milliseconds)."""
        pipe, kw = self.builder(batch)
        pipe.set_progress_bar_config(disable=True)
        return pipe, kw


ROWS = {key: Row(fn, frozenset(fams)) for key, (fn, fams) in {
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
}.items()}


def lens(row: str, batch: int = 2):
    """The row's pipeline under a Lens, validated with a one-step call of the row's own arguments; and those
    arguments."""
    from .lens import Lens

    pipe, kw = ROWS[row].build(batch)
    return Lens(pipe, example=dict(kw, num_inference_steps=1)), kw


def medium_flux(batch=4, size=256):
    """A random-weight Flux pipeline of moderate size: width 384, 4 double + 8 single blocks, (size / 16)^2 image
    tokens (256 at the default 256 x 256, 1024 at 512 x 512), driven by embeddings."""
    from diffusers import FluxPipeline, FluxTransformer2DModel

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


def flux_dev(batch=2, device="cuda"):
    """A random-weight transformer of Flux.1-dev's configuration (19 + 38 blocks, width 3072) in bf16 at
    1024 x 1024 (4096 image tokens, 512 text tokens), built on ``device`` directly; no VAE (latents out),
    embeddings in (one row per sample). About 24 GB: a GPU's work."""
    from diffusers import FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            tr = FluxTransformer2DModel(guidance_embeds=True).eval()
    finally:
        torch.set_default_dtype(default)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True,
                                                                  base_shift=0.5, max_shift=1.15),
                        vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
                        transformer=tr)
    g = torch.Generator().manual_seed(0)
    kw = dict(prompt_embeds=torch.randn(batch, 512, 4096, generator=g).to(torch.bfloat16),
              pooled_prompt_embeds=torch.randn(batch, 768, generator=g).to(torch.bfloat16),
              height=1024, width=1024, output_type="latent", guidance_scale=3.5)
    return pipe, kw
