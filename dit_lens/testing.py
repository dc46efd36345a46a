"""Random-weight pipelines built from configs (no hub, no text encoders), for tests and benchmarks.

    ROWS                 contract rows: id -> Row (a pipeline class, a tiny transformer config and the call that
                         drives it), at least one per supported architecture
    IMAGE_ROWS           image-conditioned pipelines (img2img, inpainting, editing) of Flux, SD3, Qwen-Image, FLUX.2
    Row.build(batch=2)   -> (pipeline, kwargs): the pipeline has its transformer and scheduler only; ``kwargs``
                         drive it with precomputed text embeddings and ``output_type="latent"`` (the embedded
                         model's row: prompts and images), so a denoising loop runs in milliseconds
    lens(row_id)         -> (Lens, kwargs) of a row, validated with a one-step call of those kwargs
    s3_server(bucket)    a loopback S3 server (moto) in its own process, pausable with SIGSTOP: (process, fsspec
                         storage options) -- for tests and benchmarks of object storage
    medium_flux(batch, size)   a Flux of moderate size (width 384, 4 + 8 blocks) for CPU benchmarks
    flux_dev(batch, device)    a transformer of Flux.1-dev's configuration in bf16 at 1024 x 1024 (GPU benchmarks)

Adding an architecture = its file in dit_lens/archs/ + one row here; tests/test_contract.py runs the shared contract
on every row, with the CFG style each row's arguments select by the adapter's own rule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from dataclasses import dataclass, field

import torch

__all__ = ["Row", "ROWS", "IMAGE_ROWS", "lens", "s3_server", "medium_flux", "flux_dev"]


def _embeds(b, t, d, seed=0):
    return torch.randn(b, t, d, generator=torch.Generator().manual_seed(seed))


def _pooled(b, d, seed=1):
    return torch.randn(b, d, generator=torch.Generator().manual_seed(seed))


def _text(b, d, *, pooled=None, negative=False, mask=None, mask_key="prompt_attention_mask", t=6, neg_t=None) -> dict:
    """Text conditioning of ``b`` rows: embeddings (t tokens of width d), optionally a pooled vector of width
    ``pooled``, a negative prompt's embeddings (``neg_t`` tokens, default t), and all-ones attention masks of dtype
    ``mask``."""
    neg_t = t if neg_t is None else neg_t
    kw = dict(prompt_embeds=_embeds(b, t, d))
    if pooled:
        kw["pooled_prompt_embeds"] = _pooled(b, pooled)
    if negative:
        kw["negative_prompt_embeds"] = _embeds(b, neg_t, d, seed=3)
        if pooled:
            kw["negative_pooled_prompt_embeds"] = _pooled(b, pooled, 4)
    if mask is not None:
        kw[mask_key] = torch.ones(b, t, dtype=mask)
        if negative:
            kw["negative_" + mask_key] = torch.ones(b, neg_t, dtype=mask)
    return kw


LATENT = dict(height=64, width=64, output_type="latent")


def _suffix(kw: dict, suffix: str) -> dict:
    """Keyword arguments for a second text encoder: ``prompt_embeds`` -> ``prompt_embeds_2`` and so on."""
    return {k + suffix: v for k, v in kw.items()}


@dataclass(frozen=True)
class Row:
    """One contract row: a diffusers pipeline class with a tiny transformer config and the call that drives it (or a
    registered model spec, built with random weights), and the name families its model must expose."""

    families: frozenset
    call: object  # batch -> the pipeline's keyword arguments
    pipeline: str = ""  # diffusers pipeline class
    transformer: str = ""  # diffusers transformer class
    config: dict = field(default_factory=dict)  # the transformer's config
    scheduler: str = "FlowMatchEulerDiscreteScheduler"
    spec: str | None = None  # instead: a registered dit_lens model spec
    options: dict = field(default_factory=dict)  # the pipeline's other constructor arguments (e.g. is_distilled)
    parts: dict = field(default_factory=dict)  # other components built from configs: name -> (diffusers class, config)
    jitter: bool = False  # parameters that are exactly zero at init (adaLN-zero gates) get small random values: with
    # them zero, every block is the identity and nothing (text included) changes the output

    def build(self, batch: int = 2):
        """(pipeline, kwargs) with ``batch`` rows; the pipeline has its transformer and scheduler only (every other
        component None) and its progress bar off."""
        import diffusers

        torch.manual_seed(0)
        if self.spec is not None:
            from .models import get

            pipe = get(self.spec).build(None)
        else:
            cls = _SHIMS[self.pipeline]() if self.pipeline in _SHIMS else getattr(diffusers, self.pipeline)
            absent = {n: None for n, p in inspect.signature(cls.__init__).parameters.items()
                      if n not in ("self", "transformer", "scheduler") and p.default is inspect.Parameter.empty}
            built = {name: getattr(diffusers, klass)(**config) for name, (klass, config) in self.parts.items()}
            transformer = getattr(diffusers, self.transformer)(**self.config)
            if self.jitter:
                with torch.no_grad():
                    for p in transformer.parameters():
                        if not p.any():
                            p.normal_(0.0, 0.02)
            pipe = cls(transformer=transformer, scheduler=getattr(diffusers, self.scheduler)(),
                       **dict(absent, **built), **self.options)
        pipe.set_progress_bar_config(disable=True)
        return pipe, self.call(batch)


def _longcat_embeds():
    """LongCatImagePipeline as in diffusers, except that its ``encode_prompt`` takes embeddings without a prompt
    (diffusers 0.42.1 counts rows by ``len(prompt)`` even when ``prompt_embeds`` is given, and refuses both at once)."""
    from diffusers import LongCatImagePipeline

    class LongCatImageEmbedsPipeline(LongCatImagePipeline):
        def encode_prompt(self, prompt=None, num_images_per_prompt=1, prompt_embeds=None):
            if prompt is None or prompt == "":
                prompt = [""] * prompt_embeds.shape[0]
            return super().encode_prompt(prompt, num_images_per_prompt, prompt_embeds)
    return LongCatImageEmbedsPipeline


def _fibo_embeds():
    """BriaFiboPipeline as in diffusers, except that it takes precomputed text (``prompt_embeds``, ``prompt_layers``:
    one hidden state per text-encoder layer, and their negatives) instead of running its text encoder: diffusers
    0.42.1's pipeline has no embeddings argument."""
    from diffusers import BriaFiboPipeline

    class BriaFiboEmbedsPipeline(BriaFiboPipeline):
        def __call__(self, prompt_embeds=None, prompt_layers=None, negative_prompt_embeds=None,
                     negative_prompt_layers=None, **kwargs):
            self._embeds = (prompt_embeds, negative_prompt_embeds, prompt_layers, negative_prompt_layers)
            return super().__call__(prompt=[""] * prompt_embeds.shape[0], **kwargs)

        def encode_prompt(self, prompt, device=None, num_images_per_prompt=1, guidance_scale=5, **kwargs):
            pos, neg, layers, neg_layers = self._embeds
            b, t = pos.shape[:2]
            ones = torch.ones(b, t, dtype=pos.dtype, device=pos.device)
            return (pos, neg if guidance_scale > 1 else None, torch.zeros(b, t, 3, device=pos.device), ones,
                    ones if guidance_scale > 1 else None, list(layers),
                    list(neg_layers) if guidance_scale > 1 else None)
    return BriaFiboEmbedsPipeline


# pipeline classes rows need beyond diffusers' own
_SHIMS = {"LongCatImageEmbedsPipeline": _longcat_embeds, "BriaFiboEmbedsPipeline": _fibo_embeds}

_FLUX = dict(patch_size=1, in_channels=4, num_layers=2, num_single_layers=2, attention_head_dim=16,
             num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8])
_FLUX2 = dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=2, attention_head_dim=16,
              num_attention_heads=2, joint_attention_dim=16, timestep_guidance_channels=256,
              axes_dims_rope=[4, 4, 4, 4])
_VAE = dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
            latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
            shift_factor=0.0609, scaling_factor=1.5035)
_VAE_FLUX2 = dict(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                  block_out_channels=(4, 4), layers_per_block=1, latent_channels=4, norm_num_groups=1, sample_size=32,
                  use_quant_conv=False, use_post_quant_conv=False)
_TINY_PROMPTS = ["a red circle on a blue background", "a green square on a white background"]

ROWS = {
    "flux": Row(frozenset({"double", "single"}), lambda b: dict(_text(b, 32, pooled=32), **LATENT, guidance_scale=1.0),
                "FluxPipeline", "FluxTransformer2DModel", _FLUX),
    "flux_true_cfg": Row(frozenset({"double", "single"}), lambda b: dict(
        _text(b, 32, pooled=32), **LATENT, guidance_scale=1.0, true_cfg_scale=3.0,
        negative_prompt_embeds=_embeds(b, 6, 32, seed=5), negative_pooled_prompt_embeds=_pooled(b, 32, seed=6)),
        "FluxPipeline", "FluxTransformer2DModel", _FLUX),
    # a tiny VAE: images out (uint8 after the recipes' conversion), for image metrics and image scorers
    "flux_images": Row(frozenset({"double", "single"}), lambda b: dict(
        _text(b, 32, pooled=32), height=32, width=32, output_type="np", guidance_scale=1.0),
        "FluxPipeline", "FluxTransformer2DModel", _FLUX, parts=dict(vae=("AutoencoderKL", _VAE))),
    # img2img: strength 0.5 runs the last half of the schedule (2 of 3 steps), images out
    "flux_img2img": Row(frozenset({"double", "single"}), lambda b: dict(
        _text(b, 32, pooled=32), image=torch.rand(b, 3, 32, 32, generator=torch.Generator().manual_seed(7)),
        strength=0.5, height=32, width=32, output_type="np", guidance_scale=1.0),
        "FluxImg2ImgPipeline", "FluxTransformer2DModel", _FLUX, parts=dict(vae=("AutoencoderKL", _VAE))),
    "flux2": Row(frozenset({"double", "single"}), lambda b: dict(_text(b, 16), **LATENT),
                 "Flux2Pipeline", "Flux2Transformer2DModel", _FLUX2),
    # FLUX.2-klein: not distilled, its default guidance 4 runs CFG as a cond and an uncond call per step
    "flux2_klein": Row(frozenset({"double", "single"}), lambda b: dict(_text(b, 16, negative=True), **LATENT),
                       "Flux2KleinPipeline", "Flux2Transformer2DModel", dict(_FLUX2, guidance_embeds=False),
                       parts=dict(vae=("AutoencoderKLFlux2", _VAE_FLUX2))),
    "flux2_klein_distilled": Row(frozenset({"double", "single"}), lambda b: dict(_text(b, 16), **LATENT),
                                 "Flux2KleinPipeline", "Flux2Transformer2DModel", dict(_FLUX2, guidance_embeds=False),
                                 options=dict(is_distilled=True), parts=dict(vae=("AutoencoderKLFlux2", _VAE_FLUX2))),
    # a negative prompt shorter than the prompt: the text stream's length differs between the cond and uncond calls
    "qwenimage": Row(frozenset({"double"}), lambda b: dict(
        _text(b, 16, negative=True, mask=torch.long, mask_key="prompt_embeds_mask", neg_t=4), **LATENT,
        true_cfg_scale=4.0),
        "QwenImagePipeline", "QwenImageTransformer2DModel",
        dict(patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16, num_attention_heads=3,
             joint_attention_dim=16, guidance_embeds=False, axes_dims_rope=(8, 4, 4))),
    "sd3": Row(frozenset({"double"}), lambda b: dict(
        _text(b, 32, pooled=64, negative=True), guidance_scale=5.0, height=32, width=32, output_type="latent"),
        "StableDiffusion3Pipeline", "SD3Transformer2DModel",
        dict(sample_size=32, patch_size=1, in_channels=4, num_layers=2, attention_head_dim=8, num_attention_heads=4,
             caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64, out_channels=4,
             dual_attention_layers=(0,))),  # SD3.5's dual attention in block 0
    "pixart": Row(frozenset({"blocks"}), lambda b: dict(
        _text(b, 32, negative=True, mask=torch.long), **LATENT, guidance_scale=4.5, use_resolution_binning=False,
        negative_prompt=None),
        "PixArtSigmaPipeline", "PixArtTransformer2DModel",
        dict(sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8, num_attention_heads=3,
             caption_channels=32, in_channels=4, cross_attention_dim=24, out_channels=8, attention_bias=True,
             activation_fn="gelu-approximate", num_embeds_ada_norm=1000, norm_type="ada_norm_single",
             norm_elementwise_affine=False, norm_eps=1e-6), scheduler="DDIMScheduler"),
    "sana": Row(frozenset({"blocks"}), lambda b: dict(
        _text(b, 8, negative=True, mask=torch.long), guidance_scale=4.5, height=256, width=256, output_type="latent",
        use_resolution_binning=False, complex_human_instruction=None, negative_prompt=None),
        "SanaPipeline", "SanaTransformer2DModel",
        dict(patch_size=1, in_channels=4, out_channels=4, num_layers=2, num_attention_heads=2, attention_head_dim=4,
             num_cross_attention_heads=2, cross_attention_head_dim=4, cross_attention_dim=8, caption_channels=8,
             sample_size=32)),
    "tiny": Row(frozenset({"double", "single"}), lambda b: dict(prompt=_TINY_PROMPTS[:b], guidance_scale=4.0),
                spec="tiny"),
    "cogview4": Row(frozenset({"double"}), lambda b: dict(_text(b, 32, negative=True), **LATENT, guidance_scale=5.0),
                    "CogView4Pipeline", "CogView4Transformer2DModel",
                    dict(patch_size=2, in_channels=4, num_layers=2, attention_head_dim=4, num_attention_heads=4,
                         out_channels=4, text_embed_dim=32, time_embed_dim=8, condition_dim=4)),
    "auraflow": Row(frozenset({"double", "single"}), lambda b: dict(
        _text(b, 32, negative=True, mask=torch.long), **LATENT, guidance_scale=3.5),
        "AuraFlowPipeline", "AuraFlowTransformer2DModel",
        dict(sample_size=32, patch_size=2, in_channels=4, num_mmdit_layers=1, num_single_dit_layers=2,
             attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32,
             out_channels=4, pos_embed_max_size=256)),
    "chroma": Row(frozenset({"double", "single"}), lambda b: dict(
        _text(b, 32, negative=True, mask=torch.bool), **LATENT, guidance_scale=5.0),
        "ChromaPipeline", "ChromaTransformer2DModel",
        dict(patch_size=1, in_channels=4, num_layers=1, num_single_layers=2, attention_head_dim=16,
             num_attention_heads=2, joint_attention_dim=32, axes_dims_rope=[4, 4, 8], approximator_hidden_dim=32,
             approximator_layers=1, approximator_num_channels=16)),
    # LongCat-Image and Ovis-Image: cond and uncond calls per step (guidance_scale > 1); odd text lengths, a
    # non-square image
    "longcat_image": Row(frozenset({"double", "single"}), lambda b: dict(
        _text(b, 32, negative=True, t=7, neg_t=5), height=64, width=32, output_type="latent", guidance_scale=4.5,
        enable_cfg_renorm=False, enable_prompt_rewrite=False),
        "LongCatImageEmbedsPipeline", "LongCatImageTransformer2DModel", dict(_FLUX, in_channels=64)),  # 16 latent channels
    "ovis_image": Row(frozenset({"double", "single"}), lambda b: dict(
        _text(b, 32, negative=True, t=7, neg_t=5), height=64, width=32, output_type="latent", guidance_scale=5.0,
        negative_prompt=None),
        "OvisImagePipeline", "OvisImageTransformer2DModel",
        {k: v for k, v in dict(_FLUX, out_channels=4).items() if k != "pooled_projection_dim"}),
    "bria": Row(frozenset({"double", "single"}), lambda b: dict(
        _text(b, 32, negative=True, t=7), height=64, width=32, output_type="latent", guidance_scale=5.0),
        "BriaPipeline", "BriaTransformer2DModel", {k: v for k, v in _FLUX.items() if k != "pooled_projection_dim"},
        parts=dict(vae=("AutoencoderKL", _VAE))),
    "cogview3plus": Row(frozenset({"double"}), lambda b: dict(
        _text(b, 32, negative=True, t=7), height=64, width=32, output_type="latent", guidance_scale=5.0),
        "CogView3PlusPipeline", "CogView3PlusTransformer2DModel",
        dict(patch_size=2, in_channels=4, num_layers=2, attention_head_dim=4, num_attention_heads=2, out_channels=4,
             text_embed_dim=32, time_embed_dim=8, condition_dim=2, pos_embed_max_size=8, sample_size=8),
        scheduler="DDIMScheduler"),
    # PRX without CFG: diffusers 0.42.1's PRXPipeline repeats the timestep twice, not per row, so CFG fails on any
    # batch of more than one prompt (in diffusers itself, with or without dit-lens)
    "prx": Row(frozenset({"blocks"}), lambda b: dict(
        _text(b, 32, t=7, mask=torch.bool), height=64, width=32, output_type="latent",
        guidance_scale=1.0, use_resolution_binning=False),
        "PRXPipeline", "PRXTransformer2DModel",
        dict(in_channels=4, patch_size=2, context_in_dim=32, hidden_size=32, mlp_ratio=2.0, num_heads=2, depth=2,
             axes_dim=[8, 8]), jitter=True),
    "nucleusmoe_image": Row(frozenset({"blocks"}), lambda b: dict(
        _text(b, 16, negative=True, t=7, neg_t=5, mask=torch.long, mask_key="prompt_embeds_mask"), height=64,
        width=32, output_type="latent", guidance_scale=4.0),
        "NucleusMoEImagePipeline", "NucleusMoEImageTransformer2DModel",
        dict(patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16, num_attention_heads=2,
             joint_attention_dim=16, axes_dims_rope=(8, 4, 4), num_experts=4, moe_intermediate_dim=16,
             capacity_factors=8.0)),
    # HunyuanImage 2.1 with both text encoders' embeddings (glyph byT5 second); its guiders run CFG as two calls
    "hunyuanimage": Row(frozenset({"double", "single"}), lambda b: dict(
        _text(b, 32, negative=True, t=7, neg_t=5, mask=torch.long, mask_key="prompt_embeds_mask"),
        **_suffix(_text(b, 32, negative=True, t=5, neg_t=3, mask=torch.long, mask_key="prompt_embeds_mask"), "_2"),
        height=128, width=64, output_type="latent"),
        "HunyuanImagePipeline", "HunyuanImageTransformer2DModel",
        dict(in_channels=4, out_channels=4, num_attention_heads=4, attention_head_dim=8, num_layers=1,
             num_single_layers=2, num_refiner_layers=1, patch_size=(1, 1), text_embed_dim=32, text_embed_2_dim=32,
             rope_axes_dim=(4, 4)),
        parts=dict(guider=("AdaptiveProjectedMixGuidance", {}), ocr_guider=("AdaptiveProjectedMixGuidance", {}))),
    # GLM-Image: prior tokens (from its autoregressive model) given directly, one per image token
    "glm_image": Row(frozenset({"double"}), lambda b: dict(
        _text(b, 32, negative=True, t=7), height=64, width=32, output_type="latent", guidance_scale=1.5,
        prior_token_ids=torch.randint(0, 128, (b, 8), generator=torch.Generator().manual_seed(5))),
        "GlmImagePipeline", "GlmImageTransformer2DModel",
        dict(patch_size=2, in_channels=4, out_channels=4, num_layers=2, attention_head_dim=8, num_attention_heads=2,
             text_embed_dim=32, time_embed_dim=16, condition_dim=8, prior_vq_quantizer_codebook_size=128)),
    # HunyuanDiT: CLIP-like and T5 text of exactly text_len and text_len_t5 tokens; blocks after the middle take a
    # skip input from an earlier block
    "hunyuandit": Row(frozenset({"blocks"}), lambda b: dict(
        _text(b, 8, negative=True, t=7, mask=torch.long),
        **_suffix(_text(b, 8, negative=True, t=5, mask=torch.long), "_2"), height=64, width=32,
        output_type="latent", guidance_scale=5.0, use_resolution_binning=False),
        "HunyuanDiTPipeline", "HunyuanDiT2DModel",
        dict(sample_size=8, patch_size=2, in_channels=4, num_layers=4, attention_head_dim=8, num_attention_heads=2,
             cross_attention_dim=8, cross_attention_dim_t5=8, pooled_projection_dim=4, hidden_size=16, text_len=7,
             text_len_t5=5, activation_fn="gelu-approximate"), scheduler="DDPMScheduler",
        options=dict(requires_safety_checker=False)),
    # Lumina-Next: CFG batched as [cond; uncond], the reverse of the others
    "lumina_next": Row(frozenset({"blocks"}), lambda b: dict(
        _text(b, 32, negative=True, t=7, mask=torch.long), height=64, width=32, output_type="latent",
        guidance_scale=4.0, clean_caption=False),
        "LuminaPipeline", "LuminaNextDiT2DModel",
        dict(sample_size=16, patch_size=2, in_channels=4, hidden_size=24, num_layers=2, num_attention_heads=3,
             num_kv_heads=1, multiple_of=16, ffn_dim_multiplier=None, norm_eps=1e-5, learn_sigma=True, qk_norm=True,
             cross_attention_dim=32, scaling_factor=1.0)),
    # Bria-FIBO: each block's text stream is half the previous block's text, half one text-encoder layer
    "bria_fibo": Row(frozenset({"double", "single"}), lambda b: dict(
        _text(b, 64, negative=True, t=7), prompt_layers=[_embeds(b, 7, 32, seed=10 + i) for i in range(4)],
        negative_prompt_layers=[_embeds(b, 7, 32, seed=20 + i) for i in range(4)], height=64, width=32,
        output_type="latent", guidance_scale=5.0),
        "BriaFiboEmbedsPipeline", "BriaFiboTransformer2DModel",
        dict(patch_size=1, in_channels=48, num_layers=2, num_single_layers=2, attention_head_dim=8,
             num_attention_heads=2, joint_attention_dim=64, text_encoder_dim=32, pooled_projection_dim=None,
             axes_dims_rope=[0, 4, 4])),
}
# the guidance-distilled variant: no guiders, one call per step
ROWS["hunyuanimage_distilled"] = dataclasses.replace(
    ROWS["hunyuanimage"], config=dict(ROWS["hunyuanimage"].config, guidance_embeds=True), parts={},
    call=lambda b: dict(ROWS["hunyuanimage"].call(b), distilled_guidance_scale=3.5))


def _image(b: int, side: int = 32) -> torch.Tensor:
    return torch.rand(b, 3, side, side, generator=torch.Generator().manual_seed(7))


def _pil(side: int = 64):
    from PIL import Image

    return Image.fromarray((torch.rand(side, side, 3, generator=torch.Generator().manual_seed(3)).numpy() * 255)
                           .astype("uint8"))


_SD3 = dict(sample_size=32, patch_size=1, in_channels=4, num_layers=2, attention_head_dim=8, num_attention_heads=4,
            caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64, out_channels=4)
_QWEN = dict(patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16, num_attention_heads=3,
             joint_attention_dim=16, guidance_embeds=False, axes_dims_rope=(8, 4, 4))

# image-conditioned pipelines (img2img, inpainting, editing): their runs are shorter than num_inference_steps
# (strength) or carry the reference image's tokens in the image stream (Kontext, FLUX.2 editing)
IMAGE_ROWS = {
    "flux_inpaint": Row(frozenset({"double", "single"}), lambda b: dict(
        _text(b, 32, pooled=32), image=_image(b), mask_image=torch.ones(b, 1, 32, 32), strength=0.6, height=32,
        width=32, output_type="np", guidance_scale=1.0),
        "FluxInpaintPipeline", "FluxTransformer2DModel", _FLUX, parts=dict(vae=("AutoencoderKL", _VAE))),
    "flux_kontext": Row(frozenset({"double", "single"}), lambda b: dict(
        _text(b, 32, pooled=32), image=_image(b), height=32, width=32, max_area=32 * 32, _auto_resize=False,
        output_type="np", guidance_scale=1.0),
        "FluxKontextPipeline", "FluxTransformer2DModel", _FLUX, parts=dict(vae=("AutoencoderKL", _VAE))),
    "sd3_img2img": Row(frozenset({"double"}), lambda b: dict(
        _text(b, 32, pooled=64, negative=True), image=_image(b), strength=0.5, guidance_scale=5.0, output_type="np"),
        "StableDiffusion3Img2ImgPipeline", "SD3Transformer2DModel", _SD3,
        parts=dict(vae=("AutoencoderKL", dict(_VAE, latent_channels=4)))),
    "qwen_img2img": Row(frozenset({"double"}), lambda b: dict(
        _text(b, 16, negative=True, mask=torch.long, mask_key="prompt_embeds_mask"), image=_image(b), strength=0.5,
        true_cfg_scale=4.0, height=32, width=32, output_type="latent"),
        "QwenImageImg2ImgPipeline", "QwenImageTransformer2DModel", _QWEN,
        parts=dict(vae=("AutoencoderKLQwenImage", dict(base_dim=24, z_dim=4, dim_mult=[1, 2, 4], num_res_blocks=1,
                                                       temperal_downsample=[False, True], latents_mean=[0.0] * 4,
                                                       latents_std=[1.0] * 4)))),
    "flux2_klein_edit": Row(frozenset({"double", "single"}), lambda b: dict(
        _text(b, 16, negative=True), image=_pil(), height=64, width=64, output_type="latent"),
        "Flux2KleinPipeline", "Flux2Transformer2DModel", dict(_FLUX2, guidance_embeds=False),
        parts=dict(vae=("AutoencoderKLFlux2", _VAE_FLUX2))),
}


def lens(row: str, batch: int = 2):
    """The row's pipeline under a Lens, validated with a one-step call of the row's own arguments; and those
    arguments."""
    from .lens import Lens

    pipe, kw = (ROWS[row] if row in ROWS else IMAGE_ROWS[row]).build(batch)
    return Lens(pipe, example=dict(kw, num_inference_steps=1)), kw


@contextlib.contextmanager
def s3_server(bucket: str = "acts"):
    """An S3-protocol server (moto, a test dependency) on 127.0.0.1 in its own process, so that it can be paused
    (SIGSTOP) like a stalled endpoint: connections are accepted by the kernel, nothing answers. Yields the process and
    fsspec storage options; the server is killed on exit."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    import boto3

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                              region_name="us-east-1")
        for _ in range(300):
            try:
                client.create_bucket(Bucket=bucket)
                break
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.1)
        else:
            raise RuntimeError(f"the S3 test server at {endpoint} did not start")
        yield proc, {"key": "k", "secret": "s", "endpoint_url": endpoint,
                     "client_kwargs": {"region_name": "us-east-1"},
                     "config_kwargs": {"request_checksum_calculation": "when_required",
                                       "response_checksum_validation": "when_required"}}
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait()


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


def flux_dev(batch=2, device="cuda"):
    """A random-weight transformer of Flux.1-dev's configuration (19 + 38 blocks, width 3072) in bf16 at
    1024 x 1024 (4096 image tokens, 512 text tokens), built on ``device`` directly; no VAE (latents out),
    embeddings in (one row per sample). About 24 GB: a GPU's work."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

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
