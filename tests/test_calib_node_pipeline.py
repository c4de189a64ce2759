"""Issue #12, one machine end to end: calibration/node_pipeline.sh and what it relies on --
device_run.sh's deadline (UNTIL), replays that alternate between systems and a summary that names
its scenario and the sha256 of the profile it priced, and the storage A/B's helpers
(dpsim.calibration.hil_diag)."""
import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpsim.calibration import hil, hil_diag

ROOT = Path(__file__).resolve().parents[1]


def _env(**kw):
    return dict(os.environ, PYTHON=sys.executable, **kw)


def test_device_run_until_skips_every_stage_but_fit(tmp_path):
    r = subprocess.run(["bash", "calibration/device_run.sh", str(tmp_path / "o"), "probe cpu fit"], cwd=ROOT,
                       env=_env(UNTIL="1", SMOKE="1"), capture_output=True, text=True, timeout=120)
    out = r.stdout
    assert "=== stage probe skipped" in out and "=== stage cpu skipped" in out
    assert "=== stage fit (timeout 120s)" in out  # fit is never cut by UNTIL
    assert "=== stage cpu (timeout" not in out


def test_device_run_runs_storage_and_pcie_stages_first():
    text = (ROOT / "calibration/device_run.sh").read_text()
    order = [ln.split()[1] for ln in text.splitlines() if ln.startswith("stage ")]
    assert order[:5] == ["probe", "file", "file_mixed", "cuda_sizes", "cuda_conc"] and order[-1] == "fit"
    default = text.split('STAGES=${2:-"')[1].split('"')[0].split()
    assert default == order  # the documented default lists the stages in the order they run


def test_node_pipeline_stops_before_replays_without_a_profile(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    r = subprocess.run(["bash", "calibration/node_pipeline.sh", str(out)], cwd=ROOT,
                       env=_env(CAL_STAGES="verbs", INSTALL="0", WORK=str(work), CHECKOUT="abc123"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 5, r.stdout + r.stderr
    log = (out / "pipeline.log").read_text()
    assert "=== checkout abc123" in log and "no profile was fitted: stopping before the replays" in log
    assert "=== replays" not in log
    with tarfile.open(out / "calibration.tgz") as t:  # what the stages left still comes back
        assert "cal/run.tgz" in t.getnames()
        t.extract("cal/run.tgz", tmp_path, filter="data")
    with tarfile.open(tmp_path / "cal" / "run.tgz") as t:
        assert "run/unavailable_verbs.json" in t.getnames()
    assert not (out / "hil_summary.json").exists()


def test_node_pipeline_deadline_leaves_the_replays_their_time(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    r = subprocess.run(["bash", "calibration/node_pipeline.sh", str(out)], cwd=ROOT,
                       env=_env(CAL_STAGES="probe", INSTALL="0", WORK=str(work), DEADLINE_S="300",
                                HIL_RESERVE_S="200", FIT_RESERVE_S="25"),
                       capture_output=True, text=True, timeout=120)
    log = (out / "pipeline.log").read_text()
    assert "calibration stages must end by +75 s" in log  # 300 - 200 - 25
    assert r.returncode == 5


def test_hil_alternates_replays_and_names_scenario_and_profile(tmp_path, capsys):
    prof = ROOT / "calibration/profiles/h100_measured.yaml"  # has the cpu mapping's links
    rc = hil.main(["--out", str(tmp_path / "h"), "--device", "cpu", "--quick", "--no-probe",
                   "--systems", "round_robin,dualpath", "--replays", "2", "--file-dir", str(tmp_path),
                   "--profile", str(prof)])
    assert rc == 0
    runs = [ln.split(": HIL run")[0].replace("[hil] ", "") for ln in capsys.readouterr().out.splitlines()
            if "HIL run (real time)" in ln]
    assert runs == ["round_robin replay 1/2", "dualpath replay 1/2", "round_robin replay 2/2", "dualpath replay 2/2"]
    d = json.loads((tmp_path / "h" / "hil_summary.json").read_text())
    assert d["scenario"] == {"agents": 2, "turns": 6, "mal": "16k", "gen_scale": 0.1, "override": [],
                             "mapping": "cpu", "quick": True}
    assert d["profile_sha256"] == {"shipped": hashlib.sha256(prof.read_bytes()).hexdigest()}
    assert {s: v["n_replays"] for s, v in d["systems"].items()} == {"round_robin": 2, "dualpath": 2}
    for s in ("round_robin", "dualpath"):
        assert (tmp_path / "h" / s / "replay2" / "REPORT.md").exists()


# ------------------------------------------------------------------ the storage A/B's helpers
def test_depth_throughput_time_weighted_and_skips_writes():
    # one 2 GB read over [0, 2) s; a second 1 GB read over [1, 2) s; a write over [1.5, 2)
    reads = pd.DataFrame({"t0": [0.0, 1.0], "t1": [2.0, 2.0], "nbytes": [2e9, 1e9]})
    writes = pd.DataFrame({"t0": [1.5], "t1": [2.0], "nbytes": [1e8]})
    d = hil_diag.depth_throughput(reads, writes)
    assert d["k1"]["seconds"] == pytest.approx(1.0) and d["k1"]["GBps"] == pytest.approx(1.0)
    assert d["k2"]["seconds"] == pytest.approx(0.5) and d["k2"]["GBps"] == pytest.approx(2.0)
    assert set(d) == {"k1", "k2"}


def test_request_gaps_per_thread():
    # thread 1: three requests of 1 ms with 100 us between them; thread 2: one with a 1 s wait (not a gap)
    rows = [(1, 0.0, 0.001, 1, False), (1, 0.0011, 0.0021, 1, False), (1, 0.0022, 0.0032, 1, False),
            (2, 0.0, 0.001, 1, False), (2, 1.001, 1.002, 1, False)]
    io = pd.DataFrame(rows, columns=["thread", "t_call", "t_ret", "nbytes", "write"])
    g = hil_diag.request_gaps(io)["read"]
    assert g["n_requests"] == 5
    assert g["gap_us_median"] == pytest.approx(100.0)
    assert g["service_ms_median"] == pytest.approx(1.0)
    assert g["gap_over_service"] == pytest.approx(0.0002 / 0.005)


def test_io_timer_times_reads_and_forwards_os(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x" * 8192)
    t = hil_diag.IoTimer()
    assert t.O_RDONLY == os.O_RDONLY  # everything else is os's
    fd = os.open(p, os.O_RDONLY)
    try:
        buf = bytearray(4096)
        assert t.preadv(fd, [buf], 0) == 4096  # off: not recorded
        t.on = True
        assert t.preadv(fd, [buf], 4096) == 4096
    finally:
        os.close(fd)
    df = t.take()
    assert len(df) == 1 and df.nbytes.iloc[0] == 4096 and not df.write.iloc[0]
    assert (df.t_ret >= df.t_call).all() and t.take().empty


def test_trace_replay_reissues_at_start_times(tmp_path):
    from dpsim.hw.replay import HardwareBackend

    be = HardwareBackend("cpu", file_dir=str(tmp_path), host_pool_bytes=64 << 20, dev_pool_bytes=16 << 20,
                         file_bytes=64 << 20, chunk_bytes=4 << 20).open()
    try:
        recs = [{"id": 1, "route_class": "storage_read", "op": "file_read", "node": 0, "gpu": None,
                 "size": 4 << 20, "max_rate": np.inf, "t_start": 0.0, "hw_s": 0.01},
                {"id": 2, "route_class": "h2d", "op": "h2d", "node": 1, "gpu": 0,
                 "size": 2 << 20, "max_rate": float(20 << 20), "t_start": 0.05, "hw_s": 0.1}]
        out = sorted(hil_diag.trace_replay(be, recs), key=lambda r: r["id"])
        only = hil_diag.trace_replay(be, recs, kinds=("file_read",))
    finally:
        be.close()
    assert [r["id"] for r in out] == [1, 2] and [r["id"] for r in only] == [1]
    assert out[1]["t_start"] >= 0.05 - 1e-3  # not before its recorded start
    assert out[1]["hw_s"] >= (2 << 20) / (20 << 20) * 0.9  # paced like the replay (size / max_rate)
    assert out[1]["hil_hw_s"] == 0.1


# ------------------------------------------------------------------ the committed one-machine runs
SUMMARY = ROOT / "calibration/reports/h200/hil_summary.json"
PROFILE = ROOT / "calibration/profiles/h100x1_measured.yaml"
# the first one-call run (before the mixed-I/O suite), kept with its own profile
RUNS = [(SUMMARY, PROFILE),
        (ROOT / "calibration/reports/h200/first_one_call/hil_summary.json",
         ROOT / "calibration/profiles/h100x1_first_measured.yaml")]


@pytest.mark.parametrize("summary,profile", RUNS)
def test_committed_summary_judged_the_committed_profile(summary, profile):
    d = json.loads(summary.read_text())
    assert d["profile_sha256"]["shipped"] == hashlib.sha256(profile.read_bytes()).hexdigest()
    assert {s: v["n_replays"] for s, v in d["systems"].items()} == {"round_robin": 3, "dualpath": 3}
    assert all(v["all_completed"] for v in d["systems"].values())


@pytest.mark.parametrize("summary,profile", RUNS)
def test_committed_summary_model_numbers_reprice_from_the_profile(summary, profile):
    """The model is deterministic: the committed profile (with its storage write weight, when
    it has one) and the summary's scenario give the model's JCT and mean TTFT that the summary
    judged."""
    from dpsim.calibration.profile import load_profile
    from dpsim.cluster.profile import apply_profile, storage_write_weight

    d = json.loads(summary.read_text())
    sc = d["scenario"]
    prof = load_profile(profile)
    w = storage_write_weight(prof, sc["mapping"])
    assert w == d.get("storage_write_weight", {}).get("model_shipped", 1.0)
    for system, v in d["systems"].items():
        base = hil.compose(hil.scenario_overrides(system, sc["mal"], sc["agents"], sc["gen_scale"]) + sc["override"])
        base["cluster"]["link_profile"] = None
        c = hil.run_case(apply_profile(base, prof, sc["mapping"]), "model", max_turns=sc["turns"], write_weight=w)
        m = v["models"]["model_shipped"]
        assert c.summary["jct_s"] == pytest.approx(m["jct_s"], rel=1e-9)
        assert c.summary["ttft_s"]["mean"] == pytest.approx(m["ttft_mean_s"], rel=1e-9)


def test_committed_run_fitted_the_write_weight_from_its_mixed_suite():
    """The profile's storage write weight is dpsim.calibration.mixed's fit of the windows committed
    beside the report (never the replays): w = 0.80 there, priced as 1."""
    from dpsim.calibration.mixed import profile_entry
    from dpsim.calibration.profile import load_profile

    tab = pd.read_csv(ROOT / "calibration/reports/h200/mixed_raw.csv")
    meta = json.loads((ROOT / "calibration/reports/h200/mixed_meta.json").read_text())
    e = profile_entry(tab, meta)
    fw = load_profile(PROFILE)["links"]["file_write"]
    assert fw["storage_weight"] == e["storage_weight"] == 1.0
    assert fw["storage_weight_fit"]["w_fitted"] == pytest.approx(e["storage_weight_fit"]["w_fitted"], rel=1e-12)
    assert fw["storage_weight_fit"]["w_fitted"] == pytest.approx(0.797, abs=5e-4)


def test_records_from_transfers_and_paired_reads(tmp_path):
    p = tmp_path / "transfers.csv"
    pd.DataFrame({"id": [1, 2, 3, 4], "route_class": ["storage_read", "storage_write", "h2d", "storage_read"],
                  "op": ["file_read", "file_write", "h2d", "file_read"], "size": [4096.0, 8192.0, 1e6, 4096.0],
                  "t_start": [0.1, 0.2, 0.3, 5.0], "hw_s": [0.01, 0.02, 0.001, 0.01]}).to_csv(p, index=False)
    recs = hil_diag.records_from_transfers(p, window_s=1.0)
    assert [(r["id"], r["op"], r["node"]) for r in recs] == [(1, "file_read", 1), (2, "file_write", 0)]
    assert all(r["max_rate"] == np.inf and r["gpu"] is None for r in recs)
    a = [{"id": 1, "op": "file_read", "hw_s": 1.0}, {"id": 2, "op": "file_read", "hw_s": 2.0},
         {"id": 9, "op": "file_write", "hw_s": 5.0}]
    b = [{"id": 1, "op": "file_read", "hw_s": 1.5}, {"id": 2, "op": "file_read", "hw_s": 2.0}]
    d = hil_diag.paired_reads(a, b)
    assert d["n"] == 2 and d["median_ratio"] == pytest.approx(1.25) and d["sum_ratio"] == pytest.approx(3.5 / 3.0)
