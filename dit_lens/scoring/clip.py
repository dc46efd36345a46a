"""CLIP score: how well images match prompts, by a transformers ``CLIPModel`` — a scorer for any text-to-image model.

    CLIPScorer(model, device=None, batch_size=32)   ``model``: a hub id or a local folder (``CLIPModel`` and its
                                                    processor), or a ``(CLIPModel, CLIPProcessor)`` pair
      .similarity(images, prompts)   (n,) CLIP score: 100 x max(cosine of image and prompt embeddings, 0)
      .score(images, prompts)        {"clip_score": the same / 100}, in [0, 1] (disrupt's semantic measure)
      .transported(...)              (the Scorer default) closer to the source prompt than to the target one

Loading by hub id downloads the model once (transformers' cache); a folder loads offline.
"""

from __future__ import annotations

import numpy as np

from . import Scorer

__all__ = ["CLIPScorer"]


class CLIPScorer(Scorer):
    def __init__(self, model, device=None, batch_size: int = 32):
        import torch
        from transformers import CLIPModel, CLIPProcessor

        if isinstance(model, (tuple, list)):
            self.model, self.processor = model
            self.name = f"CLIP score ({type(self.model).__name__})"
        else:
            self.model = CLIPModel.from_pretrained(str(model))
            self.processor = CLIPProcessor.from_pretrained(str(model))
            self.name = f"CLIP score ({model})"
        self.device = torch.device(device) if device is not None else next(self.model.parameters()).device
        self.model.to(self.device).eval()
        self.batch_size = batch_size

    def similarity(self, images, prompts) -> np.ndarray:
        import torch

        images, prompts = np.asarray(images), list(prompts)
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
        out = []
        with torch.no_grad():
            for i in range(0, len(prompts), self.batch_size):
                batch = self.processor(text=prompts[i:i + self.batch_size], images=list(images[i:i + self.batch_size]),
                                       return_tensors="pt", padding=True, truncation=True)
                batch = {k: v.to(self.device) for k, v in batch.items()}
                img = self.model.get_image_features(pixel_values=batch["pixel_values"])
                txt = self.model.get_text_features(input_ids=batch["input_ids"],
                                                   attention_mask=batch.get("attention_mask"))
                img, txt = (torch.nn.functional.normalize(_tensor(x).float(), dim=-1) for x in (img, txt))
                out.append((100 * (img * txt).sum(-1)).clamp(min=0).cpu().numpy())
        return np.concatenate(out)

    def score(self, images, prompts) -> dict:
        return {"clip_score": self.similarity(images, prompts) / 100}


def _tensor(x):
    """transformers returns features as a tensor, or (in some versions) an output object holding them."""
    return x if hasattr(x, "dim") else (x.pooler_output if getattr(x, "pooler_output", None) is not None
                                        else x[0])
