"""cuda / nccl / verbs / compute: one clear message when torch, a GPU, pyverbs
or an RDMA device is missing (imports monkeypatched, so this runs anywhere)."""
import json
import sys
import types

import pytest

from dpsim.hw import TRANSPORTS, TransportUnavailable, get_transport


def _fake_torch(cuda_available=False, cuda_version=None, n_gpus=0):
    torch = types.ModuleType("torch")
    torch.__version__ = "0.0-fake"
    torch.version = types.SimpleNamespace(cuda=cuda_version)
    torch.cuda = types.SimpleNamespace(is_available=lambda: cuda_available, device_count=lambda: n_gpus)
    dist = types.ModuleType("torch.distributed")
    dist.is_available = lambda: True
    dist.is_nccl_available = lambda: True
    torch.distributed = dist
    return torch, dist


@pytest.fixture
def no_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "torch.distributed", None)


def test_registry_names():
    assert set(TRANSPORTS) == {"cpu", "file", "cuda", "nccl", "verbs"}
    with pytest.raises(ValueError, match="unknown transport"):
        get_transport("warp-drive")


@pytest.mark.parametrize("name", ["cuda", "nccl"])
def test_missing_torch(no_torch, name):
    with pytest.raises(TransportUnavailable) as ei:
        get_transport(name).check()
    msg = str(ei.value)
    assert "PyTorch is not installed" in msg and "pip install dpsim-dualpath[torch]" in msg
    assert ei.value.transport == name


@pytest.mark.parametrize("name", ["cuda", "nccl"])
def test_cpu_only_torch(monkeypatch, name):
    torch, dist = _fake_torch(cuda_available=False, cuda_version=None)
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch.distributed", dist)
    with pytest.raises(TransportUnavailable, match="CPU-only build"):
        get_transport(name).check()


@pytest.mark.parametrize("name", ["cuda", "nccl"])
def test_no_gpu(monkeypatch, name):
    torch, dist = _fake_torch(cuda_available=False, cuda_version="13.0")
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch.distributed", dist)
    with pytest.raises(TransportUnavailable, match="no NVIDIA GPU visible"):
        get_transport(name).check()


def test_nccl_needs_two_gpus(monkeypatch):
    torch, dist = _fake_torch(cuda_available=True, cuda_version="13.0", n_gpus=1)
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch.distributed", dist)
    with pytest.raises(TransportUnavailable, match="needs two GPUs, 1 visible"):
        get_transport("nccl").check()


def test_real_torch_without_gpu_if_installed():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(TransportUnavailable):
        get_transport("cuda").check()


def test_compute_without_torch(no_torch):
    from dpsim.calibration.compute import run_compute

    with pytest.raises(TransportUnavailable, match="PyTorch is not installed"):
        run_compute()


def test_batched_copy_without_driver(monkeypatch):
    import ctypes

    from dpsim.hw.cuda import DriverBatchCopy

    def nolib(*a, **k):
        raise OSError("libcuda.so.1: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", nolib)
    b = DriverBatchCopy()
    assert not b.available and "libcuda.so.1" in b.error


def test_verbs_without_pyverbs(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyverbs", None)
    monkeypatch.setitem(sys.modules, "pyverbs.device", None)
    with pytest.raises(TransportUnavailable) as ei:
        get_transport("verbs").check()
    msg = str(ei.value)
    assert "pyverbs is not importable" in msg
    assert "pip install dpsim-dualpath[rdma]" in msg and "rdma-core" in msg and "59" in msg


def _fake_pyverbs(monkeypatch, devices):
    pkg = types.ModuleType("pyverbs")
    pkg.__path__ = []
    mods = {"pyverbs": pkg}
    dev = types.ModuleType("pyverbs.device")
    dev.get_device_list = lambda: devices
    dev.Context = object
    mods["pyverbs.device"] = dev
    mods["pyverbs.enums"] = types.ModuleType("pyverbs.enums")
    for name, attrs in {"pyverbs.addr": ["GID", "AHAttr", "GlobalRoute"], "pyverbs.cq": ["CQ"],
                        "pyverbs.mr": ["MR"], "pyverbs.pd": ["PD"],
                        "pyverbs.qp": ["QP", "QPAttr", "QPCap", "QPInitAttr"], "pyverbs.wr": ["SGE", "SendWR"]}.items():
        m = types.ModuleType(name)
        for a in attrs:
            setattr(m, a, object)
        mods[name] = m
    for k, v in mods.items():
        monkeypatch.setitem(sys.modules, k, v)


def test_verbs_no_rdma_device(monkeypatch):
    _fake_pyverbs(monkeypatch, [])
    with pytest.raises(TransportUnavailable, match="no RDMA device found"):
        get_transport("verbs").check()


def test_verbs_unknown_device(monkeypatch):
    _fake_pyverbs(monkeypatch, [types.SimpleNamespace(name=b"mlx5_0")])
    with pytest.raises(TransportUnavailable, match="'mlx5_9' not found"):
        get_transport("verbs", device="mlx5_9").check()


def test_cli_reports_unavailable(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "pyverbs", None)
    from dpsim.calibration.__main__ import main

    rc = main(["run", "--transport", "verbs", "--out", str(tmp_path)])
    assert rc == 2
    info = json.loads((tmp_path / "unavailable_verbs.json").read_text())
    assert "pyverbs" in info["message"]
    assert "verbs transport unavailable" in capsys.readouterr().err


def test_cli_check_all(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyverbs", None)
    from dpsim.calibration.__main__ import main

    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "cpu    available" in out and "verbs" in out
