"""Score generated shapes images against their prompts, with no learned model.

    parse_prompt(prompt)            -> (colour, shape, background)
    analyse(image)                  -> Analysis: background and subject colour, subject mask, best-fitting shape,
                                       IoU of the mask with that shape's template
    score(images, prompts)          -> Scores: per-image analyses and the mean accuracies / IoU

Colours are read as the nearest palette colour per pixel; the background is the most common colour on the border,
the subject the most common other colour. The shape is the template (every shape, fitted to the mask's bounding box
and refined over small shifts and sizes) with the highest IoU against the subject mask; a score's IoU is that of the
prompt's shape template (so a wrong shape scores low).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ArgumentError

from . import data

__all__ = ["parse_prompt", "Analysis", "analyse", "Scores", "score"]

_NAMES = list(data.COLOURS)
_PALETTE = np.array([data.COLOURS[c] for c in _NAMES], np.float32)


def parse_prompt(prompt: str) -> tuple[str, str, str]:
    words = prompt.lower().split()
    if len(words) != 7 or words[0] != "a" or words[3:5] != ["on", "a"] or words[6] != "background":
        raise ArgumentError(f"not a shapes prompt: {prompt!r} (expected 'a COLOUR SHAPE on a COLOUR background')")
    return words[1], words[2], words[5]


@dataclass
class Analysis:
    colour: str | None
    background: str
    shape: str | None
    iou: float  # IoU of the mask with the best-fitting template
    mask: np.ndarray = field(repr=False)
    ious: dict = field(default_factory=dict)  # shape -> IoU of its best-fitting template


def _templates(mask: np.ndarray) -> tuple[list, np.ndarray]:
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    w, h = x1 - x0, y1 - y0
    keys, masks = [], []
    for shape in data.SHAPES:
        if shape == "triangle":  # spans 2r wide and 1.8r tall, centre 0.1r below the box centre
            r0 = max(w / 2, h / 1.8)
            cx0, cy0 = (x0 + x1) / 2, y0 + r0
        elif shape == "square":
            r0 = max(w, h) / 1.7
            cx0, cy0 = (x0 + x1) / 2, (y0 + y1) / 2
        else:
            r0 = max(w, h) / 2
            cx0, cy0 = (x0 + x1) / 2, (y0 + y1) / 2
        for dr in (-0.5, 0.0, 0.5):
            for dx in (-0.5, 0.0, 0.5):
                for dy in (-0.5, 0.0, 0.5):
                    keys.append(shape)
                    masks.append(data.render(shape, cx0 + dx, cy0 + dy, max(r0 + dr, 1.0), mask.shape[0], 2) >= 0.5)
    return keys, np.stack(masks)


def analyse(image: np.ndarray) -> Analysis:
    """``image``: uint8 (H, W, 3)."""
    img = np.asarray(image, np.float32)
    labels = ((img[:, :, None, :] - _PALETTE) ** 2).sum(-1).argmin(-1)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    bg = np.bincount(border, minlength=len(_NAMES)).argmax()
    counts = np.bincount(labels[labels != bg].ravel(), minlength=len(_NAMES))
    if counts.sum() == 0:
        return Analysis(None, _NAMES[bg], None, 0.0, np.zeros(labels.shape, bool))
    fg = counts.argmax()
    mask = labels == fg
    keys, masks = _templates(mask)
    inter = (masks & mask).sum((1, 2))
    union = (masks | mask).sum((1, 2))
    ious = inter / np.maximum(union, 1)
    best = int(ious.argmax())
    per = {s: float(max(i for k, i in zip(keys, ious) if k == s)) for s in data.SHAPES}
    return Analysis(_NAMES[fg], _NAMES[bg], keys[best], float(ious[best]), mask, per)


@dataclass
class Scores:
    colour: float
    background: float
    shape: float
    iou: float
    per_shape: dict
    n: int
    rows: list = field(repr=False, default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("rows")
        return d


def score(images, prompts: list[str]) -> Scores:
    rows = []
    for image, prompt in zip(images, prompts):
        colour, shape, background = parse_prompt(prompt)
        a = analyse(np.asarray(image))
        rows.append(dict(prompt=prompt, colour_ok=a.colour == colour, background_ok=a.background == background,
                         shape_ok=a.shape == shape, shape_read=a.shape, colour_read=a.colour,
                         background_read=a.background, iou=a.ious.get(shape, 0.0), shape=shape))
    if not rows:
        raise ArgumentError("no images to score")
    per_shape = {}
    for s in data.SHAPES:
        sub = [r["shape_ok"] for r in rows if r["shape"] == s]
        if sub:
            per_shape[s] = float(np.mean(sub))
    return Scores(colour=float(np.mean([r["colour_ok"] for r in rows])),
                  background=float(np.mean([r["background_ok"] for r in rows])),
                  shape=float(np.mean([r["shape_ok"] for r in rows])),
                  iou=float(np.mean([r["iou"] for r in rows])), per_shape=per_shape, n=len(rows), rows=rows)
