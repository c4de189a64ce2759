"""The `dpsim` command: default run, the architecture.md output contract, sweeps, errors."""
import json
import subprocess
import sys

import pandas as pd
import pytest

CONTRACT_KEYS = {"jct_s", "requests_completed", "requests_total", "prompt_tokens_per_s", "ttft_s",
                 "tpot_s", "ttst_s", "snic_read_bytes", "snic_balance_max_over_avg", "sim_wall_s",
                 "events"}


def dpsim(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dpsim.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_default_run_writes_everything(tmp_path):
    out = tmp_path / "default"
    p = dpsim(f"hydra.run.dir={out}")
    assert p.returncode == 0, p.stderr
    assert "JCT (s)" in p.stdout and str(out) in p.stdout
    s = json.loads((out / "summary.json").read_text())
    assert CONTRACT_KEYS <= set(s)
    for k in ("ttft_s", "tpot_s", "ttst_s"):
        assert set(s[k]) == {"mean", "p50", "p90", "p99"}
    assert s["requests_completed"] == s["requests_total"] > 0
    for f in ("requests.parquet", "trajectories.parquet", "links.parquet", "queues.parquet",
              "snic_utilisation.png", "ttft_cdf.png", "config.resolved.yaml"):
        assert (out / f).stat().st_size > 0, f
    req = pd.read_parquet(out / "requests.parquet")
    assert len(req) == s["requests_total"]
    assert {"ttft_s", "tpot_s", "ttst_s", "sched_wait_s", "alloc_wait_s", "read_s", "prefill_s"} <= set(req)
    links = pd.read_parquet(out / "links.parquet")
    assert {"snic_rx[0]", "snic_rx[1]", "cnic_rd[0]", "cnic_wr[1]"} <= set(links.series.astype(str))


def test_offline_contract_command(tmp_path):
    out = tmp_path / "offline"
    p = dpsim("experiment=offline", "model=ds660b", "cluster.prefill_nodes=2", "cluster.decode_nodes=4",
              "workload.mal=64k", "workload.agents=16", "workload.n_trajectories=16", "system=basic",
              f"hydra.run.dir={out}")
    assert p.returncode == 0, p.stderr
    s = json.loads((out / "summary.json").read_text())
    assert CONTRACT_KEYS <= set(s)
    assert s["system"] == "basic" and s["model"] == "ds660b"
    assert set(s["snic_read_bytes"]) == {str(i) for i in range(6)}


def test_online_contract_command(tmp_path):
    out = tmp_path / "online"
    p = dpsim("experiment=online", "model=ds27b", "workload.aps=0.1", "workload.agents=20",
              "workload.mal=32k", "experiment.max_sim_s=300", f"hydra.run.dir={out}")
    assert p.returncode == 0, p.stderr
    s = json.loads((out / "summary.json").read_text())
    assert "slo_met" in s and isinstance(s["slo_met"], bool)
    assert set(s["ttft_breakdown_s"]) == {"scheduling", "allocation", "reading", "prefill"}


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_multirun_collects_one_table(tmp_path, launcher):
    d = tmp_path / launcher
    args = ["-m", "system=pe_only,dualpath", "workload.agents=6,-1", f"hydra.sweep.dir={d}"]
    if launcher == "joblib":
        args += ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    p = dpsim(*args)
    assert p.returncode == 0, p.stderr
    t = pd.read_parquet(d / "sweep.parquet")
    assert len(t) == 4
    ok = t[t.status == "ok"]
    bad = t[t.status == "failed"]
    assert len(ok) == 2 and len(bad) == 2
    assert bad.error.str.contains("workload.agents").all()
    assert set(ok["override.system"]) == {"pe_only", "dualpath"}
    r = dpsim("report", str(d))
    assert r.returncode == 0, r.stderr
    for f in ("jct_vs_agents.png", "snic_by_role.png", "report.md"):
        assert (d / f).stat().st_size > 0
    assert "Failed runs" in (d / "report.md").read_text()


def test_basic_and_joblib_sweeps_agree(tmp_path):
    tables = []
    for launcher in ("basic", "joblib"):
        d = tmp_path / launcher
        args = ["-m", "system=pe_only,round_robin", "workload.agents=6", f"hydra.sweep.dir={d}"]
        if launcher == "joblib":
            args += ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
        assert dpsim(*args).returncode == 0
        t = pd.read_parquet(d / "sweep.parquet").sort_values("override.system")
        tables.append(t[["override.system", "jct_s", "requests_completed", "events"]].reset_index(drop=True))
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_bad_config_exits_with_one_clear_error(tmp_path):
    p = dpsim("cluster.prefill_nodes=0", f"hydra.run.dir={tmp_path / 'bad'}")
    assert p.returncode == 2
    assert "cluster.prefill_nodes" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "bad" / "summary.json").exists()


def test_unknown_system_is_a_hydra_error(tmp_path):
    p = dpsim("system=nonexistent", f"hydra.run.dir={tmp_path / 'x'}")
    assert p.returncode != 0
    assert "nonexistent" in p.stderr


def test_bound_subcommand():
    p = dpsim("bound", "--P", "2", "--D", "4")
    assert p.returncode == 0
    assert "0.1429 <= P/D <= 3.5" in p.stdout
    assert "inside" in p.stdout
