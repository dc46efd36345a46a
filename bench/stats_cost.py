"""What a stats-only recording adds per recorded value, next to what the model spends on it (not a test).

For one value of a given shape (rows, tokens, channels), dtype and device, it times, median of many runs:
  block      one Flux transformer block of that width on that value and --txt text tokens (single-stream; the
             double-stream one too), without rotary embeddings: what the model spends per recorded name
  stats      one value's statistics (value_stats: mean|x|, max|x|, rms, exact median|x| and the inf/nan count) —
             what the recorder runs per device value; on the host it reduces a step's values together (StepReducer,
             the same operations over one buffer); on a CUDA device with Triton, one fused kernel
             (dit_lens/_stats_kernel.py), 32k values a program (tile 8k, 16k, 64k: the same with other tile sizes)
  torch      the same with torch ops only (what runs without Triton): |x| copy, three sums, torch.median, count
  sums       the torch path's |x| copy and three sums alone
and, for the median's selection, these torch alternatives on |x| laid out tokens-last (each checked equal):
  median     torch.median in the value's own dtype (the torch path)
  median32   torch.median after a float32 copy
  kthvalue   torch.kthvalue, own dtype
  sort       torch.sort of |x|'s bit patterns, own width, and the middle element
On a GPU each time is the device's own: a few ms of matrix products are queued first, so the timed kernels run
back to back as they do inside a GPU-bound model (the host's cost to launch them is printed as well). Prints ms
and the share of the block's time; per step, a recording pays ``stats`` once per recorded name.

    python bench/stats_cost.py [--device cuda] [--rows 1] [--tokens 4096] [--channels 3072] [--txt 512]
                               [--dtype bfloat16] [--heads 24] [--repeats 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _timer(device: str, launch: dict):
    if device.startswith("cuda"):
        m = torch.randn(4096, 4096, device=device, dtype=torch.bfloat16)

        def run(fn, repeats):
            fn()
            torch.cuda.synchronize()
            times, host = [], []
            for _ in range(repeats):
                for _ in range(20):  # ~3 ms of queued work: fn's kernels are all launched before the GPU gets there
                    m @ m
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                t = time.perf_counter()
                fn()
                host.append((time.perf_counter() - t) * 1e3)
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b))
            launch[fn] = statistics.median(host)
            return statistics.median(times)
    else:
        def run(fn, repeats):
            fn()
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t) * 1e3)
            return statistics.median(times)
    return run


def _device_sums(h):
    """_device_stats without its median: the |x| copy and the three sums."""
    rows, T, C = h.shape
    a = torch.empty((rows, C, T), dtype=h.dtype, device=h.device)
    torch.abs(h.transpose(1, 2), out=a)
    return a.mean(2, dtype=torch.float32), a.amax(2), torch.linalg.vector_norm(a, 2, dim=2, dtype=torch.float32)


def _torch_stats(h):
    """_device_stats' torch path, whether or not Triton is there."""
    from dit_lens import _stats_kernel
    from dit_lens._stats import _device_stats

    fused = _stats_kernel.available
    _stats_kernel.available = lambda *args: False
    try:
        return _device_stats(h)
    finally:
        _stats_kernel.available = fused


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--rows", type=int, default=1)
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--channels", type=int, default=3072)
    p.add_argument("--txt", type=int, default=512)
    p.add_argument("--heads", type=int, default=24)
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    p.add_argument("--repeats", type=int, default=50)
    a = p.parse_args()
    from diffusers.models.transformers.transformer_flux import FluxSingleTransformerBlock, FluxTransformerBlock

    from dit_lens import _stats_kernel
    from dit_lens._stats import _abs_tokens_last, _sums, channel_stats, value_stats

    dev, dtype = torch.device(a.device), getattr(torch, a.dtype)
    R, T, C = a.rows, a.tokens, a.channels
    torch.manual_seed(0)
    h = torch.randn(R, T, C, device=dev).mul_(2)
    h[..., :4] *= 1000  # a few massive channels
    h = h.to(dtype)
    txt = torch.randn(R, a.txt, C, device=dev, dtype=dtype)
    temb = torch.randn(R, C, device=dev, dtype=dtype)
    with torch.device(dev):
        single = FluxSingleTransformerBlock(C, a.heads, C // a.heads).to(dtype).eval()
        double = FluxTransformerBlock(C, a.heads, C // a.heads).to(dtype).eval()
    launch: dict = {}
    timed = _timer(a.device, launch)
    rep = a.repeats
    res = {}
    with torch.no_grad():
        res["single block"] = timed(lambda: single(h, txt, temb), max(5, rep // 5))
        res["double block"] = timed(lambda: double(h, txt, temb), max(5, rep // 5))
        del single, double
        scratch = {}
        fns = {"stats": lambda: value_stats(h, scratch)}
        if dev.type == "cpu":
            buf = torch.empty((R, C, T), dtype=torch.float32)
            fns["sums"] = lambda: _sums(_abs_tokens_last(h, buf))
        else:
            fns["torch"] = lambda: _torch_stats(h)
            fns["sums"] = lambda: _device_sums(h)
            hx = h.clone()
            hx[0, 5, 7], hx[0, 9, 8], hx[0, : T // 2 + 1, 9] = float("inf"), float("nan"), 3.0
            (f, fb), (t, tb) = value_stats(hx), _torch_stats(hx)
            same = [torch.equal(f[i].nan_to_num(-1), t[i].nan_to_num(-1)) for i in (1, 3)]
            if not (all(same)
                    and torch.allclose(f[0], t[0], rtol=1e-5, equal_nan=True)
                    and torch.allclose(f[2], t[2], rtol=1e-5, equal_nan=True) and int(fb) == int(tb)):
                raise SystemExit("value_stats differs from its torch path")
        for name, fn in fns.items():
            res[name] = timed(fn, rep)
            res[name + " launch"] = launch.get(fn)
        if dev.type == "cuda" and _stats_kernel.triton is not None:  # the kernel's tile: values per program
            default = _stats_kernel._TILE
            for tile in (8192, 16384, 65536):
                _stats_kernel._TILE = tile
                fn = lambda: value_stats(h)  # noqa: E731
                res[f"tile {tile // 1024}k"] = timed(fn, rep)
                res[f"tile {tile // 1024}k launch"] = launch.get(fn)
            _stats_kernel._TILE = default
        x = h.abs().transpose(1, 2).contiguous()
        k = (T - 1) // 2
        bits = x.view({2: torch.int16, 4: torch.int32}[x.element_size()])
        ref = channel_stats(h)[3]
        alternatives = {
            "median": lambda: torch.median(x, 2).values,
            "median32": lambda: torch.median(x.float(), 2).values,
            "kthvalue": lambda: torch.kthvalue(x, k + 1, 2).values,
            "sort": lambda: torch.sort(bits, 2).values[..., k].view(x.dtype),
        }
        for name, fn in alternatives.items():
            if not torch.equal(fn().float(), ref):
                raise SystemExit(f"{name} differs from channel_stats' median")
            res[name] = timed(fn, rep)
            res[name + " launch"] = launch.get(fn)
    block = res["single block"]
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"one value of ({R}, {T}, {C}) {a.dtype} on {where}; a single-stream block of width {C} on it takes "
          f"{block:.3f} ms with {a.txt} text tokens (a double-stream block {res['double block']:.3f} ms)")
    if dev.type == "cuda":
        triton = "with Triton" if _stats_kernel.triton is not None else "without Triton: stats = torch"
        print(f"  device time of each, and (host) the time to launch it; {triton}")
    for name, ms in res.items():
        if "block" not in name and "launch" not in name:
            host = res.get(name + " launch")
            host = f"   (host {host:.3f} ms)" if host is not None else ""
            print(f"  {name:<9} {ms:8.3f} ms  {100 * ms / block:6.2f}% of the single block{host}")


if __name__ == "__main__":
    main()
