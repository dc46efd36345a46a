"""Chunk files on a local disk (dit_lens.store._files): exact bytes past the page cache where the filesystem takes
O_DIRECT, the same bytes buffered where it does not, and never a half-written chunk."""

from __future__ import annotations

import errno
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from dit_lens.store import _files

SIZES = [0, 1, 4095, 4096, 4097, 6 * 2**20 + 5]


def _takes_direct(folder) -> bool:
    try:
        fd = os.open(os.path.join(folder, "probe"), os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    except (OSError, AttributeError):
        return False
    os.close(fd)
    os.unlink(os.path.join(folder, "probe"))
    return True


@pytest.mark.parametrize("size", SIZES)
def test_a_chunk_file_holds_exactly_its_bytes_and_checksum(tmp_path, size):
    files = _files.LocalFiles(str(tmp_path))
    data, tail = os.urandom(size), b"\x01\x02\x03\x04"
    files.put("c/0/0", data, tail)
    assert (tmp_path / "c" / "0" / "0").read_bytes() == data + tail  # not padded to whole pages
    assert files.direct == _takes_direct(tmp_path)  # past the page cache wherever the filesystem allows it
    assert not list(tmp_path.rglob("*.partial"))


def test_a_filesystem_that_refuses_o_direct_gets_the_same_bytes_buffered(tmp_path, monkeypatch):
    real_open = os.open

    def refuse(path, flags, *a):
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *a)

    monkeypatch.setattr(_files.os, "open", refuse)
    files = _files.LocalFiles(str(tmp_path), direct=True)
    files.put("c/0", b"abc" * 50000, b"tail")
    assert (tmp_path / "c" / "0").read_bytes() == b"abc" * 50000 + b"tail"
    assert files.direct is False  # and buffered from then on


def test_a_refused_direct_write_falls_back_whole(tmp_path, monkeypatch):
    def refuse(fd, data):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(_files.os, "write", refuse)
    files = _files.LocalFiles(str(tmp_path), direct=True)
    files.put("c/0", b"x" * 100000, b"t")
    assert (tmp_path / "c" / "0").read_bytes() == b"x" * 100000 + b"t"
    assert files.direct is False and not list(tmp_path.rglob("*.partial"))


def test_a_failing_disk_raises_and_leaves_the_old_chunk(tmp_path, monkeypatch):
    if not _takes_direct(tmp_path):
        pytest.skip("this filesystem refuses O_DIRECT")
    files = _files.LocalFiles(str(tmp_path))
    files.put("c/0", b"old", b"")

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_files.os, "write", full)
    with pytest.raises(OSError, match="No space"):  # an error that is not the filesystem refusing O_DIRECT
        files.put("c/0", b"new" * 99999, b"")
    assert (tmp_path / "c" / "0").read_bytes() == b"old"
    assert not list(tmp_path.rglob("*.partial"))


def test_threads_writing_at_once_each_keep_their_own_bytes(tmp_path):
    files = _files.LocalFiles(str(tmp_path))
    chunks = {f"c/{i}": os.urandom(100_000 + 4097 * i) for i in range(16)}
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda kv: files.put(kv[0], kv[1], b"sum!"), chunks.items()))
    for key, data in chunks.items():
        assert (tmp_path / key).read_bytes() == data + b"sum!"


def test_the_environment_can_keep_the_page_cache():
    import subprocess
    import sys

    code = "from dit_lens.store import _files; print(_files.DIRECT, _files.LocalFiles('/tmp').direct)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "DIT_LENS_O_DIRECT": "0"},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_small_files_are_written_buffered_large_ones_direct(tmp_path, monkeypatch):
    if not _takes_direct(tmp_path):
        pytest.skip("this filesystem refuses O_DIRECT")
    real_open, opened = os.open, []

    def spy(path, flags, *a):
        opened.append(bool(flags & os.O_DIRECT))
        return real_open(path, flags, *a)

    monkeypatch.setattr(_files.os, "open", spy)
    files = _files.LocalFiles(str(tmp_path))
    files.put("c/0", b"f" * (_files._DIRECT_MIN - 5), b"tail")  # a byte short: the page cache's
    files.put("c/1", b"f" * (_files._DIRECT_MIN - 4), b"tail")
    assert opened == [True]  # only the second went past the page cache (the first opened no fd of ours)
    assert (tmp_path / "c" / "0").read_bytes() == b"f" * (_files._DIRECT_MIN - 5) + b"tail"
    assert files.direct
