"""experiments/paper.py (every paper experiment, resumable, in parallel) and the balance time
series (dpsim.metrics.balance): the plan's runs, resuming, the deadline, intervals of the
collected tables, and the balance series in closed form and on a real run."""
import json
import math
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import make_cfg

from dpsim.analysis.stats import mean_ci, t_quantile
from dpsim.metrics.balance import attention_balance_series, forward_start_times, snic_balance_series
from experiments import paper


def _kv(run):
    return dict(o.split("=", 1) for o in run.overrides)


# ------------------------------------------------------------------ plan
def test_plan_ablation_paper_runs_and_seeds(tmp_path):
    """§S9 ablation at 1024 and 2048 agents (#11): 2 agent counts x 5 steps x seeds 0,1,2, each in
    its own directory, the bigger runs first."""
    runs = paper.plan(["ablation"], "paper", tmp_path, "0,1,2")
    assert len(runs) == 2 * 5 * 3
    kv = [_kv(r) for r in runs]
    assert {k["workload.agents"] for k in kv} == {"1024", "2048"}
    assert {k["system"] for k in kv} == {"basic", "basic_layer", "basic_layer_dpl", "dualpath", "oracle"}
    for a in ("1024", "2048"):
        for s in ("basic", "oracle"):
            assert sorted(k["seed"] for k in kv if k["workload.agents"] == a and k["system"] == s) == ["0", "1", "2"]
    assert len({r.dir for r in runs}) == len(runs) and all(r.dir.parent == tmp_path / "ablation-paper" for r in runs)
    costs = [r.cost for r in runs]
    assert costs == sorted(costs, reverse=True)
    big, small = runs[0], runs[-1]
    assert _kv(big)["workload.agents"] == "2048" and _kv(small)["workload.agents"] == "1024"
    # requests ~ agents x (§S8 mean turns of 64K + 1): 2048 x 158
    assert big.cost == pytest.approx(2048 * (157 + 1)) and small.cost == pytest.approx(1024 * 158)


def test_plan_pd_ratio_is_the_full_sweep(tmp_path):
    runs = paper.plan(["pd_ratio"], "paper", tmp_path, "0,1")
    kv = [_kv(r) for r in runs]
    assert len(runs) == 3 * 3 * 3 * 2 * 2
    assert {(k["cluster.prefill_nodes"], k["cluster.decode_nodes"]) for k in kv} == {("1", "1"), ("2", "1"), ("1", "2")}
    assert {k["workload.mal"] for k in kv} == {"32k", "48k", "64k"}
    assert {k["workload.agents"] for k in kv} == {"512", "1024", "2048"} and {k["model"] for k in kv} == {"ds27b"}


def test_paper_setups_compose_as_the_spec_says():
    """balance: three nodes (DS 27B 1P2D), 48K, 1024 agents; large scale 48P96D 48K 49,152 agents;
    scaling at 1024 agents with Oracle; 44P88D online."""
    b = make_cfg("+figure=balance", "model=ds27b", "cluster.prefill_nodes=1", "cluster.decode_nodes=2")
    assert b["workload"]["mal"] == "48k" and b["workload"]["agents"] == 1024
    assert b["cluster"]["prefill_nodes"] + b["cluster"]["decode_nodes"] == 3
    ls = paper.plan(["large_scale"], "paper", __import__("pathlib").Path("/nonexistent"), "0")
    assert {(_kv(r)["cluster.prefill_nodes"], _kv(r)["cluster.decode_nodes"]) for r in ls} == {("48", "96")}
    c = make_cfg("+figure=large_scale", "model=ds660b")
    assert c["workload"]["mal"] == "48k" and c["workload"]["agents"] == 49152
    sc = paper.plan(["scaling"], "paper", __import__("pathlib").Path("/nonexistent"), "0")
    assert {_kv(r)["system"] for r in sc} == {"basic", "dualpath", "oracle"}
    assert make_cfg("+figure=scaling", "model=ds660b")["workload"]["agents"] == 1024
    on = paper.plan(["large_scale_online"], "paper", __import__("pathlib").Path("/nonexistent"), "0")
    assert {(_kv(r)["cluster.prefill_nodes"], _kv(r)["cluster.decode_nodes"]) for r in on} == {("44", "88")}


def test_cost_estimate_scaling_and_online():
    base = {"mode": "offline", "agents": 100, "mal": "32k", "append_scale": 1.0, "gen_scale": 1.0}
    assert paper.estimate(base) == pytest.approx(100 * 61)
    # x2 append and generation: every turn twice as long -> half the turns fit the MAL
    assert paper.estimate({**base, "append_scale": 2.0, "gen_scale": 2.0}) == pytest.approx(100 * (30 + 1))
    on = {"mode": "online", "aps": 0.5, "mal": "64k", "max_sim_s": 1000.0}
    assert paper.estimate(on) == pytest.approx(0.5 * 1000 * 158)
    assert paper.estimate(on, search=True) == pytest.approx(paper.PROBES_PER_SEARCH * 0.5 * 1000 * 158)


def test_run_names_are_stable_and_safe():
    a = paper.run_name(["system=basic", "seed=0", "workload.mal=64k"])
    assert a == paper.run_name(["workload.mal=64k", "seed=0", "system=basic"])
    assert a != paper.run_name(["system=basic", "seed=1", "workload.mal=64k"])
    assert "=" not in a and "," not in a


# ------------------------------------------------------------------ resume and deadline
def _fake(runs, monkeypatch, fail=()):
    """Each run's command writes its summary.json (or an error.json when its seed is in ``fail``)."""
    def command(self):
        bad = _kv(self).get("seed") in fail
        name, body = ("error.json", {"error": "boom", "status": "failed"}) if bad else ("summary.json", {"jct_s": 1.0})
        code = (f"import json,pathlib,sys; pathlib.Path({str(self.dir)!r}, {name!r}).write_text(json.dumps({body!r}));"
                f"sys.exit({1 if bad else 0})")
        return [sys.executable, "-c", code]
    monkeypatch.setattr(paper.Run, "command", command)


def test_resume_skips_done_runs(tmp_path, monkeypatch):
    runs = paper.plan(["balance"], "small", tmp_path, "0,1")
    assert len(runs) == 2 * 2
    _fake(runs, monkeypatch)
    runs[1].dir.mkdir(parents=True)
    (runs[1].dir / "summary.json").write_text("{}")
    c = paper.execute(runs, jobs=2, poll_s=0.01)
    assert c == {"skipped": 1, "started": 3, "ok": 3, "failed": 0, "left": 0}
    assert all(r.done for r in runs) and (runs[1].dir / "summary.json").read_text() == "{}"  # not run again
    again = paper.plan(["balance"], "small", tmp_path, "0,1")  # a fresh plan finds them done
    assert paper.execute(again, jobs=2, poll_s=0.01) == {"skipped": 4, "started": 0, "ok": 0, "failed": 0, "left": 0}


def test_interrupted_runs_run_again_and_are_not_collected(tmp_path, monkeypatch):
    """A SIGINT'd run leaves a partial summary ("status": "interrupted"): not done, so the next
    execute runs it again, and --collect's table leaves it out until then."""
    runs = paper.plan(["balance"], "small", tmp_path, "0,1")
    runs[0].dir.mkdir(parents=True)
    (runs[0].dir / "summary.json").write_text(json.dumps({"status": "interrupted", "jct_s": 5.0}))
    runs[1].dir.mkdir(parents=True)
    (runs[1].dir / "summary.json").write_text(json.dumps({"status": "complete", "jct_s": 1.0}))
    assert (runs[0].done, runs[0].interrupted, runs[0].failed) == (False, True, False)
    assert (runs[1].done, runs[1].interrupted) == (True, False)
    collected = []
    monkeypatch.setattr(paper, "_collect_some", lambda d, names: collected.append(set(names)) or pd.DataFrame())
    paper.sweep_table(runs[:2])
    assert collected == [{runs[1].dir.name}]
    _fake(runs, monkeypatch)
    c = paper.execute(runs, jobs=2, poll_s=0.01)
    assert c["skipped"] == 1 and c["started"] == 3 and runs[0].done  # rerun, its summary replaced


def test_a_search_killed_half_way_restarts_clean(tmp_path, monkeypatch):
    """A capacity search without its capacity_searches.json is not done; when it runs again its
    old probe folders are removed first (--collect reads every probe folder of a search)."""
    runs = [r for r in paper.plan(["capacity"], "small", tmp_path, "0") if r.search][:1]
    assert runs and not runs[0].done
    stale = runs[0].dir / "probe-old"
    stale.mkdir(parents=True)
    (stale / "summary.json").write_text("{}")

    def command(self):
        code = f"import pathlib; pathlib.Path({str(self.dir)!r}, 'capacity_searches.json').write_text('[]')"
        return [sys.executable, "-c", code]
    monkeypatch.setattr(paper.Run, "command", command)
    assert paper.execute(runs, jobs=1, poll_s=0.01)["ok"] == 1
    assert runs[0].done and not stale.exists()


def test_failed_runs_skipped_unless_retried_and_deadline(tmp_path, monkeypatch):
    runs = paper.plan(["balance"], "small", tmp_path, "0,1")
    _fake(runs, monkeypatch, fail=("1",))
    c = paper.execute(runs, jobs=1, poll_s=0.01)
    assert c["ok"] == 2 and c["failed"] == 2
    assert sum(r.failed for r in runs) == 2
    assert paper.execute(runs, jobs=1, poll_s=0.01)["started"] == 0
    assert paper.execute(runs, jobs=1, poll_s=0.01, retry_failed=True)["started"] == 2
    fresh = paper.plan(["headline"], "small", tmp_path, "0")
    c = paper.execute(fresh, jobs=1, deadline_s=0.0, poll_s=0.01)
    assert c["started"] == 0 and c["left"] == len(fresh) and not any(r.dir.exists() for r in fresh)


def test_bad_arguments_name_the_option(capsys):
    with pytest.raises(SystemExit):
        paper.main(["nope", "--plan"])
    assert "unknown figure" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        paper.main(["balance", "--seeds", "a,b", "--plan"])
    assert "--seeds" in capsys.readouterr().err


# ------------------------------------------------------------------ collect
def test_collect_intervals_on_a_synthetic_sweep(tmp_path):
    """Runs written by hand (JCT = base + 10 x seed): the tidy table's mean and interval are the
    Student t interval over the 3 seeds, per system, never pooled across systems."""
    runs = paper.plan(["headline"], "small", tmp_path / "runs", "0,1,2")
    base = {"basic": 300.0, "dualpath": 200.0, "oracle": 150.0}
    for r in runs:
        kv = _kv(r)
        r.dir.mkdir(parents=True)
        (r.dir / "summary.json").write_text(json.dumps({
            "jct_s": base[kv["system"]] + 10 * int(kv["seed"]), "system": kv["system"], "model": kv["model"],
            "mode": "offline", "seed": int(kv["seed"]), "overrides": kv}))
    files = paper.collect_figure("headline", "small", runs, tmp_path / "res")
    assert {"headline.png", "headline_summary.csv", "headline_tidy.csv", "headline.csv"} <= set(files)
    t = pd.read_csv(tmp_path / "res" / "headline_tidy.csv")
    j = t[t.metric == "jct_s"].set_index("system")
    half = t_quantile(0.95, 2) * 10.0 / math.sqrt(3)  # s = 10 over seeds 0, 1, 2
    for s, b in base.items():
        assert j.loc[s, "mean"] == pytest.approx(b + 10)
        assert j.loc[s, "ci_low"] == pytest.approx(b + 10 - half) and j.loc[s, "ci_high"] == pytest.approx(b + 10 + half)
        assert j.loc[s, "n_seeds"] == 3
    r = t[t.metric == "dualpath/basic JCT"].iloc[0]  # paired per seed: 200/300, 210/310, 220/320
    iv = mean_ci([200 / 300, 210 / 310, 220 / 320])
    assert r["mean"] == pytest.approx(iv.mean) and r["ci_low"] == pytest.approx(iv.lo)
    assert len(pd.read_csv(tmp_path / "res" / "headline.csv")) == 9


# ------------------------------------------------------------------ balance series
def test_snic_balance_series_closed_form():
    t = [0.0, 1.0, 3.0, 3.0, 4.0]
    # cumulative bytes of 3 nodes: window 1: rates (3, 0, 0) -> 3; window 2: (2, 2, 2)/... ; 3-3 empty; 4: none
    b = np.array([[0, 0, 0], [3, 0, 0], [7, 4, 4], [7, 4, 4], [7, 4, 4]], dtype=float)
    s = snic_balance_series(t, b)
    assert list(s.time_s) == [1.0, 3.0, 4.0]  # the zero-length window is dropped
    assert list(s.window_s) == [1.0, 2.0, 1.0]
    assert s.max_over_avg.iloc[0] == pytest.approx(3.0) and s.max_over_avg.iloc[1] == pytest.approx(1.0)
    assert math.isnan(s.max_over_avg.iloc[2])  # no traffic: no ratio
    assert s.total_Bps.iloc[1] == pytest.approx(6.0)
    with pytest.raises(ValueError, match="cum_bytes"):
        snic_balance_series([0.0, 1.0], np.zeros((3, 2)))


def test_attention_balance_series_closed_form():
    # two groups; PE 0 and 1 in group a, PE 2 alone in group b
    attn = [[1.0, 2.0, 3.0], [3.0, 2.0], [5.0]]
    times = [0.5, 1.0, 1.5]
    counts = np.array([[1, 0, 1], [2, 1, 1], [3, 2, 1]])  # forward counts per PE at each sample
    assert list(forward_start_times(times, counts, 3, 0)) == [0.5, 1.0, 1.5]
    assert list(forward_start_times(times, counts, 2, 1)) == [1.0, 1.5]
    s = attention_balance_series({"a": [0, 1], "b": [2]}, attn, times, counts)
    a = s[s.group == "a"]
    assert list(a.forward) == [0, 1]  # the group's fewest forwards
    assert a.max_over_avg.iloc[0] == pytest.approx(3.0 / 2.0) and a.max_over_avg.iloc[1] == pytest.approx(1.0)
    assert list(a.time_s) == [1.0, 1.5]  # when the group's last PE started that forward
    b = s[s.group == "b"]
    assert list(b.max_over_avg) == [1.0] and list(b.time_s) == [0.5]
    none = attention_balance_series({"a": [0, 1]}, attn)
    assert none.time_s.isna().all() and len(none) == 2


def test_a_run_writes_balance_series_that_match_its_summary(tmp_path):
    """A real small run (DS 27B 1P2D): the series' means are the summary's balance numbers, three
    nodes' SNICs, times inside the run."""
    from dpsim.runner import run
    cfg = make_cfg("+figure=balance_small", "model=ds27b", "cluster.prefill_nodes=1", "cluster.decode_nodes=2",
                   "system=dualpath", "workload.agents=16", "workload.n_trajectories=16")
    summ, _sim = run(cfg, tmp_path)
    s = pd.read_parquet(tmp_path / "snic_balance.parquet")
    a = pd.read_parquet(tmp_path / "attention_balance.parquet")
    assert s.max_over_avg.dropna().between(1.0, 3.0 + 1e-9).all()  # 3 nodes: max/avg in [1, 3]
    assert s.max_over_avg.mean() == pytest.approx(summ["snic_balance_max_over_avg"], rel=1e-12)
    assert a.max_over_avg.mean() == pytest.approx(summ["attention_balance_max_over_avg"], rel=1e-12)
    assert len(a) and a.max_over_avg.between(1.0, 8.0 + 1e-9).all()  # 8 PEs in the prefill node's group
    assert a.time_s.notna().all() and (a.time_s <= summ["sim_time_s"] + 1e-9).all()
    assert a.time_s.is_monotonic_increasing


def test_balance_timeseries_bins_and_seed_interval(tmp_path):
    """Two seeds of one system: per time bin, each seed's mean max/avg, then mean and Student t
    interval over the seeds; another system is never pooled with it."""
    from dpsim.figures import balance_timeseries
    rows = []
    for sys_, seed, vals in (("dualpath", 0, (1.0, 3.0)), ("dualpath", 1, (2.0, 4.0)), ("round_robin", 0, (5.0, 5.0))):
        d = tmp_path / f"{sys_}{seed}"
        d.mkdir()
        # samples at 1 s and 9 s (2 bins over [0, 9]); seed 0 has a second sample (value + 2) at 2 s
        t = [1.0, 2.0, 9.0] if seed == 0 else [1.0, 9.0]
        v = [vals[0], vals[0] + 2.0, vals[1]] if seed == 0 else list(vals)
        pd.DataFrame({"time_s": t, "max_over_avg": v}).to_parquet(d / "snic_balance.parquet")
        rows.append({"system": sys_, "_rep": str(seed), "_run_dir": str(d), "error": "", "jct_s": 1.0})
    ts = balance_timeseries(pd.DataFrame(rows), bins=2)
    dp = ts[(ts.system == "dualpath") & (ts.metric == "snic_balance")].sort_values("t_lo_s")
    # bin 0: seed 0 mean (1 + 3) / 2 = 2, seed 1: 2 -> mean 2, zero spread; bin 1: seeds 3 and 4
    assert list(dp["mean"]) == pytest.approx([2.0, 3.5]) and list(dp.n_seeds) == [2, 2]
    iv = mean_ci([3.0, 4.0])
    assert dp.ci_low.iloc[1] == pytest.approx(iv.lo) and dp.ci_high.iloc[1] == pytest.approx(iv.hi)
    assert dp.ci_low.iloc[0] == pytest.approx(2.0)
    rr = ts[ts.system == "round_robin"]
    assert list(rr["mean"]) == pytest.approx([6.0, 5.0]) and list(rr.n_seeds) == [1, 1] and rr.ci_low.isna().all()
    assert dp.t_lo_s.iloc[0] == 0.0 and dp.t_hi_s.iloc[1] == pytest.approx(9.0)
