"""Samples: prompts x seeds in prompt-major order (the order of stores and recipe reports), and their generators.

    grid(prompts, seeds) -> (prompts, seeds)   one entry per sample: every seed of the first prompt, then the next
    generators(seeds)                          one seeded CPU ``torch.Generator`` per sample
"""

from __future__ import annotations

from .errors import ArgumentError

__all__ = ["grid", "generators"]


def grid(prompts, seeds) -> tuple[list, list[int]]:
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    seeds = list(seeds)
    if not prompts or not seeds:
        raise ArgumentError(f"need at least one prompt and one seed, got {len(prompts)} prompts and {len(seeds)} "
                            f"seeds")
    return [p for p in prompts for _ in seeds], [int(s) for _ in prompts for s in seeds]


def generators(seeds) -> list:
    import torch

    return [torch.Generator().manual_seed(int(s)) for s in seeds]
