"""Per-channel statistics of one recorded value, reduced where the value lives (what a stats-only store keeps).

    channel_stats(h, scratch=None)  (rows, tokens, channels) -> (4, rows, channels): mean|x|, max|x|, rms, median|x|
    _sums(h, a)                     the first three, and |x| laid out tokens-last in ``a`` for the median
    _median_into(out, a)            the exact lower median over tokens, in numpy (host values)
    _lower_median_bits(bits)        its selection: a partition, or two sorted halves for 513-1024 tokens
    _nonfinite(h, peak)             the count of inf/nan values, computed only when max|x| (on the host) says so

The recorder calls ``channel_stats`` on the model's thread, where the value lives: on the CPU the sums use torch's
intra-op threads and the median an in-place numpy selection in a reused buffer; a device value is reduced entirely
on its device, so only per-channel numbers cross to the host.
"""

from __future__ import annotations

import numpy as np
import torch


def channel_stats(h: torch.Tensor, scratch: dict | None = None) -> torch.Tensor:
    """(rows, tokens, channels) -> (4, rows, channels) float32 on ``h``'s device: mean|x|, max|x|, rms and the exact
    lower median|x| over tokens (as torch.median), float32 accumulation. ``scratch`` keeps the tokens-last copy of
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
    """Row 3 of ``out`` = the exact lower median of ``a`` (rows, channels, tokens) over tokens, selected in place
    among |x|'s bit patterns (|x| >= 0 orders as its int32 pattern, NaN above inf; several times faster than
    ``torch.median``); NaN where row 1 (max|x|) says a NaN is among the tokens, as torch.median."""
    rows, C, T = a.shape
    out[3] = _lower_median_bits(a.view(np.int32).reshape(rows * C, T)).view(np.float32).reshape(rows, C)
    out[3][np.isnan(out[1])] = np.nan
    return out


_SIMD_ROW = 512  # numpy sorts and partitions rows of up to 512 int32 with SIMD networks: ~6x faster per value


def _lower_median_bits(bits: np.ndarray) -> np.ndarray:
    """(R, T) non-negative int32 (overwritten) -> (R,) the ((T - 1) // 2)-th smallest of each row. Rows of 513-1024
    values are sorted as two SIMD-sized halves and the median found by a binary search between them (4x faster than
    partitioning the whole row); other lengths are partitioned."""
    R, T = bits.shape
    k = (T - 1) // 2
    n = _SIMD_ROW
    if not n < T <= 2 * n:
        bits.partition(k, axis=1)
        return bits[:, k]
    if T < 2 * n:  # padded with values above any pattern (NaN's included): the k-th smallest is unchanged
        bits = np.concatenate([bits, np.full((R, 2 * n - T), np.iinfo(np.int32).max, np.int32)], axis=1)
    A, B = bits[:, :n], bits[:, n:]
    A.sort(axis=1)
    B.sort(axis=1)
    return _kth_of_two_sorted(A, B, k)


def _kth_of_two_sorted(A: np.ndarray, B: np.ndarray, k: int) -> np.ndarray:
    """The k-th smallest (0-based) of each row of A and B together, both (R, n) sorted along rows: the classic
    binary search for how many of the k + 1 smallest come from A, vectorised over rows."""
    R, n = A.shape
    r = np.arange(R)
    lo, hi = np.full(R, max(0, k + 1 - n)), np.full(R, min(k + 1, n))
    while (active := lo < hi).any():
        i = (lo + hi) // 2
        more = A[r, np.minimum(i, n - 1)] < B[r, np.clip(k - i, 0, n - 1)]  # A's next is below B's last taken
        lo = np.where(active & more, i + 1, lo)
        hi = np.where(active & ~more, i, hi)
    j = k + 1 - lo
    low = np.iinfo(A.dtype).min
    a = np.where(lo > 0, A[r, np.maximum(lo - 1, 0)], low)
    b = np.where(j > 0, B[r, np.clip(j - 1, 0, n - 1)], low)
    return np.maximum(a, b)


def _nonfinite(h: torch.Tensor, peak: np.ndarray) -> int:
    """Non-finite values in ``h``; counted only when its per-channel max|x| (``peak``, already on the host, so a
    device value costs no second synchronisation) says there are any."""
    if np.isfinite(peak).all():
        return 0
    return int((~torch.isfinite(h)).sum())
