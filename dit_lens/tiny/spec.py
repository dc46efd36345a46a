"""The embedded model as a registered model spec: what ``Lens("tiny")`` and the recipes' defaults resolve to.

    ShapesScorer    the ground-truth evaluator as a ``dit_lens.scoring.Scorer``: shape and colour accuracy, transport
                    success (the subject takes the source's colour, the target keeps its background and position),
                    subject masks
    image_latents   images and seeded noise as the transformer's packed input (image-conditioned transport)
    SPEC            the ``dit_lens.models.ModelSpec`` registered as "tiny" (its demo: ``dit_lens.tiny.demo``)
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ArgumentError
from ..models import ModelSpec
from ..scoring import Scorer
from . import data, evaluate
from .demo import demo
from .pipeline import build, pack

__all__ = ["ShapesScorer", "image_latents", "SPEC"]


class ShapesScorer(Scorer):
    name = "shapes evaluator"

    def score(self, images, prompts) -> dict[str, np.ndarray]:
        rows = evaluate.score(images, prompts).rows
        return {"shape_acc": np.array([float(r["shape_ok"]) for r in rows]),
                "colour_acc": np.array([float(r["colour_ok"]) for r in rows])}

    def transported(self, images, sources, targets, target_images) -> np.ndarray:
        out = []
        for img, src, tgt, tgt_img in zip(images, sources, targets, target_images):
            a, target_mask = evaluate.analyse(img), evaluate.analyse(tgt_img).mask
            src_colour, _, _ = evaluate.parse_prompt(src)
            _, _, tgt_bg = evaluate.parse_prompt(tgt)
            union = (a.mask | target_mask).sum()
            out.append(a.colour == src_colour and a.background == tgt_bg and bool(union)
                       and (a.mask & target_mask).sum() / union >= 0.5)
        return np.array(out, bool)

    def masks(self, images) -> np.ndarray:
        return np.stack([evaluate.analyse(img).mask for img in images])


def image_latents(pipeline, images: np.ndarray, seeds) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, 32, 32, 3) images and the seeded noise of each (the run's own initial latents for that seed), both
    packed to (n, 256, 12) as the transformer takes them."""
    if images.shape[1:3] != (data.SIZE, data.SIZE):
        raise ArgumentError(f"source_images are {images.shape[1]}x{images.shape[2]}; the embedded model draws "
                            f"{data.SIZE}x{data.SIZE}")
    x0 = torch.from_numpy(np.asarray(images)).float().permute(0, 3, 1, 2) / 127.5 - 1.0
    eps = torch.stack([torch.randn(x0.shape[1:], generator=torch.Generator().manual_seed(int(s))) for s in seeds])
    return pack(x0), pack(eps)


SPEC = ModelSpec(name="tiny", pipeline_class="TinyShapesPipeline", build=build,
                 example={"prompt": ["a red circle on a blue background"], "num_inference_steps": 1},
                 scorer=ShapesScorer, image_latents=image_latents, demo=demo)
