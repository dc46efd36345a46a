"""Argument checks shared by the lens, the edits and the recorder (no heavy imports: the recorder is bound at
``import dit_lens``).

    index(field, x)          an integer index, or an ArgumentError naming the field (1.7 is not 1, True is not 1)
    whole(field, x, least)   a whole number >= ``least`` (2.7 steps, 0 as a batch size are errors)
    seconds(field, x)        a positive finite number of seconds, or None (no bound)
"""

from __future__ import annotations

import operator

from .errors import ArgumentError

__all__ = ["index", "whole", "seconds"]


def index(field: str, x) -> int:
    if isinstance(x, bool):
        raise ArgumentError(f"{field}: {x!r} is not an index (booleans are not indices)")
    try:
        return operator.index(x)
    except TypeError:
        raise ArgumentError(f"{field}: {x!r} is not an integer index") from None


def whole(field: str, x, least: int = 1) -> int:
    try:
        ok = not isinstance(x, bool) and float(x).is_integer() and int(x) >= least
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ArgumentError(f"{field}={x!r}: expected a whole number >= {least}")
    return int(x)


def seconds(field: str, x) -> float | None:
    if x is None:
        return None
    try:
        ok = not isinstance(x, bool) and 0 < float(x) < float("inf")
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ArgumentError(f"{field}={x!r}: expected a positive number of seconds, or None for no bound")
    return float(x)
