"""Samples: prompts x seeds in prompt-major order (the order of stores and recipe reports), and their generators.

    grid(prompts, seeds) -> (prompts, seeds)   one entry per sample: every seed of the first prompt, then the next
    generators(seeds)                          one seeded CPU ``torch.Generator`` per sample
    call_prompts(prompts, kwargs)              what a pipeline call gets as its prompt: the prompts, or None when the
                                               call is driven by ``prompt_embeds`` (one row per sample, checked);
                                               the prompts then only label the samples
    ranges(indices) -> "0-3, 7"                sample indices as runs, for messages
"""

from __future__ import annotations

from .errors import ArgumentError

__all__ = ["grid", "generators", "call_prompts", "ranges"]


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


def call_prompts(prompts: list, kwargs: dict) -> list | None:
    if "prompt_embeds" not in kwargs:
        return prompts
    rows = kwargs["prompt_embeds"].shape[0]
    if rows != len(prompts):
        raise ArgumentError(f"prompt_embeds has {rows} rows: an embeddings-driven call takes one row per sample "
                            f"(prompts x seeds: {len(prompts)})")
    return None


def ranges(indices) -> str:
    runs: list = []
    for i in sorted(set(indices)):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)
