"""Contract rows of the image DiTs (text-to-image calls) and of image-conditioned pipelines.

    ROWS         id -> Row: at least one per image adapter, both CFG styles, odd text lengths, non-square images
    IMAGE_ROWS   img2img, inpainting and editing pipelines of Flux, SD3, Qwen-Image and FLUX.2
"""

from __future__ import annotations

import dataclasses

import torch

from ._row import LATENT, Row, _embeds, _pooled, _suffix, _text

__all__ = ["ROWS", "IMAGE_ROWS"]

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
