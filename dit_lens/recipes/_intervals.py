"""Means with 95% t-intervals over samples, as the recipes report them.

    t_interval(values, bounds=None) -> {mean, lo, hi, n}   non-finite values dropped; ``bounds`` (lo, hi) clips
                                                           the interval to a metric's valid range (an accuracy
                                                           stays within [0, 1], an MSE above 0)
"""

from __future__ import annotations

import numpy as np

__all__ = ["t_interval"]


def t_interval(values, bounds: tuple | None = None) -> dict:
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    if len(v) == 0:
        return dict(mean=float("nan"), lo=float("nan"), hi=float("nan"), n=0)
    if len(v) == 1:
        return dict(mean=float(v[0]), lo=float(v[0]), hi=float(v[0]), n=1)
    from scipy import stats

    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    lo, hi = float(v.mean() - half), float(v.mean() + half)
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return dict(mean=float(v.mean()), lo=lo, hi=hi, n=int(len(v)))
