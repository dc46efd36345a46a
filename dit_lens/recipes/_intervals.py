"""Means with 95% t-intervals over samples, as the recipes report them.

    t_interval(values, bounds=None) -> {mean, lo, hi, n}   non-finite values dropped; ``bounds`` (lo, hi) clips
                                                           the interval to a metric's valid range (an accuracy
                                                           stays within [0, 1], an MSE above 0)
    wilson(successes) -> {mean, lo, hi, n}                 a success rate with its 95% Wilson score interval
                                                           (within [0, 1], also at 0 or n successes)
"""

from __future__ import annotations

import numpy as np

__all__ = ["t_interval", "wilson"]


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


def wilson(successes) -> dict:
    x = np.asarray(successes, bool)
    n = len(x)
    if n == 0:
        return dict(mean=float("nan"), lo=float("nan"), hi=float("nan"), n=0)
    p, z = float(x.mean()), 1.959963984540054
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (
        1 + z * z / n)
    lo, hi = (0.0 if p == 0 else max(0.0, centre - half)), (1.0 if p == 1 else min(1.0, centre + half))
    return dict(mean=p, lo=float(lo), hi=float(hi), n=n)
