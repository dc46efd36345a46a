"""One pipeline call: its arguments checked before a run, its images, its transformer calls counted.

    check_call(prompt, seed, kwargs)    arguments nnsight or the pipeline would take wrongly or fail on obscurely
    count_images(prompt, kwargs)        images the call makes (prompts or embedding rows x images per prompt)
    prompt_args(prompt)                 positional inputs for nnsight (none for an embeddings-driven call)
    default(pipeline, name)             a keyword argument's default in the pipeline's signature, or None
    counted(transformer, active)        a context counting the transformer's calls
    pipeline_images(output)             ``.images``, or a video pipeline's ``.frames``
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager

from .errors import ArgumentError

__all__ = ["check_call", "count_images", "prompt_args", "default", "counted", "pipeline_images"]


def pipeline_images(output):
    """A pipeline output's images: ``.images``, or a video pipeline's ``.frames``."""
    return output.images if hasattr(output, "images") else output.frames


def count_images(prompt, kwargs) -> int:
    if prompt is None:
        embeds = kwargs.get("prompt_embeds")
        if embeds is None:
            raise ArgumentError("give a prompt (or prompt_embeds)")
        n = int(embeds.shape[0])
    else:
        n = 1 if isinstance(prompt, str) else len(prompt)
    if n == 0:
        raise ArgumentError("no prompts: the prompt list is empty")
    return n * int(kwargs.get("num_images_per_prompt") or kwargs.get("num_videos_per_prompt") or 1)


def check_call(prompt, seed, kwargs) -> None:
    """A pipeline call's arguments that nnsight or the pipeline would take wrongly or fail on obscurely."""
    count_images(prompt, kwargs)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ArgumentError(f"seed={seed!r}: one integer (image i gets seed + i); for seeds of your own per image "
                            f"pass generator=[torch.Generator().manual_seed(s) for s in seeds]")


def prompt_args(prompt) -> tuple:
    """Positional inputs for nnsight: none when the call is driven by ``prompt_embeds`` (nnsight counts rows from
    the first positional input)."""
    return () if prompt is None else (prompt,)


def default(pipeline, name: str):
    """The default of a pipeline call's keyword argument, or None when it takes no such argument."""
    p = inspect.signature(pipeline.__call__).parameters.get(name)
    return None if p is None or p.default is inspect.Parameter.empty else p.default


@contextmanager
def counted(transformer, active: bool):
    """Counts the transformer's calls while open (``{"n": calls}``; ``{}`` when not ``active``, e.g. remote runs,
    whose calls happen elsewhere)."""
    calls: dict = {"n": 0} if active else {}
    handle = transformer.register_forward_pre_hook(lambda m, a: calls.update(n=calls["n"] + 1)) if active else None
    try:
        yield calls
    finally:
        if handle is not None:
            handle.remove()
