"""dit-lens's errors: one base class, one subclass per kind of failure.

    DitLensError            the base: ``except dit_lens.DitLensError`` catches everything dit-lens raises on purpose
      UnknownNameError      a malformed canonical name, or one the model / store does not have (also a KeyError)
      CacheKeyError         a (name, step, branch) a cache does not hold, or a branch left ambiguous (also a KeyError)
      UnsupportedModelError a pipeline or transformer dit-lens has no adapter for (also a TypeError)
      AdapterMismatch       a block that does not return or take what its adapter declares (also a RuntimeError)
      ArgumentError         an argument with a bad value, found before any work starts (also a ValueError)
      OutOfRangeError       an index (token, channel, step, sample) outside its valid range (also an IndexError)
      RunError              a run that did not go as its adapter expects (also a RuntimeError)
      StoreError            a store that cannot be created, opened, appended to or trusted (also a RuntimeError)
        StoreTimeoutError   a store that did not answer within its bound (also a TimeoutError)
      RecipeError           a recipe given inputs it cannot use (also a ValueError)

Each subclass also derives from the built-in exception that callers caught before the hierarchy existed, so
``except ValueError`` / ``except KeyError`` code keeps working.
"""

from __future__ import annotations

__all__ = ["DitLensError", "UnknownNameError", "CacheKeyError", "UnsupportedModelError", "AdapterMismatch",
           "ArgumentError", "OutOfRangeError", "RunError", "StoreError", "StoreTimeoutError",
           "RecipeError"]


class DitLensError(Exception):
    """Base class of every error dit-lens raises on purpose."""


class _PlainKeyError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


class UnknownNameError(DitLensError, _PlainKeyError):
    """A malformed canonical name, or a name the model or store does not have."""


class CacheKeyError(DitLensError, _PlainKeyError):
    """A (name, step, branch) a cache does not hold, or a lookup whose CFG branch is ambiguous."""


class UnsupportedModelError(DitLensError, TypeError):
    """A pipeline or transformer class dit-lens has no adapter for."""


class AdapterMismatch(DitLensError, RuntimeError):
    """A block does not return or take what its adapter declares."""


class ArgumentError(DitLensError, ValueError):
    """An argument with a bad value, found before any work starts."""


class OutOfRangeError(DitLensError, IndexError):
    """An index outside its valid range."""


class RunError(DitLensError, RuntimeError):
    """A run that did not go as its adapter expects (e.g. another number of transformer calls per step)."""


class StoreError(DitLensError, RuntimeError):
    """A store that cannot be created, opened, appended to or trusted."""


class StoreTimeoutError(StoreError, TimeoutError):
    """A store (usually an object-storage endpoint) that did not answer within the recording's ``storage_timeout``."""


class RecipeError(DitLensError, ValueError):
    """A recipe given inputs it cannot use."""
