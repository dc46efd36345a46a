"""A contract row (a diffusers pipeline class, a tiny transformer config and the call that drives it) and the
helpers rows are written with.

    Row                  one contract row; ``Row.build(batch)`` -> (pipeline, kwargs)
    _text(b, d, ...)     precomputed text conditioning of b rows (embeddings, pooled vector, negatives, masks)
    _suffix(kw, "_2")    the same for a second text encoder's keywords
    LATENT               height 64, width 64, latent output
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch

__all__ = ["Row", "LATENT"]


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
            from ..models import get

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
