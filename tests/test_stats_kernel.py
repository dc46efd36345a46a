"""The fused statistics kernel (dit_lens/_stats_kernel.py), run by Triton's interpreter on the CPU: it must equal the
host path exactly for max|x| and the median and to float32 rounding for mean|x| and rms, count inf/nan, and keep
NaN where torch.median would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

SCRIPT = textwrap.dedent('''
    import json
    import numpy as np, torch
    from dit_lens import _stats_kernel
    from dit_lens._stats import _device_stats, _nonfinite, channel_stats
    assert _stats_kernel.available(1025, torch.device("cpu"), torch.bfloat16)
    report = []
    for tokens in (1, 2, 255, 700, 1025, 16384):
        g = torch.Generator().manual_seed(tokens)
        h = (torch.randn(2, tokens + 3, 12, generator=g) * 3)[:, 3:]  # rows further apart than tokens x channels
        assert not h.is_contiguous()
        h[..., :2] *= 1e5  # massive channels: inf in float16
        h[1, -1, 5], h[1, 0, 6], h[0, tokens // 2, 7] = float("inf"), float("nan"), -float("inf")
        h[0, :, 8], h[1, : tokens // 2 + 1, 9] = 0.0, -7.0  # a zero channel, a tied median
        tokens_last = h.transpose(1, 2).contiguous().transpose(1, 2)  # channels strided, tokens contiguous
        for x in (h, h.to(torch.bfloat16), h.to(torch.float16), tokens_last):
            got, bad = _device_stats(x)
            ref = channel_stats(x)
            exact = [bool(np.array_equal(got[i].numpy(), ref[i].numpy(), equal_nan=True)) for i in (1, 3)]
            close = [bool(np.allclose(got[i].numpy(), ref[i].numpy(), rtol=1e-5, equal_nan=True)) for i in (0, 2)]
            report.append([tokens, str(x.dtype), exact, close, int(bad), _nonfinite(x, ref[1])])
    print(json.dumps(report))
''')


def test_fused_kernel_equals_host_statistics():
    env = dict(os.environ, TRITON_INTERPRET="1")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report) == 24
    for tokens, dtype, exact, close, bad, expect_bad in report:
        assert exact == [True, True], (tokens, dtype, "max|x| and median must be exact")
        assert close == [True, True], (tokens, dtype, "mean|x| and rms to float32 rounding")
        assert bad == expect_bad and bad >= 3, (tokens, dtype, bad, expect_bad)
