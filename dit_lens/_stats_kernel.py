"""One GPU pass for a value's per-channel statistics (what ``_stats._device_stats`` runs where Triton is available).

    fused_stats(h) -> (out, nonfinite)   h (rows, tokens, channels), any float dtype and strides ->
                                         out (4, rows, channels) float32: mean|x|, max|x|, rms, exact lower
                                         median|x| over tokens; nonfinite: the count of inf/nan values (0-d int64)
    available(t, device, dtype) -> bool  whether the kernel takes rows of ``t`` tokens here (CUDA and Triton, or
                                         Triton's interpreter; t <= 16384)

One program holds a (tokens x a few channels) tile in registers, read from the value as it lies (no transposed
copy; the channels of a tile are contiguous), once. The median is built bit by bit from the top, counting per
channel the values at or below each candidate: |x|'s float32 bit pattern orders as |x| does, NaN above inf, and
bf16 / fp16 values widen to float32 patterns whose low 16 / 13 bits are zero, so those bits need no search.
torch.median's radix select reads a row once per digit, after a copy that lays tokens last.
"""

from __future__ import annotations

import torch

__all__ = ["fused_stats", "available"]

_MAX_TOKENS = 16384
_TILE = 32768  # values one program holds
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
    def _tile_stats(x_ptr, out_ptr, bad_ptr, R, T, C, s_row, s_tok, s_ch, LOW: tl.constexpr,
                    BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):
        r = tl.program_id(0)
        cs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        ts = tl.arange(0, BLOCK_T)
        inside = (ts[:, None] < T) & (cs[None, :] < C)
        ptr = x_ptr + r.to(tl.int64) * s_row + ts[:, None].to(tl.int64) * s_tok + cs[None, :].to(tl.int64) * s_ch
        x = tl.abs(tl.load(ptr, mask=inside, other=0.0).to(tl.float32))
        bits = tl.where(inside, x.to(tl.int32, bitcast=True), 0x7FFFFFFF)  # padding sorts above every value
        top = tl.max(tl.where(inside, bits, 0), axis=0)  # max|x| as a pattern: a NaN's if any (above inf's)
        total = tl.sum(x, axis=0)
        squares = tl.sum(x * x, axis=0)
        bad = tl.sum(tl.sum(tl.where(inside & (bits >= 0x7F800000), 1, 0), axis=0), axis=0)
        k = (T - 1) // 2  # the lower median: the k-th smallest, 0-based
        answer = tl.zeros((BLOCK_C,), tl.int32)
        for i in tl.static_range(31 - LOW):  # bits 30..LOW: keep bit 30 - i clear while > k values lie at or below
            below = answer | ((1 << (30 - i)) - 1)
            count = tl.sum(tl.where(bits <= below[None, :], 1, 0), axis=0)
            answer = tl.where(count > k, answer, answer | (1 << (30 - i)))
        peak = top.to(tl.float32, bitcast=True)
        median = tl.where(top > 0x7F800000, peak, answer.to(tl.float32, bitcast=True))  # NaN as torch.median
        at = r * C + cs
        ok = cs < C
        tl.store(out_ptr + at, total / T, mask=ok)
        tl.store(out_ptr + R * C + at, peak, mask=ok)
        tl.store(out_ptr + 2 * R * C + at, tl.sqrt(squares / T), mask=ok)
        tl.store(out_ptr + 3 * R * C + at, median, mask=ok)
        tl.store(bad_ptr + r * tl.num_programs(1) + tl.program_id(1), bad)


def fused_stats(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, tokens, channels) -> ((4, rows, channels) float32, 0-d int64 count of inf/nan values)."""
    R, T, C = h.shape
    block_t = triton.next_power_of_2(T)
    block_c = max(1, min(16, _TILE // block_t, triton.next_power_of_2(C)))  # <= _TILE values in registers
    grid = (R, triton.cdiv(C, block_c))
    out = torch.empty((4, R, C), dtype=torch.float32, device=h.device)
    bad = torch.empty(grid, dtype=torch.int32, device=h.device)
    _tile_stats[grid](h, out, bad, R, T, C, *h.stride(), LOW=_LOW_ZERO_BITS[h.dtype], BLOCK_T=block_t,
                      BLOCK_C=block_c, num_warps=max(4, min(16, block_t * block_c // 2048)))
    return out, bad.sum()
