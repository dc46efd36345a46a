"""One GPU pass for a value's per-channel statistics (what ``_stats._device_stats`` runs where Triton is available).

    fused_stats(a) -> (out, nonfinite)   a (rows, tokens) |x|-or-x laid out tokens-last, any float dtype ->
                                         out (4, rows) float32: mean|x|, max|x|, rms, exact lower median|x|;
                                         nonfinite (rows,) int32: inf/nan values per row
    available(t) -> bool                 whether the kernel takes rows of ``t`` tokens here (CUDA, Triton, <= 16384)

One program holds one row in registers: it is read from memory once, and the median is built bit by bit from the
top (a count of the values at or below each candidate per bit): |x|'s float32 bit pattern orders as |x| does, NaN
above inf, and bf16 / fp16 values widen to float32 patterns whose low 16 / 13 bits are zero, so those bits need no
search. torch.median's radix select reads a row once per digit.
"""

from __future__ import annotations

import torch

_MAX_TOKENS = 16384
_LOW_ZERO_BITS = {torch.bfloat16: 16, torch.float16: 13, torch.float32: 0}

try:
    import triton
    import triton.language as tl
except ImportError:  # no Triton: _stats selects with torch.median
    triton = None


def available(tokens: int, device: torch.device, dtype: torch.dtype) -> bool:
    return (triton is not None and tokens <= _MAX_TOKENS and dtype in _LOW_ZERO_BITS
            and (device.type == "cuda" or _interpreted()))


def _interpreted() -> bool:
    import os

    return os.environ.get("TRITON_INTERPRET") == "1"


if triton is not None:
    @triton.jit
    def _row_stats(x_ptr, out_ptr, bad_ptr, rows, T, stride, LOW: tl.constexpr, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        offs = tl.arange(0, BLOCK)
        inside = offs < T
        x = tl.abs(tl.load(x_ptr + row.to(tl.int64) * stride + offs, mask=inside, other=0.0).to(tl.float32))
        bits = tl.where(inside, x.to(tl.int32, bitcast=True), 0x7FFFFFFF)  # padding sorts above every value
        top = tl.max(tl.where(inside, bits, 0), axis=0)  # max|x| as a pattern: a NaN's if any (above inf's)
        total = tl.sum(x, axis=0)
        squares = tl.sum(x * x, axis=0)
        bad = tl.sum(tl.where(inside & (bits >= 0x7F800000), 1, 0), axis=0)
        k = (T - 1) // 2  # the lower median: the k-th smallest, 0-based
        answer = tl.full((), 0, tl.int32)
        for i in tl.static_range(31 - LOW):  # bits 30..LOW: keep bit 30 - i clear while > k values lie at or below
            below = answer | ((1 << (30 - i)) - 1)
            count = tl.sum(tl.where(bits <= below, 1, 0), axis=0)
            answer = tl.where(count > k, answer, answer | (1 << (30 - i)))
        median = answer.to(tl.float32, bitcast=True)
        peak = top.to(tl.float32, bitcast=True)
        median = tl.where(top > 0x7F800000, peak, median)  # NaN where a NaN is among the tokens (as torch.median)
        tl.store(out_ptr + row, total / T)
        tl.store(out_ptr + rows + row, peak)
        tl.store(out_ptr + 2 * rows + row, tl.sqrt(squares / T))
        tl.store(out_ptr + 3 * rows + row, median)
        tl.store(bad_ptr + row, bad)


def fused_stats(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, tokens) with unit stride along tokens -> ((4, rows) float32, (rows,) int32 non-finite counts)."""
    rows, T = a.shape
    if a.stride(1) != 1:
        raise ValueError(f"fused_stats needs tokens contiguous, got strides {a.stride()} for shape {tuple(a.shape)}")
    out = torch.empty((4, rows), dtype=torch.float32, device=a.device)
    bad = torch.empty((rows,), dtype=torch.int32, device=a.device)
    block = triton.next_power_of_2(T)
    _row_stats[(rows,)](a, out, bad, rows, T, a.stride(0), LOW=_LOW_ZERO_BITS[a.dtype], BLOCK=block,
                        num_warps=max(4, min(16, block // 512)))
    return out, bad
