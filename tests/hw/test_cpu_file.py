"""cpu and file transports measured for real (small sizes), bytes verified."""
import errno
import os

import numpy as np
import pytest

from dpsim.hw import TransportUnavailable, get_transport
from dpsim.hw.base import TransferSpec
from dpsim.hw.file import expected_pattern


@pytest.fixture
def cpu():
    t = get_transport("cpu")
    t.check()
    yield t
    t.close()


@pytest.fixture
def ftr(tmp_path):
    t = get_transport("file", path=str(tmp_path), queue_depth=3, chunk_bytes=64 << 10)
    t.check()
    yield t
    t.close()


@pytest.mark.parametrize("n", [4096, 65536, 1 << 20, 3 * (1 << 20) + 4096])
def test_cpu_transfer_copies_bytes(cpu, n):
    s = cpu.transfer(n, verify=True)
    assert 0 < s < 1.0


def test_cpu_copy_really_copies(cpu):
    # independent check of the buffers behind transfer()
    cpu.cold = False
    cpu.transfer(8192, verify=True)
    src, dst = cpu._pair(0, 8192)
    assert np.array_equal(src[:8192], dst[:8192])
    assert src[:8192].std() > 0  # not a constant pattern


def test_cpu_concurrent_and_blocks(cpu):
    times = cpu.transfer_concurrent([TransferSpec(1 << 20)] * 3, verify=True)
    assert len(times) == 3 and all(t > 0 for t in times)
    for mode in ("loop", "batched", "single"):
        r = cpu.transfer_blocks(61, 16 << 10, mode=mode, verify=True)
        assert r.seconds > 0 and r.method


def test_file_read_write_verified(ftr):
    assert ftr.transfer(4096, verify=True) > 0
    assert ftr.transfer(1 << 20, verify=True) > 0  # 16 chunks over 3 threads
    assert ftr.transfer(256 << 10, src="host", dst="file", verify=True) > 0
    times = ftr.transfer_concurrent([TransferSpec(256 << 10, "file", "host"),
                                     TransferSpec(256 << 10, "host", "file")], verify=True)
    assert len(times) == 2 and min(times) > 0


def test_file_blocks_verified(ftr):
    for mode in ("loop", "batched", "single"):
        r = ftr.transfer_blocks(61, 4096, mode=mode, verify=True)
        assert r.seconds > 0


def test_file_pattern_is_position_dependent():
    a = expected_pattern(0, 4096)
    b = expected_pattern(4096, 4096)
    assert not np.array_equal(a, b)


def test_file_o_direct_fallback(tmp_path, monkeypatch):
    real_open = os.open

    def fake_open(path, flags, *a, **k):
        if hasattr(os, "O_DIRECT") and flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", fake_open)
    t = get_transport("file", path=str(tmp_path))
    t.check()
    try:
        assert t.o_direct is False
        assert "fell back to buffered I/O" in t.o_direct_note
        assert t.describe()["o_direct"] is False
        assert t.transfer(64 << 10, verify=True) > 0
    finally:
        t.close()


def test_file_missing_dir_is_clear(tmp_path):
    t = get_transport("file", path=str(tmp_path / "nope"))
    with pytest.raises(TransportUnavailable, match="does not exist"):
        t.check()


def test_describe_has_machine_metadata(cpu):
    d = cpu.describe()
    for k in ("host", "date", "python", "numpy", "cpu", "transport"):
        assert k in d
