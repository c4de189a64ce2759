"""Hardware-in-the-loop replay (hw/replay.py, calibration/hil.py) on the CPU/file mapping: runs
in CI without a GPU (host memcpy stands in for H2D/D2H, storage is O_DIRECT file I/O in a
temporary directory)."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from dpsim.calibration.hil import (build_sim, compose, hil_config, main, request_lower_bound, run_case,
                             scenario_overrides)
from dpsim.calibration.profile import load_profile
from dpsim.cluster.profile import MAPPINGS, apply_profile
from dpsim.config import validate
from dpsim.net import Network
from helpers import trajectories
from dpsim.hw import TransportUnavailable
from dpsim.hw.replay import HardwareBackend, HardwareReplayError, make_env, resolve

PROFILE = str(Path(__file__).resolve().parents[2] / "calibration" / "profiles" / "h100_measured.yaml")
SMALL = dict(host_pool_bytes=64 << 20, dev_pool_bytes=32 << 20, file_bytes=32 << 20, chunk_bytes=4 << 20,
             workers=8, io_workers=8)


@pytest.fixture(scope="module")
def cpu_backend(tmp_path_factory):
    be = HardwareBackend("cpu", file_dir=str(tmp_path_factory.mktemp("hil")), **SMALL)
    be.open()
    yield be
    be.close()


@pytest.fixture(scope="module")
def base_cfg():
    return compose(scenario_overrides("round_robin", "16k", 2, 0.1))


def test_routes_map_to_operations(base_cfg):
    sim = build_sim(base_cfg, trajectories=trajectories(2, 2, first=1000, seed=1))
    cl = sim.cluster
    pe, de = cl.prefill_nodes[0].gpus[0], cl.decode_nodes[0].gpus[0]

    class T:  # a Transfer's mapping-relevant fields
        def __init__(self, route, tag, size=1.0):
            self.route, self.tag, self.size = route, tag, size
    R = cl.routes
    assert resolve(T(R.storage_read(pe.node), ("read", 1))) == ("storage_read", "file_read", 0, None)
    assert resolve(T(R.storage_read(de.node), ("read", 1))) == ("storage_read", "file_read", 1, None)
    assert resolve(T(R.storage_write(de.node), ("persist", 1))) == ("storage_write", "file_write", 1, None)
    assert resolve(T(R.h2d(pe), ("pe_in", 1))) == ("h2d", "h2d", 0, 0)
    assert resolve(T(R.h2d(de), ("de_h2d", 1))) == ("h2d", "h2d", 1, 1)
    assert resolve(T(R.remote_h2d(de, pe), ("pe_in", 1))) == ("remote_h2d", "h2d", 1, 0)
    assert resolve(T(R.gpu_to_remote(pe, de), ("pe_out", 1))) == ("gpu_to_remote", "d2h", 1, 0)
    assert resolve(T(R.d2h(de), ("d2h", 1))) == ("d2h", "d2h", 1, 1)
    with pytest.raises(HardwareReplayError, match="model_traffic=false"):
        resolve(T(R.model(pe, de), ("ep", 0), size=math.inf))
    with pytest.raises(HardwareReplayError, match="route kind"):
        resolve(T(tuple(R.h2d(pe)), ("pe_in", 1)))  # a bare tuple has no identity


def test_apply_profile_uses_profile_keys(base_cfg):
    prof = load_profile(PROFILE)
    c = apply_profile(base_cfg, prof, "cuda")
    validate(c)
    cl, L, S = c["cluster"], prof["links"], prof["sharing"]
    assert cl["snic_Bps"] == L["file_read"]["bandwidth_Bps"] and cl["snic_efficiency"] == 1.0
    assert cl["storage_Bps"] == max(S["file_read_same"]["total_Bps"], L["file_read"]["bandwidth_Bps"])
    assert cl["storage_latency_s"] == L["file_read"]["latency_s"]
    assert cl["pcie_Bps"] == min(L["h2d"]["bandwidth_Bps"], L["d2h"]["bandwidth_Bps"])
    assert cl["cnic_Bps"] == S["h2d+d2h"]["total_Bps"]
    assert cl["dram_Bps"] == S["h2d_2gpu"]["total_Bps"]
    assert cl["net_latency_s"] == L["h2d"]["latency_s"]
    assert c["system"]["submission"] == {"layer_block_s": 0.0, "full_block_s": 0.0, "storage_block_s": 0.0}
    assert base_cfg["cluster"]["snic_Bps"] != cl["snic_Bps"]  # a copy: the input is untouched
    p2p = apply_profile(base_cfg, prof, "cuda_p2p")
    assert p2p["cluster"]["cnic_Bps"] == L["p2p"]["bandwidth_Bps"] and not MAPPINGS["cuda_p2p"].executable
    blk = apply_profile(base_cfg, prof, MAPPINGS["cuda"].__class__("x", submission="per_block"))
    assert blk["system"]["submission"]["layer_block_s"] == L["h2d"]["per_message_s"]
    from dpsim.cluster.profile import link_profile

    assert link_profile(base_cfg) is base_cfg  # cluster.link_profile: null
    named = compose(scenario_overrides("round_robin", "16k", 2, 0.1) +
                    [f"cluster.link_profile={PROFILE}"])
    assert link_profile(named)["cluster"] == {**c["cluster"], "link_profile": named["cluster"]["link_profile"]}


def test_paced_transfer_waits_for_its_pace(cpu_backend):
    env = make_env(1.0)
    net = Network(env, backend=cpu_backend)
    dram = net.add_link("dram[0]", 1e12, "dram", 0)
    rd = net.add_link("cnic_rd[0]", 1e12, "cnic_rd", 0)
    wr = net.add_link("cnic_wr[0]", 1e12, "cnic_wr", 0)
    from types import SimpleNamespace

    from dpsim.cluster.routes import Route, RouteKind
    node = SimpleNamespace(nid=0)
    route = Route((dram, rd, wr), RouteKind.H2D, node, SimpleNamespace(gid=0, node=node))
    done = []
    size = 8 << 20
    cpu_backend.records = []
    env.sync()
    net.transfer(route, size, lambda t: done.append(env.now), max_rate=size / 0.1, tag=("pe_in", 1))
    net.transfer(route, size, lambda t: done.append(env.now), tag=("de_h2d", 2))
    env.run()
    assert len(done) == 2 and net.n_completed == 2
    paced = [r for r in cpu_backend.records if r["kind"] == "pe_in"][0]
    assert paced["dur_s"] >= 0.1 - 1e-9 and paced["pieces"] >= cpu_backend.pace_pieces
    assert max(done) >= 0.1 and max(done) < 0.5
    free = [r for r in cpu_backend.records if r["kind"] == "de_h2d"][0]
    assert free["pace_floor_s"] == 0.0 and free["dur_s"] == free["hw_s"] > 0


def test_hardware_error_reaches_the_simulation(cpu_backend, monkeypatch):
    env = make_env(1.0)
    net = Network(env, backend=cpu_backend)
    rx = net.add_link("snic_rx[0]", 1e9, "snic_rx", 0)
    dram = net.add_link("dram[0]", 1e12, "dram", 0)

    def boom(*a, **k):
        raise OSError("disk on fire")
    monkeypatch.setattr(cpu_backend, "_run", boom)
    from types import SimpleNamespace

    from dpsim.cluster.routes import Route, RouteKind
    node = SimpleNamespace(nid=0)
    net.transfer(Route((rx, dram), RouteKind.STORAGE_READ, node, node), 1 << 20, tag=("read", 1))
    with pytest.raises(HardwareReplayError, match="disk on fire"):
        env.run()


def test_tiny_hil_replay_completes_within_bounds(cpu_backend, base_cfg):
    trajs = trajectories(2, 3, first=1500, append=(100, 300), gen=(5, 20), seed=3)
    prof = load_profile(PROFILE)
    cfg = hil_config(apply_profile(base_cfg, prof, "cpu"))
    cpu_backend.records = []
    case = run_case(cfg, "hil", backend=cpu_backend, trajectories=trajs, max_wall_s=60)
    req, s = case.requests, case.summary
    assert s["requests_completed"] == s["requests_total"] == 6 and not s["truncated"]
    assert (req.status == "done").all()
    assert set(req.path[req.hit > 0]) >= {"pe", "de"}  # round robin: both read paths
    lb = request_lower_bound(case.sim, req)
    assert (req.ttft_s.values >= lb.ttft_lb_s.values - 1e-9).all()
    assert (req.end_s.values >= lb.end_lb_s.values - 1e-9).all()
    assert (req.first_token_s >= req.read_end_s).all() and (req.end_s >= req.first_token_s).all()
    tf = case.transfers
    # every simulated transfer ran on the (CPU) hardware, and none completed early
    assert len(cpu_backend.records) == len(tf) > 0 and tf.hw_s.notna().all()
    assert set(tf.route_class) >= {"storage_read", "storage_write", "h2d", "remote_h2d", "gpu_to_remote"}
    assert (tf.dur_s >= tf.hw_s - 1e-9).all()
    paced = tf.max_rate < math.inf
    assert (tf.dur_s[paced] >= (tf["size"] / tf.max_rate)[paced] * (1 - 1e-9)).all()
    assert np.isfinite(tf.t_end).all()


def test_report_structure(tmp_path):
    out = tmp_path / "rep"
    rc = main(["--out", str(out), "--quick", "--device", "cpu", "--agents", "2", "--turns", "4",
               "--file-bytes", "32MiB", "--host-pool", "128MiB", "--dev-pool", "64MiB", "--chunk", "8MiB",
               "--file-dir", str(tmp_path)])
    assert rc == 0
    for f in ("REPORT.md", "transfers.csv", "per_kind.csv", "end_to_end.csv", "requests.csv", "hil.png",
              "probe_profile.yaml", "meta.json"):
        assert (out / f).stat().st_size > 0, f
    rep = (out / "REPORT.md").read_text()
    for sec in ("## Scenario", "## End to end", "## Per transfer", "## Mapping", "## Running on RDMA nodes"):
        assert sec in rep
    import pandas as pd

    e2e = pd.read_csv(out / "end_to_end.csv").set_index("metric")
    for m in ("jct_s", "ttft_mean_s", "tpot_mean_s"):
        assert np.isfinite(float(e2e.loc[m, "hil"])) and np.isfinite(float(e2e.loc[m, "err_model_probe"]))
    pk = pd.read_csv(out / "per_kind.csv")
    assert {"all", "storage_read", "h2d"} <= set(pk.group)
    assert {"alone_probe_mape", "run_model_shipped_mape", "run_model_probe_median_rel_err"} <= set(pk.columns)
    load_profile(out / "probe_profile.yaml")  # a valid profile
    assert not list(tmp_path.glob("dpsim_hil_*"))  # the pools' files are removed


def test_missing_cuda_is_one_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(TransportUnavailable) as ei:
        HardwareBackend("cuda", file_dir=str(tmp_path)).open()
    assert ei.value.transport == "cuda" and "PyTorch is not installed" in str(ei.value)
    assert main(["--out", str(tmp_path / "x"), "--quick", "--device", "cuda"]) == 2
    assert "cuda transport unavailable" in capsys.readouterr().err
    assert not list(tmp_path.glob("dpsim_hil_*"))
