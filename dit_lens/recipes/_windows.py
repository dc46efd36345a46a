"""Timestep windows: which steps of a run a recipe acts on, by index or by name.

    WINDOWS                   ("early", "middle", "late"): a run's steps in thirds (``numpy.array_split``)
    window_steps(steps, ran)  None (every step) for None or "all"; a window's steps; or the given indices, checked
                              against the ``ran`` steps the run makes
"""

from __future__ import annotations

import numpy as np

from ..errors import OutOfRangeError, RecipeError

__all__ = ["WINDOWS", "window_steps"]

WINDOWS = ("early", "middle", "late")


def window_steps(steps, ran: int) -> list[int] | None:
    if steps is None or steps == "all":
        return None
    if isinstance(steps, str):
        if steps not in WINDOWS:
            raise RecipeError(f"steps={steps!r}: a window is one of {WINDOWS} or 'all', or give step indices")
        part = np.array_split(np.arange(ran), len(WINDOWS))[WINDOWS.index(steps)]
        if not len(part):
            raise RecipeError(f"a run of {ran} steps has no {steps} third: use at least {len(WINDOWS)} steps")
        return [int(s) for s in part]
    steps = [int(s) for s in steps]
    if not steps or not all(0 <= s < ran for s in steps):
        raise OutOfRangeError(f"steps {steps} out of range 0..{ran - 1}")
    return steps
