"""Cache: the activations a run recorded, keyed the same way on every architecture.

    Cache                       a dict keyed by ``(name, step, branch)``; each value (rows, tokens, channels), CPU
      cache[name, step, branch] one value
      cache[name, step]         the value at that step when one branch was recorded there; with several, a
                                ``CacheKeyError`` naming them
      .names / .steps / .branches   what it holds (names in recording order, steps and branches sorted)
      .stack(name, branch=None) (steps, rows, tokens, channels) of one name over its steps
    BRANCHES                    the branch labels, in their sort order

A value's branch says which rows it holds: ``"cond"`` the conditional rows (every row of a run without CFG),
``"uncond"`` the unconditional rows, ``"batch"`` every row of a call that batches both, in the architecture's
order (``lens.arch.batch_order``: ``[uncond; cond]``, or ``[cond; uncond]`` on Lumina-Next).
Pipelines that run CFG as two transformer calls per step (Qwen-Image, CogView4, Chroma, Flux with
``true_cfg_scale``) record ``"cond"`` and ``"uncond"`` values; batched ones (SD3, PixArt, Sana, the embedded
model) record ``"batch"`` unless a run asks for one branch (``cache_cfg=``).
"""

from __future__ import annotations

import torch

from .errors import CacheKeyError

__all__ = ["Cache", "BRANCHES"]

BRANCHES = ("batch", "cond", "uncond")


class Cache(dict):
    """Activations keyed by ``(name, step, branch)``; see the module docstring."""

    def _key(self, key) -> tuple:
        if not (isinstance(key, tuple) and len(key) in (2, 3)):
            raise CacheKeyError(f"cache keys are (name, step) or (name, step, branch), got {key!r}")
        if len(key) == 3:
            return key
        name, step = key
        held = [b for b in BRANCHES if dict.__contains__(self, (name, step, b))]
        if len(held) == 1:
            return name, step, held[0]
        if not held:
            raise CacheKeyError(self._missing(name, step))
        raise CacheKeyError(f"{name!r} at step {step} holds branches {held}: use cache[{name!r}, {step}, "
                            f"{held[0]!r}] (or record one branch with cache_cfg=)")

    def _missing(self, name, step, branch=None) -> str:
        if name not in self.names:
            return f"{name!r} is not in this cache; cached names: {self.names}"
        steps = sorted({s for n, s, _ in self if n == name})
        if step not in steps:
            return f"{name!r} has no step {step} in this cache; cached steps: {steps}"
        held = [b for b in BRANCHES if dict.__contains__(self, (name, step, b))]
        return f"{name!r} at step {step} has no branch {branch!r}; cached branches: {held}"

    def __getitem__(self, key):
        key = self._key(key)
        try:
            return dict.__getitem__(self, key)
        except KeyError:
            raise CacheKeyError(self._missing(*key)) from None

    def __contains__(self, key) -> bool:
        try:
            return dict.__contains__(self, self._key(key))
        except CacheKeyError:
            return False

    @property
    def names(self) -> list[str]:
        return list(dict.fromkeys(n for n, _, _ in self))

    @property
    def steps(self) -> list[int]:
        return sorted({s for _, s, _ in self})

    @property
    def branches(self) -> list[str]:
        held = {b for _, _, b in self}
        return [b for b in BRANCHES if b in held]

    def stack(self, name: str, branch: str | None = None) -> torch.Tensor:
        """(steps, rows, tokens, channels) of ``name`` over its cached steps, of ``branch`` (which may be left out
        when the name was cached in one branch)."""
        held = [b for b in BRANCHES if any(n == name and b2 == b for n, _, b2 in self)]
        if not held:
            raise CacheKeyError(self._missing(name, None))
        if branch is None:
            if len(held) > 1:
                raise CacheKeyError(f"{name!r} is cached in branches {held}: pass stack({name!r}, branch=...)")
            branch = held[0]
        steps = sorted(s for n, s, b in self if n == name and b == branch)
        if not steps:
            raise CacheKeyError(f"{name!r} has no branch {branch!r} in this cache; cached branches: {held}")
        return torch.stack([dict.__getitem__(self, (name, s, branch)) for s in steps])
