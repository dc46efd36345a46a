"""Per-channel statistics of recorded values, reduced where the values live (what a stats-only store keeps).

    channel_stats(h, scratch=None)  (rows, tokens, channels) -> (4, rows, channels): mean|x|, max|x|, rms, median|x|
    value_stats(h, scratch=None)    the same and the count of inf/nan values, for one value alone (as
                                    bench/stats_cost.py times it)
    StepReducer                     a step's values, name by name -> StepStats (what the recorder calls): host
                                    values reduced together, device values one kernel each
    _abs_tokens_last(h, a)          |x| laid out (rows, channels, tokens) in ``a`` (host)
    _sums(a)                        the first three from that layout
    _host_stats(a)                  all four from that layout (the sums, then the median)
    _median_into(out, a)            the exact lower median over tokens, in numpy (host values)
    _lower_median_bits(bits)        its selection: a partition, or two sorted halves for 513-1024 tokens
    _device_stats(h)                all four and the count on a device: one fused Triton pass over the value
                                    (``_stats_kernel``) where Triton is installed, else torch ops
    _nonfinite(h, peak)             the count of inf/nan values on the host, computed only when max|x| says so
    StepStats                       a step's statistics and counts, brought to the host in one transfer

The recorder reduces on the model's thread, where the value lives. On the CPU each value's |x| is laid out
tokens-last in a buffer shared by the step's values of one shape, and the buffer is reduced at once at the step's
end (sums with torch's intra-op threads, the median an in-place numpy selection): one set of reductions per step
instead of one per value (bench/README.md has the timings). A device value is reduced entirely on its
device as it arrives, and a step's per-channel numbers cross to the host in one copy that the model thread does not
wait for (the writer thread does, in ``StepStats.get``).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["channel_stats", "value_stats", "StepReducer", "StepStats"]


def value_stats(h: torch.Tensor, scratch: dict | None = None) -> tuple:
    """(channel_stats(h), count of inf/nan values in h): an int for a host value, a 0-d tensor left on the device
    for a device value (no synchronisation)."""
    if h.device.type != "cpu":
        return _device_stats(h)
    stats = channel_stats(h, scratch)
    return stats, _nonfinite(h, stats[1])


def channel_stats(h: torch.Tensor, scratch: dict | None = None) -> torch.Tensor:
    """(rows, tokens, channels) -> (4, rows, channels) float32 on ``h``'s device: mean|x|, max|x|, rms and the exact
    lower median|x| over tokens (as torch.median), float32 accumulation. ``scratch`` keeps the tokens-last copy of
    |x| between calls."""
    if h.device.type != "cpu":
        return _device_stats(h)[0]
    rows, T, C = h.shape
    key = (rows, C, T)
    scratch = {} if scratch is None else scratch
    if key not in scratch:
        scratch[key] = torch.empty((rows, C, T), dtype=torch.float32, device=h.device)
    return _host_stats(_abs_tokens_last(h, scratch[key]))


def _abs_tokens_last(h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """|h| (rows, tokens, channels) laid out (rows, channels, tokens) in the float32 buffer ``a`` (bf16/fp16 values
    are exact in float32)."""
    h = h.detach().transpose(1, 2)
    if h.dtype == torch.float32:
        torch.abs(h, out=a)
    else:
        a.copy_(h).abs_()
    return a


def _sums(a: torch.Tensor) -> torch.Tensor:
    """mean, max and rms of ``a`` (rows, channels, tokens) over tokens in rows 0-2 of a new (4, rows, channels)
    tensor (row 3 is left for the median)."""
    rows, C, T = a.shape
    out = torch.empty((4, rows, C), dtype=torch.float32, device=a.device)
    torch.mean(a, 2, out=out[0])
    torch.amax(a, 2, out=out[1])
    torch.linalg.vector_norm(a, 2, dim=2, out=out[2])
    out[2].div_(T ** 0.5)
    return out


def _host_stats(a: torch.Tensor) -> torch.Tensor:
    """All four statistics of host |x| laid out (rows, channels, tokens): the sums, then the median in place."""
    out = _sums(a)
    _median_into(out.numpy(), a.numpy())
    return out


def _median_into(out: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Row 3 of ``out`` = the exact lower median of ``a`` (rows, channels, tokens) over tokens, selected in place
    among |x|'s bit patterns (|x| >= 0 orders as its int32 pattern, NaN above inf; faster than ``torch.median``,
    see bench/README.md); NaN where row 1 (max|x|) says a NaN is among the tokens, as torch.median."""
    rows, C, T = a.shape
    out[3] = _lower_median_bits(a.view(np.int32).reshape(rows * C, T)).view(np.float32).reshape(rows, C)
    out[3][np.isnan(out[1])] = np.nan
    return out


_SIMD_ROW = 512  # numpy sorts and partitions rows of up to 512 int32 with SIMD networks (much faster per value)


def _lower_median_bits(bits: np.ndarray) -> np.ndarray:
    """(R, T) non-negative int32 (overwritten) -> (R,) the ((T - 1) // 2)-th smallest of each row. Rows of 513-1024
    values are sorted as two SIMD-sized halves and the median found by a binary search between them (faster than
    partitioning the whole row; bench/README.md); other lengths are partitioned."""
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


_INF_BITS = {torch.bfloat16: (torch.int16, 0x7F80), torch.float16: (torch.int16, 0x7C00),
             torch.float32: (torch.int32, 0x7F800000)}  # |x|'s pattern is at or above these iff x is inf or NaN


def _device_stats(h: torch.Tensor) -> tuple:
    """value_stats on ``h``'s device: ((4, rows, channels) float32, 0-d inf/nan count). One fused Triton pass over
    the value as it lies where available; else a tokens-last copy of |x| in ``h``'s own dtype (exact: abs only
    clears the sign), float32 accumulation and torch.median's selection."""
    from . import _stats_kernel

    rows, T, C = h.shape
    if _stats_kernel.available(T, h.device, h.dtype):
        return _stats_kernel.fused_stats(h.detach())
    a = torch.empty((rows, C, T), dtype=h.dtype, device=h.device)
    torch.abs(h.detach().transpose(1, 2), out=a)
    out = torch.empty((4, rows, C), dtype=torch.float32, device=h.device)
    torch.mean(a, 2, dtype=torch.float32, out=out[0])
    out[1] = torch.amax(a, 2)
    torch.linalg.vector_norm(a, 2, dim=2, dtype=torch.float32, out=out[2])
    out[2].div_(T ** 0.5)
    out[3] = torch.median(a, 2).values
    bits, inf = _INF_BITS.get(h.dtype, (None, None))
    bad = (a.view(bits) >= inf).sum() if bits is not None else torch.count_nonzero(~torch.isfinite(a))
    return out, bad


def _nonfinite(h: torch.Tensor, peak: torch.Tensor) -> int:
    """Non-finite values in host value ``h``, counted only when its per-channel max|x| (``peak``) says there are
    any."""
    if torch.isfinite(peak).all():
        return 0
    return int((~torch.isfinite(h)).sum())


_GROUP_BYTES = 16 << 20  # host values of one shape reduced together: up to this much |x| per reduction


class StepReducer:
    """A step's statistics, value by value: ``add(name, h)`` for each recorded value, then ``finish(timestep)`` ->
    ``StepStats``; one reducer serves every step of a batch (its host buffers are reused). Device values are reduced
    as they arrive (``_device_stats``: one kernel each, nothing waits). Host values are laid out tokens-last as |x|
    into a buffer per shape and reduced together when it is full (16 MB) or the step ends; the inf/nan count comes
    from the same buffer, and only when a channel's max|x| says there are any."""

    def __init__(self, max_values: int):
        self.max_values = max(1, int(max_values))
        self._buffers: dict = {}  # (rows, channels, tokens) -> (n, rows, channels, tokens) float32, kept
        self._pending: dict = {}  # (rows, channels, tokens) -> names laid out in that buffer, not yet reduced
        self._stats: dict = {}
        self._counts: list = []

    def add(self, name: str, h: torch.Tensor) -> None:
        if h.device.type != "cpu":
            self._stats[name], count = _device_stats(h)
            self._counts.append(count)
            return
        rows, T, C = h.shape
        key = (rows, C, T)
        if key not in self._buffers:
            n = min(self.max_values, max(1, _GROUP_BYTES // (rows * C * T * 4)))
            self._buffers[key] = torch.empty((n, rows, C, T), dtype=torch.float32)
        names = self._pending.setdefault(key, [])
        _abs_tokens_last(h, self._buffers[key][len(names)])
        names.append(name)
        if len(names) == len(self._buffers[key]):
            self._reduce(key)

    def _reduce(self, key: tuple) -> None:
        names = self._pending.pop(key)
        rows, C, T = key
        a = self._buffers[key][:len(names)].view(len(names) * rows, C, T)
        out = _host_stats(a)
        self._counts.append(_nonfinite(a, out[1]))  # |x| is inf/nan where x is
        for i, name in enumerate(names):
            self._stats[name] = out[:, i * rows:(i + 1) * rows]

    def finish(self, timestep: torch.Tensor) -> "StepStats":
        """The step's ``StepStats`` (every value added since the last ``finish``)."""
        for key in list(self._pending):
            self._reduce(key)
        stats, counts, self._stats, self._counts = self._stats, self._counts, {}, []
        return StepStats(stats, counts, timestep)


class StepStats:
    """A step's statistics ({name: (4, rows, channels)}), non-finite count and timestep on their way to the host.
    Host values are kept as they are; device values are stacked and copied into pinned memory without blocking the
    model thread, and ``get()`` (on the writer thread) waits for that copy."""

    def __init__(self, stats: dict, counts: list, timestep: torch.Tensor):
        self.names, values = list(stats), list(stats.values())
        timestep = timestep.detach().flatten()[0]
        device = values[0].device if values else timestep.device
        self._event = None
        if device.type == "cpu":
            self._stats, self._scalars = [v.numpy() for v in values], (sum(int(c) for c in counts), float(timestep))
            return
        timestep = timestep.to(device)
        stacked = torch.stack(values) if values else torch.empty((0,), device=device)
        count = torch.stack([torch.as_tensor(c, device=device) for c in counts]).sum() if counts \
            else torch.zeros((), device=device)
        scalars = torch.stack([count.to(torch.float64), timestep.to(torch.float64)])  # counts < 2^53: exact
        if device.type != "cuda":  # no pinned asynchronous copy: one blocking transfer
            self._stats, self._scalars = list(stacked.cpu().numpy()), scalars.cpu()
            return
        self._stats = torch.empty(stacked.shape, dtype=stacked.dtype, pin_memory=True)
        self._scalars = torch.empty(scalars.shape, dtype=scalars.dtype, pin_memory=True)
        self._stats.copy_(stacked, non_blocking=True)
        self._scalars.copy_(scalars, non_blocking=True)
        self._event = torch.cuda.Event()
        self._event.record()

    def get(self) -> tuple[dict, int, float]:
        """({name: (4, rows, channels) float32 numpy}, non-finite count, timestep), once the copy has landed."""
        if self._event is not None:
            self._event.synchronize()  # then out of pinned memory, which goes back to torch's cache
            self._stats, self._scalars, self._event = list(self._stats.numpy().copy()), self._scalars.clone(), None
        count, t = self._scalars
        return dict(zip(self.names, self._stats)), int(count), float(t)
