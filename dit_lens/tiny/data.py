"""Procedural shapes: a text-to-image data set with exact ground truth.

Each sample is one subject shape of one colour on a plain background colour, at a random position and size, with
its prompt ("a red circle on a blue background"), its exact subject mask and its attributes. Everything is a
deterministic function of a seed.

    COLOURS, SHAPES           the vocabulary (name -> RGB, shape names)
    render(shape, cx, cy, r)  a soft coverage map of one shape, shape (size, size), values in [0, 1]
    Sample                    one sample's image, mask, prompt and attributes
    sample(seed)              one deterministic sample
    batch(seed, n)            n samples stacked as arrays (images in [-1, 1], channels first)
    prompt_for(...)           the prompt of a (colour, shape, background) triple
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ArgumentError

__all__ = ["COLOURS", "SHAPES", "SIZE", "R_MIN", "R_MAX", "prompt_for", "render", "Sample", "sample", "batch"]

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "orange": (245, 140, 20),
    "purple": (140, 50, 180),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring")
SIZE = 32  # image side in pixels
R_MIN, R_MAX = 7.0, 12.0  # subject "radius" in pixels
_SUPER = 4  # supersampling factor for anti-aliased edges


def prompt_for(colour: str, shape: str, background: str) -> str:
    return f"a {colour} {shape} on a {background} background"


def _inside(shape: str, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Boolean membership of normalised offsets (units of the radius, y down) in a shape."""
    if shape == "circle":
        return dx * dx + dy * dy <= 1.0
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.85
    if shape == "triangle":  # apex up at dy=-1, base at dy=0.8, half-width 1 at the base
        return (dy <= 0.8) & (np.abs(dx) <= (dy + 1.0) / 1.8)
    if shape == "cross":
        return ((np.abs(dx) <= 0.34) & (np.abs(dy) <= 1.0)) | ((np.abs(dy) <= 0.34) & (np.abs(dx) <= 1.0))
    if shape == "ring":
        rr = dx * dx + dy * dy
        return (rr <= 1.0) & (rr >= 0.5**2)
    raise ArgumentError(f"unknown shape {shape!r}; valid: {', '.join(SHAPES)}")


def render(shape: str, cx: float, cy: float, r: float, size: int = SIZE, supersample: int = _SUPER) -> np.ndarray:
    """Coverage (fraction of each pixel inside the shape), float32 array (size, size)."""
    n = size * supersample
    coords = (np.arange(n, dtype=np.float32) + 0.5) / supersample
    dx = (coords[None, :] - cx) / r
    dy = (coords[:, None] - cy) / r
    inside = _inside(shape, dx, dy).astype(np.float32)
    return inside.reshape(size, supersample, size, supersample).mean(axis=(1, 3))


@dataclass(frozen=True)
class Sample:
    image: np.ndarray  # uint8 (SIZE, SIZE, 3)
    mask: np.ndarray  # bool (SIZE, SIZE): pixels at least half covered by the subject
    prompt: str
    colour: str
    shape: str
    background: str
    cx: float
    cy: float
    r: float


def sample(seed: int) -> Sample:
    """One deterministic sample; different seeds give independent samples."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    colour, background = rng.choice(len(names), size=2, replace=False)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    r = float(rng.uniform(R_MIN, R_MAX))
    margin = r + 1.0
    cx, cy = (float(v) for v in rng.uniform(margin, SIZE - margin, size=2))
    cover = render(shape, cx, cy, r)
    fg = np.asarray(COLOURS[names[colour]], np.float32)
    bg = np.asarray(COLOURS[names[background]], np.float32)
    image = cover[..., None] * fg + (1.0 - cover[..., None]) * bg
    return Sample(
        image=np.clip(np.rint(image), 0, 255).astype(np.uint8),
        mask=cover >= 0.5,
        prompt=prompt_for(names[colour], shape, names[background]),
        colour=names[colour],
        shape=shape,
        background=names[background],
        cx=cx,
        cy=cy,
        r=r,
    )


def batch(seed: int, n: int) -> tuple[np.ndarray, list[str], list[Sample]]:
    """n samples from seeds seed*n .. seed*n+n-1: images float32 (n, 3, SIZE, SIZE) in [-1, 1], prompts, samples."""
    samples = [sample(seed * n + i) for i in range(n)]
    images = np.stack([s.image for s in samples]).astype(np.float32) / 127.5 - 1.0
    return images.transpose(0, 3, 1, 2).copy(), [s.prompt for s in samples], samples
