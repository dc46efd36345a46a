"""Per-channel statistics of one recorded value, reduced where the value lives (what a stats-only store keeps).

    channel_stats(h, scratch=None)  (rows, tokens, channels) -> (4, rows, channels): mean|x|, max|x|, rms, median|x|
    _sums(h, a)                     the first three, and |x| laid out tokens-last in ``a`` for the median
    _median_into(out, a)            the exact lower median over tokens, in numpy (host values)
    _nonfinite(h, peak)             the count of inf/nan values, computed only when max|x| (on the host) says so

The recorder calls ``channel_stats`` on the model's thread, where the value lives: on the CPU the sums use torch's
intra-op threads and the median an in-place numpy partition of a reused buffer; a device value is reduced entirely
on its device, so only per-channel numbers cross to the host.
"""

from __future__ import annotations

import numpy as np
import torch


def channel_stats(h: torch.Tensor, scratch: dict | None = None) -> torch.Tensor:
    """(rows, tokens, channels) -> (4, rows, channels) float32 on ``h``'s device: mean|x|, max|x|, rms and the exact
    lower median|x| over tokens (torch's median), float32 accumulation. ``scratch`` keeps the tokens-last copy of
    |x| between calls."""
    rows, T, C = h.shape
    key = (h.device, rows, C, T)
    scratch = {} if scratch is None else scratch
    if key not in scratch:
        scratch[key] = torch.empty((rows, C, T), dtype=torch.float32, device=h.device)
    out, a = _sums(h, scratch[key])
    if h.device.type == "cpu":
        _median_into(out.numpy(), a.numpy())
    else:
        out[3] = a.median(2).values
    return out


def _sums(h: torch.Tensor, a: torch.Tensor) -> tuple:
    """mean|x|, max|x| and rms over tokens in rows 0-2 of a new (4, rows, channels) tensor (row 3 is left for the
    median), and |x| laid out (rows, channels, tokens) in ``a``."""
    rows, T, C = h.shape
    h = h.detach().transpose(1, 2)
    if h.dtype == torch.float32:
        torch.abs(h, out=a)
    else:  # bf16/fp16 values are exact in float32
        a.copy_(h).abs_()
    out = torch.empty((4, rows, C), dtype=torch.float32, device=h.device)
    torch.mean(a, 2, out=out[0])
    torch.amax(a, 2, out=out[1])
    torch.linalg.vector_norm(a, 2, dim=2, out=out[2])
    out[2].div_(T ** 0.5)
    return out, a


def _median_into(out: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Row 3 of ``out`` = the exact lower median of ``a`` (rows, channels, tokens) over tokens, by an in-place
    integer partition of |x|'s bit patterns (|x| >= 0 orders as its int32 pattern, NaN above inf; several times
    faster than ``torch.median``); NaN where row 1 (max|x|) says a NaN is among the tokens, as torch.median."""
    mid = (a.shape[2] - 1) // 2
    a.view(np.int32).partition(mid, axis=2)
    out[3] = a[..., mid]
    out[3][np.isnan(out[1])] = np.nan
    return out


def _nonfinite(h: torch.Tensor, peak: np.ndarray) -> int:
    """Non-finite values in ``h``; counted only when its per-channel max|x| (``peak``, already on the host, so a
    device value costs no second synchronisation) says there are any."""
    if np.isfinite(peak).all():
        return 0
    return int((~torch.isfinite(h)).sum())
