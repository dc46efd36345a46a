"""A recorded value's way to host memory: copied at once from the CPU, on a side stream from a GPU, and waited for
on the writer's thread only."""

import numpy as np
import pytest
import torch

from dit_lens._handoff import Rows, WriterThread
from dit_lens._host_copy import HostCopies, PendingCopy, host_array, on_host


class Landing:
    """A copy's event that lands the copy when waited for: reading the buffer before ``synchronize`` shows zeros."""

    def __init__(self, buf, value):
        self.buf, self.value, self.waited = buf, value, 0

    def synchronize(self):
        self.buf.copy_(self.value)
        self.waited += 1


def pending(value):
    buf = torch.zeros_like(value)
    done = Landing(buf, value)
    return PendingCopy(buf, done), done


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_a_cpu_value_is_copied_as_the_store_keeps_it(dtype):
    h = (torch.randn(2, 5, 3) * 1e5).to(dtype)  # beyond float16's range where the dtype allows
    want = host_array(h.clone())
    got = HostCopies().take(h)
    h.zero_()  # the model may change its output in place after the read
    assert isinstance(got, np.ndarray) and got.dtype == (np.uint16 if dtype == torch.bfloat16 else want.dtype)
    assert np.array_equal(got, want)
    if dtype == torch.bfloat16:  # raw bf16 words: exact in float32 once shifted back
        back = (got.astype(np.uint32) << 16).view(np.float32)
        assert np.array_equal(back, torch.from_numpy(want.astype(np.int16)).view(torch.bfloat16).float().numpy())


def test_a_pending_copy_is_read_only_once_it_landed():
    value = torch.arange(24, dtype=torch.bfloat16).reshape(2, 3, 4)
    p, done = pending(value)
    assert p.shape == (2, 3, 4) and p.dtype == torch.bfloat16
    assert np.array_equal(on_host(p), host_array(value)) and done.waited == 1
    rows = p[[1]]
    assert rows.shape == (1, 3, 4)
    assert np.array_equal(rows.get(), host_array(value)[[1]])
    a = np.ones(3)
    assert on_host(a) is a


def test_the_writer_thread_waits_for_each_pending_copy_and_cuts_rows_after_it():
    class Writer:
        def __init__(self):
            self.got, self.closed = [], None

        def data(self, samples, step, name, value):
            self.got.append((samples, step, name, np.array(value)))

        def close(self, abandon=False):
            self.closed = abandon

    w = Writer()
    thread = WriterThread(w, maxsize=2, timeout=10.0)
    thread.start()
    values = [torch.randn(3, 4, 2) for _ in range(3)]
    copies = [pending(v) for v in values]
    for i, (p, _) in enumerate(copies[:2]):
        thread.put(("data", [0, 1, 2], i, "double.0.img.resid_post", p))
    Rows(thread, [0, 1, 2], keep=[0, 2]).put(("data", [0, 1, 2], 2, "double.0.img.resid_post", copies[2][0]))
    thread.finish()
    assert w.closed is False and [d.waited for _, d in copies] == [1, 1, 1]
    assert [(s, step) for s, step, _, _ in w.got] == [([0, 1, 2], 0), ([0, 1, 2], 1), ([0, 2], 2)]
    for (_, _, _, got), want in zip(w.got, [values[0], values[1], values[2][[0, 2]]]):
        assert np.array_equal(got, want.numpy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_a_gpu_value_changed_in_place_after_its_read_is_stored_as_read(dtype):
    copies = HostCopies()
    busy = torch.randn(4096, 4096, device="cuda")
    for _ in range(3):
        h = torch.randn(2, 4096, 3072, device="cuda").mul_(1e4).to(dtype)  # 50-100 MB: a long copy
        want = host_array(h.cpu())
        for _ in range(10):  # the model's stream is busy when the value is taken: the copy starts late
            busy = busy @ busy / 64
        got = copies.take(h)
        h.zero_()  # queued on the model's stream right after the read, as an in-place module would
        h[:, :7] = float("nan")
        assert isinstance(got, PendingCopy)
        assert np.array_equal(got.get(), want)
    torch.cuda.synchronize()
