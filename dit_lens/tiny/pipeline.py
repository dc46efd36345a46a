"""The embedded model: a small Flux-architecture text-to-image DiT in pixel space, as a diffusers pipeline.

    TRANSFORMER_CONFIG, TEXT_CONFIG   configs of the stock diffusers / transformers classes it is built from
    WordTokenizer                     word-level tokenizer over the shapes vocabulary (unknown words are an error)
    TinyShapesPipeline                a ``DiffusionPipeline``: CLIPTextModel -> FluxTransformer2DModel, Euler flow
                                      matching with classifier-free guidance (batch ``[uncond; cond]``)
    build(weights=None)               a pipeline from config, with the shipped weights (or a given file) or random
    transformer_config(...)           the config with another width/depth (training ablations; stored in the weights)
    conditioning(pooled=, registers=) how the prompt reaches the transformer (stored in the weights): "clip" feeds
                                      CLIP's pooled output to every block's modulation (v1); "none" feeds zeros, so
                                      the prompt enters through the text tokens alone, as T5's do in Flux; registers
                                      appends that many learned register tokens to every prompt's text tokens
    WEIGHTS                           path of the shipped weights (safetensors)

Images are 32 x 32 RGB in pixel space; the transformer sees 2 x 2 patches packed to 16 x 16 = 256 image tokens of 12
values (as Flux packs its latents), and 10 text tokens.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextConfig, CLIPTextModel

from ..errors import ArgumentError
from . import data

__all__ = ["PATCH", "GRID", "MAX_TOKENS", "TRANSFORMER_CONFIG", "VOCAB", "TEXT_CONFIG", "WEIGHTS", "WordTokenizer",
           "image_ids", "pack", "unpack", "TinyShapesPipeline", "transformer_config", "weights_config", "build",
           "load_weights", "conditioning", "CONDITIONING"]

PATCH = 2
GRID = data.SIZE // PATCH  # 16 x 16 image tokens
MAX_TOKENS = 10
TRANSFORMER_CONFIG = dict(
    patch_size=1,
    in_channels=3 * PATCH * PATCH,
    num_layers=2,
    num_single_layers=4,
    attention_head_dim=32,
    num_attention_heads=4,
    joint_attention_dim=128,
    pooled_projection_dim=128,
    guidance_embeds=False,
    axes_dims_rope=(8, 12, 12),
)
VOCAB = ["<pad>", "<eos>", "<bos>", "a", "on", "background", *data.COLOURS, *data.SHAPES]
TEXT_CONFIG = dict(
    vocab_size=len(VOCAB),
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=MAX_TOKENS,
    pad_token_id=0,
    eos_token_id=1,  # not 2: CLIP's legacy pooling (argmax of ids) applies when eos_token_id == 2
    bos_token_id=2,
)
WEIGHTS = resources.files("dit_lens.tiny") / "weights" / "tiny_shapes.safetensors"
CONDITIONING = dict(pooled="clip", registers=0)  # the shipped (v1) model's


def conditioning(pooled: str = "clip", registers: int = 0) -> dict:
    """How prompts condition the model (see the module docstring); checked."""
    if pooled not in ("clip", "none"):
        raise ArgumentError(f"pooled={pooled!r}: 'clip' (CLIP's pooled output modulates every block) or 'none'")
    if not 0 <= int(registers) <= 16:
        raise ArgumentError(f"registers={registers}: 0..16 register tokens")
    return dict(pooled=pooled, registers=int(registers))


def _text_config(registers: int) -> dict:
    return dict(TEXT_CONFIG, vocab_size=len(VOCAB) + registers, max_position_embeddings=MAX_TOKENS + registers)


class WordTokenizer:
    """Maps a prompt to ``[<bos>, words..., <eos>, <pad>...]`` ids of length ``MAX_TOKENS``, then ``registers``
    register tokens ``<reg0>...`` (ids after the vocabulary's)."""

    def __init__(self, vocab: list[str] = VOCAB, max_length: int = MAX_TOKENS, registers: int = 0):
        self.vocab = list(vocab) + [f"<reg{i}>" for i in range(registers)]
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.max_length = max_length
        self.registers = [self.ids[f"<reg{i}>"] for i in range(registers)]

    def __call__(self, prompts: str | list[str]) -> torch.Tensor:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        rows = []
        for p in prompts:
            words = p.lower().split()
            unknown = [w for w in words if w not in self.ids or w.startswith("<")]
            if unknown:
                raise ArgumentError(
                    f"prompt {p!r} has words outside the tiny model's vocabulary: {unknown}; "
                    f"known words: {', '.join(w for w in self.vocab if not w.startswith('<'))}"
                )
            if len(words) + 2 > self.max_length:
                raise ArgumentError(f"prompt {p!r} has {len(words)} words; at most {self.max_length - 2} fit")
            ids = [self.ids["<bos>"], *(self.ids[w] for w in words), self.ids["<eos>"]]
            rows.append(ids + [self.ids["<pad>"]] * (self.max_length - len(ids)) + self.registers)
        return torch.tensor(rows, dtype=torch.long)


def image_ids(device=None) -> torch.Tensor:
    """Flux-style position ids (0, row, col) of the image tokens, shape (GRID*GRID, 3)."""
    rows, cols = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij")
    return torch.stack([torch.zeros_like(rows), rows, cols], -1).reshape(-1, 3).float().to(device)


def pack(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, 32, 32) -> (B, 256, 12) patch tokens."""
    return rearrange(images, "b c (h p) (w q) -> b (h w) (c p q)", p=PATCH, q=PATCH)


def unpack(tokens: torch.Tensor) -> torch.Tensor:
    """(B, 256, 12) -> (B, 3, 32, 32)."""
    return rearrange(tokens, "b (h w) (c p q) -> b c (h p) (w q)", h=GRID, p=PATCH, q=PATCH)


class TinyShapesPipeline(DiffusionPipeline):
    """Text-to-image pipeline of the embedded model (see the module docstring)."""

    def __init__(self, transformer, text_encoder, tokenizer, scheduler, pooled: str = "clip"):
        super().__init__()
        self.register_modules(transformer=transformer, text_encoder=text_encoder, tokenizer=tokenizer,
                              scheduler=scheduler)
        self.pooled = conditioning(pooled)["pooled"]

    def encode_prompt(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Text tokens (B, tokens, 128) and the pooled vector (B, 128): CLIP's pooled output, or zeros when the
        model is conditioned through its text tokens alone (``pooled="none"``)."""
        ids = self.tokenizer(prompts).to(self.text_encoder.device)
        out = self.text_encoder(ids)
        pooled = out.pooler_output if self.pooled == "clip" else torch.zeros_like(out.pooler_output)
        return out.last_hidden_state, pooled

    def denoise(self, x, embeds, pooled, t):
        """One transformer call: packed tokens x (B, 256, 12), t in [0, 1] (B,) -> velocity (B, 256, 12)."""
        txt_ids = torch.zeros(embeds.shape[1], 3, device=x.device)
        return self.transformer(hidden_states=x, encoder_hidden_states=embeds, pooled_projections=pooled,
                                timestep=t, img_ids=image_ids(x.device), txt_ids=txt_ids, return_dict=False)[0]

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], num_inference_steps: int = 20, guidance_scale: float = 4.0,
                 generator=None, latents: torch.Tensor | None = None, output_type: str = "np",
                 return_dict: bool = True):
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise ArgumentError("no prompt given")
        if num_inference_steps < 1:
            raise ArgumentError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        n = len(prompts)
        device = self.transformer.device
        cfg = guidance_scale > 1.0
        embeds, pooled = self.encode_prompt(([""] * n if cfg else []) + prompts)
        if latents is None:
            latents = randn_tensor((n, 3, data.SIZE, data.SIZE), generator=generator, device=device,
                                   dtype=torch.float32)
        x = pack(latents.to(device))
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        for t in self.progress_bar(self.scheduler.timesteps):
            xin = torch.cat([x, x]) if cfg else x
            v = self.denoise(xin, embeds, pooled, (t / 1000.0).expand(xin.shape[0]).to(x.dtype))
            if cfg:
                v_uncond, v_cond = v.chunk(2)
                v = v_uncond + guidance_scale * (v_cond - v_uncond)
            x = self.scheduler.step(v, t, x, return_dict=False)[0]
        images = unpack(x).clamp(-1, 1)
        if output_type == "pt":
            out = images
        else:
            out = ((images.permute(0, 2, 3, 1).cpu().numpy() + 1.0) * 127.5).round().astype(np.uint8)
            if output_type == "pil":
                from PIL import Image

                out = [Image.fromarray(a) for a in out]
        if not return_dict:
            return (out,)
        return ImagePipelineOutput(images=out)


def transformer_config(heads: int | None = None, double: int | None = None, single: int | None = None) -> dict:
    """``TRANSFORMER_CONFIG`` with the width (``heads`` x 32) or depth changed; used by training ablations."""
    cfg = dict(TRANSFORMER_CONFIG)
    for key, value in (("num_attention_heads", heads), ("num_layers", double), ("num_single_layers", single)):
        if value is not None:
            if value < 1:
                raise ArgumentError(f"{key} must be >= 1, got {value}")
            cfg[key] = int(value)
    return cfg


def weights_config(path, part: str = "transformer_config") -> dict:
    """The transformer config (or, ``part="conditioning"``, the conditioning) a weights file was trained with (its
    metadata), or the shipped model's."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if part == "conditioning":
        return conditioning(**json.loads(meta.get("conditioning", "{}")))
    cfg = json.loads(meta["transformer_config"]) if "transformer_config" in meta else TRANSFORMER_CONFIG
    cfg = dict(cfg)
    cfg["axes_dims_rope"] = tuple(cfg["axes_dims_rope"])
    return cfg


def build(weights: str | Path | None | bool = True, config: dict | None = None,
          cond: dict | None = None) -> TinyShapesPipeline:
    """The embedded pipeline in eval mode: ``weights=True`` loads the shipped weights, a path loads that file (with
    the transformer config and conditioning stored in it), ``None``/``False`` leaves random weights (seeded by the
    caller) of ``config`` (default ``TRANSFORMER_CONFIG``) and ``cond`` (default ``CONDITIONING``)."""
    if weights is True:
        if not WEIGHTS.is_file():
            raise FileNotFoundError(f"the embedded model's weights are missing from the package: {WEIGHTS}")
        weights = WEIGHTS
    if weights:
        config, cond = weights_config(weights), weights_config(weights, "conditioning")
    cond = conditioning(**(cond or CONDITIONING))
    transformer = FluxTransformer2DModel(**(config or TRANSFORMER_CONFIG))
    text_encoder = CLIPTextModel(CLIPTextConfig(**_text_config(cond["registers"])))
    pipe = TinyShapesPipeline(transformer, text_encoder, WordTokenizer(registers=cond["registers"]),
                              FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0), cond["pooled"])
    if weights:
        load_weights(pipe, weights)
    pipe.transformer.eval()
    pipe.text_encoder.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_weights(pipe: TinyShapesPipeline, path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    for name in ("transformer", "text_encoder"):
        part = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
        missing, unexpected = getattr(pipe, name).load_state_dict(part, strict=False)
        if missing or unexpected:
            raise ArgumentError(f"{path}: weights do not match the tiny model's {name} "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
