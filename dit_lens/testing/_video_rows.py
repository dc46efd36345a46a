"""Contract rows of the video DiTs: 5 frames (2 latent frames), non-square frames, odd text lengths.

    VIDEO_ROWS   id -> Row: one per video adapter, and Wan without CFG (the contract's batch-only checks)
"""

from __future__ import annotations

import dataclasses

import torch

from ._row import Row, _text

__all__ = ["VIDEO_ROWS"]

VIDEO = dict(height=32, width=64, output_type="latent")  # 4 x 8 latent pixels per frame
# video DiTs: 5 frames (2 latent frames), non-square frames, odd text lengths
VIDEO_ROWS = {
    "wan": Row(frozenset({"blocks"}), lambda b: dict(
        _text(b, 32, negative=True, t=7, neg_t=5), **VIDEO, num_frames=5, guidance_scale=5.0),
        "WanPipeline", "WanTransformer3DModel",
        dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
             text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
             qk_norm="rms_norm_across_heads", rope_max_seq_len=32)),
    "cogvideox": Row(frozenset({"double"}), lambda b: dict(
        _text(b, 32, negative=True, t=7), **VIDEO, num_frames=9, guidance_scale=6.0),
        "CogVideoXPipeline", "CogVideoXTransformer3DModel",
        dict(num_attention_heads=4, attention_head_dim=8, in_channels=4, out_channels=4, time_embed_dim=2,
             text_embed_dim=32, num_layers=2, sample_width=8, sample_height=4, sample_frames=9, patch_size=2,
             temporal_compression_ratio=4, max_text_seq_length=7), scheduler="CogVideoXDDIMScheduler"),
    "hunyuanvideo": Row(frozenset({"double", "single"}), lambda b: dict(
        _text(b, 16, pooled=8, t=7, mask=torch.long), **VIDEO, num_frames=5, guidance_scale=6.0),
        "HunyuanVideoPipeline", "HunyuanVideoTransformer3DModel",
        dict(in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=10, num_layers=2,
             num_single_layers=2, num_refiner_layers=1, patch_size=1, patch_size_t=1, guidance_embeds=True,
             text_embed_dim=16, pooled_projection_dim=8, rope_axes_dim=(2, 4, 4))),
    "ltx_video": Row(frozenset({"blocks"}), lambda b: dict(
        _text(b, 32, negative=True, t=7, mask=torch.long), height=64, width=128, output_type="latent",
        num_frames=9, guidance_scale=3.0),  # 32x spatial, 8x temporal compression: 2 frames of 2 x 4
        "LTXPipeline", "LTXVideoTransformer3DModel",
        dict(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4,
             attention_head_dim=8, cross_attention_dim=32, num_layers=2, caption_channels=32)),
    "mochi": Row(frozenset({"double"}), lambda b: dict(
        _text(b, 32, negative=True, t=7, mask=torch.long), **VIDEO, num_frames=7, guidance_scale=4.5),
        "MochiPipeline", "MochiTransformer3DModel",  # 6x temporal compression: 2 latent frames
        dict(patch_size=2, num_attention_heads=2, attention_head_dim=8, num_layers=2, pooled_projection_dim=16,
             in_channels=12, out_channels=None, qk_norm="rms_norm", text_embed_dim=32, time_embed_dim=4,
             activation_fn="swiglu", max_sequence_length=16)),
    "sana_video": Row(frozenset({"blocks"}), lambda b: dict(
        _text(b, 8, negative=True, t=7, mask=torch.long), **VIDEO, frames=5, guidance_scale=6.0,
        use_resolution_binning=False, complex_human_instruction=None, negative_prompt=None),
        "SanaVideoPipeline", "SanaVideoTransformer3DModel",
        dict(in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=12, num_layers=2,
             num_cross_attention_heads=2, cross_attention_head_dim=12, cross_attention_dim=24, caption_channels=8,
             mlp_ratio=2.5, dropout=0.0, attention_bias=False, sample_size=8, patch_size=(1, 2, 2),
             norm_elementwise_affine=False, norm_eps=1e-6, qk_norm="rms_norm_across_heads", rope_max_seq_len=32)),
}
# Wan without CFG: one call per step (the contract's batch-only checks run on it)
VIDEO_ROWS["wan_nocfg"] = dataclasses.replace(VIDEO_ROWS["wan"],
                                              call=lambda b: dict(VIDEO_ROWS["wan"].call(b), guidance_scale=1.0))