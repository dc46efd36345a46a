"""What recipes ask of a model-specific judge of images, and subject masks from wherever they come.

    Scorer                      the base class a scorer fills in (each method optional; a recipe that needs one
                                the scorer lacks says so):
      .score(images, prompts)   {metric: (n,) values in [0, 1]} per image, e.g. shape and colour accuracy
      .similarity(images, prompts)   (n,) image-prompt similarity, e.g. a CLIP score
      .transported(images, sources, targets, target_images)   (n,) bools: did transport move each image to its
                                source prompt while keeping its target's content (default: ``similarity`` to the
                                source above ``similarity`` to the target)
      .masks(images)            (n, H, W) bool subject masks of the images
    implements(scorer, method)  whether a scorer (or None) implements one of those methods
    resolve_scorer(scorer, spec)    a recipe's ``scorer=`` argument -> a Scorer or None (None: the model spec's
                                    default; "none" / False: no scorer; "clip:<hub id or folder>": a CLIPScorer)
    CLIPScorer(model)           CLIP score (scoring/clip.py): image-prompt similarity by a transformers CLIPModel
    pool_masks(masks, grid)     (n, H, W) masks at image resolution -> (n, rows, cols) on the token grid (majority)
    load_masks(masks, n, grid)  a recipe's ``masks=`` argument (image files, or an array at image or grid
                                resolution) -> (n, rows, cols) bools

Images are uint8 (n, H, W, 3) arrays, as stores keep them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ArgumentError, RecipeError

__all__ = ["Scorer", "implements", "resolve_scorer", "pool_masks", "load_masks", "CLIPScorer"]


class Scorer:
    """A model-specific judge of generated images; subclass it and implement what the model allows."""

    name = "scorer"

    def score(self, images: np.ndarray, prompts: list[str]) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{self.name} gives no per-image scores")

    def similarity(self, images: np.ndarray, prompts: list[str]) -> np.ndarray:
        raise NotImplementedError(f"{self.name} gives no image-prompt similarity")

    def transported(self, images: np.ndarray, sources: list[str], targets: list[str],
                    target_images: np.ndarray) -> np.ndarray:
        return self.similarity(images, sources) > self.similarity(images, targets)

    def masks(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{self.name} gives no subject masks")


def implements(scorer: Scorer | None, method: str) -> bool:
    """Whether ``scorer`` implements ``method`` (``transported`` counts when ``similarity`` does)."""
    if scorer is None:
        return False
    if method == "transported" and type(scorer).transported is Scorer.transported:
        method = "similarity"
    return getattr(type(scorer), method) is not getattr(Scorer, method)


def resolve_scorer(scorer, spec) -> Scorer | None:
    """``None`` or "default": the model spec's default scorer (None for a model without one); ``False`` or "none":
    no scorer; a Scorer: itself."""
    if scorer is None or scorer == "default":
        return spec.scorer() if spec is not None and spec.scorer is not None else None
    if scorer is False or scorer == "none":
        return None
    if isinstance(scorer, Scorer):
        return scorer
    if isinstance(scorer, str) and scorer.startswith("clip:"):
        from .clip import CLIPScorer

        return CLIPScorer(scorer.removeprefix("clip:"))
    raise ArgumentError(f"scorer={scorer!r}: give a dit_lens.scoring.Scorer, None / 'default' (the model's own), "
                        f"'clip:<hub id or folder>' or 'none'")


def pool_masks(masks: np.ndarray, grid) -> np.ndarray:
    """(n, H, W) bool masks -> (n, rows, cols): a token is inside where most of its pixels are."""
    from einops import reduce

    masks = np.asarray(masks)
    rows, cols = grid
    n, H, W = masks.shape
    if H % rows or W % cols:
        raise ArgumentError(f"masks of {H}x{W} pixels do not divide into the {rows}x{cols} token grid")
    return reduce(masks.astype(np.float32), "n (r h) (c w) -> n r c", "mean", r=rows, c=cols) >= 0.5


def load_masks(masks, n: int, grid) -> np.ndarray:
    """``masks``: image files (one per sample; nonzero pixels are the subject), or a bool array (n, H, W) at image
    resolution or (n, rows, cols) on the token grid -> (n, rows, cols) bools."""
    if len(masks) and isinstance(masks[0], (str, Path)):
        from PIL import Image

        missing = [str(p) for p in masks if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"masks: no such files {missing[:4]}")
        arrays = [np.asarray(Image.open(p).convert("L")) > 0 for p in masks]
        if len({a.shape for a in arrays}) != 1:
            raise RecipeError(f"mask images differ in size: {sorted({a.shape for a in arrays})}")
        masks = np.stack(arrays)
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[0] != n:
        raise RecipeError(f"masks of shape {masks.shape}; expected one (H, W) mask per sample: ({n}, H, W), "
                          f"on the token grid {(n, *grid)} or at image resolution")
    masks = masks.astype(bool)
    return masks if masks.shape[1:] == tuple(grid) else pool_masks(masks, grid)


def __getattr__(name):
    if name == "CLIPScorer":  # imports transformers' CLIP on first use
        from .clip import CLIPScorer

        return CLIPScorer
    raise AttributeError(f"module 'dit_lens.scoring' has no attribute {name!r}")
