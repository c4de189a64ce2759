"""experiments/ and dpsim/conf/figure/: every figure's runs compose into valid configs; a small
figure runs end to end through `dpsim -m +figure=...` and draws its figure from the sweep table;
the capacity search brackets and bisects."""
import json
import math
import subprocess
import sys

import pandas as pd
import pytest
from helpers import make_cfg

from dpsim.config import validate
from dpsim.figures import capacity_table, names, runs_for, table
from dpsim.sweep import CapacitySearch, expand_grids

FIGURES = names()


def test_figures_are_the_papers():
    assert FIGURES == sorted(["headline", "offline_grid", "pd_ratio", "scaling", "ablation", "balance", "online",
                              "large_scale", "large_scale_online", "capacity"])


@pytest.mark.parametrize("name", FIGURES)
@pytest.mark.parametrize("scale", ["small", "paper"])
def test_every_run_composes(name, scale):
    runs = runs_for(name, scale)
    assert runs
    if len(runs) > 8:  # composing is ~0.15 s a run: check a spread sample of big sweeps
        runs = runs[::len(runs) // 6] + [runs[-1]]
    fig = f"+figure={name if scale == 'paper' else name + '_small'}"
    for r in runs:
        cfg = make_cfg(fig, *r, *(["workload.aps=0.3"] if name == "capacity" else []))
        validate(cfg)
        assert cfg["figure"]["scale"] == scale and cfg["figure"]["name"] == name
        assert cfg["workload"]["n_trajectories"] == (64 if scale == "small" else 500)


def test_offline_grid_is_the_papers_grid():
    """§S8's agent counts per model and MAL, each model on its §S9 default P/D; every config once
    per seed (3 at paper scale)."""
    runs = runs_for("offline_grid", "paper")
    configs = {tuple(o for o in r if not o.startswith("seed=")) for r in runs}
    assert len(configs) == 2 * 3 * 4 * 3 + 2 * 3 * 3 + 3 * 3
    assert len(runs) == 3 * len(configs) and {o for r in runs for o in r if o.startswith("seed=")} == {
        "seed=0", "seed=1", "seed=2"}
    q64 = sorted({int(dict(o.split("=", 1) for o in r)["workload.agents"]) for r in runs
                  if "model=qwen32b" in r and "workload.mal=64k" in r})
    assert q64 == [32, 64, 128]
    pd_ = {m: make_cfg("+figure=offline_grid", f"model={m}")["cluster"] for m in ("ds660b", "ds27b", "qwen32b")}
    assert {m: (c["prefill_nodes"], c["decode_nodes"]) for m, c in pd_.items()} == {
        "ds660b": (2, 4), "ds27b": (1, 1), "qwen32b": (1, 2)}


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_replicates_over_seeds(name):
    """#11: a figure runs each config at 3 seeds (paper) or 2 (small); seed= on the command line
    replaces them."""
    for scale, want in (("paper", {"0", "1", "2"}), ("small", {"0", "1"})):
        runs = runs_for(name, scale)
        seeds = [dict(o.split("=", 1) for o in r).get("seed") for r in runs]
        assert set(seeds) == want and len(runs) == len(want) * len({tuple(o for o in r if not o.startswith("seed="))
                                                                      for r in runs})
    one = runs_for(name, "small", ["seed=7"])
    assert {dict(o.split("=", 1) for o in r)["seed"] for r in one} == {"7"} and len(one) == len(runs_for(name, "small")) // 2


def test_grids_union_and_command_line():
    grids = [{"model": "a,b", "x": "1,2"}, {"model": "c", "x": "3"}, {"model": "a", "x": "1"}]
    assert expand_grids(grids) == [["model=a", "x=1"], ["model=a", "x=2"], ["model=b", "x=1"], ["model=b", "x=2"],
                                   ["model=c", "x=3"]]
    assert expand_grids(grids, ["x=9", "s=p,q"])[:2] == [["model=a", "x=9", "s=p"], ["model=a", "x=9", "s=q"]]


def test_small_figure_end_to_end(tmp_path):
    d = tmp_path / "balance"
    p = subprocess.run([sys.executable, "experiments/run.py", "balance", "--scale", "small", "--out", str(d)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    df = pd.read_parquet(d / "sweep.parquet")
    assert (df.status == "ok").all() and set(df.system) == {"round_robin", "dualpath"}
    assert (df.requests_completed == df.requests_total).all() and set(df.decode_nodes) == {2}
    assert sorted(df.seed.astype(int)) == [0, 0, 1, 1]  # 2 seeds at small scale; summary.json names them
    assert sorted(df["seeds.workload"].astype(int)) == [0, 0, 1, 1]
    for f in ("sweep.csv", "balance.png", "balance_summary.csv"):
        assert (d / f).stat().st_size > 0
    summ = pd.read_csv(d / "balance_summary.csv").set_index("system")
    from dpsim.analysis.stats import mean_ci
    for s in ("round_robin", "dualpath"):  # the figure's numbers: the mean of the runs' own, and its interval
        jcts = df[df.system == s].jct_s.astype(float)
        assert jcts.nunique() == 2  # the seeds give different workloads
        iv = mean_ci(jcts)
        assert summ.loc[s, "jct_s"] == pytest.approx(iv.mean, rel=1e-12) and summ.loc[s, "n_seeds"] == 2
        assert summ.loc[s, "jct_s_ci_lo"] == pytest.approx(iv.lo, rel=1e-12)
        assert summ.loc[s, "jct_s_ci_hi"] == pytest.approx(iv.hi, rel=1e-12)
        assert iv.lo < iv.mean < iv.hi
    # a run of the figure is the run of its overrides
    job = json.loads((d / "0" / "summary.json").read_text())
    ov = dict(o.split("=", 1) for o in runs_for("balance", "small")[0])
    assert job["system"] == ov["system"] and job["model"] == ov["model"] == "ds27b"
    # dpsim report redraws the figure from the same table
    from dpsim.report import make_report
    files = make_report(d, tmp_path / "rep")
    assert "balance.png" in files and "balance_summary.csv" in files
    assert pd.read_csv(tmp_path / "rep" / "balance_summary.csv").equals(pd.read_csv(d / "balance_summary.csv"))


def test_capacity_sweeper_end_to_end(tmp_path):
    """One search (the grids' model and MAL replaced on the command line, one system), two probes:
    the sweep table's max APS within SLO is the search's own bracket end."""
    d = tmp_path / "cap"
    p = subprocess.run([sys.executable, "-m", "dpsim", "-m", "+figure=capacity_small", "model=ds27b",
                        "workload.mal=32k", "system=dualpath", "seed=0", "hydra.sweeper.max_runs=2",
                        "hydra.sweeper.start.ds27b=0.2", f"hydra.sweep.dir={d}"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    (search,) = json.loads((d / "capacity_searches.json").read_text())
    df = pd.read_parquet(d / "sweep.parquet")
    assert search["runs"] == len(df) == 2 and (df.status == "ok").all()
    assert sorted(df.aps.astype(float)) == sorted([0.2, 0.4 if df.slo_met.iloc[0] else 0.1])
    cap = pd.read_csv(d / "capacity_summary.csv")
    assert len(cap) == 1 and cap.max_aps_within_slo.iloc[0] == search["max_aps_within_slo"]
    met = df[df.slo_met.astype(bool)]
    assert search["max_aps_within_slo"] == (float(met.aps.max()) if len(met) else 0.0)


def test_unknown_figure():
    with pytest.raises(ValueError, match="unknown figure"):
        runs_for("nope", "small")


# ------------------------------------------------------------------ capacity search
def _search(threshold, start=0.4, tol=0.05, max_runs=16, fail_at=None):
    s, probes = CapacitySearch(start, tol, max_runs, 1e-3), []
    while s.next() is not None:
        aps = s.next()
        probes.append(aps)
        s.record(aps, None if aps == fail_at else aps <= threshold, "boom" if aps == fail_at else "")
    return s, probes


@pytest.mark.parametrize("threshold,start", [(0.37, 0.4), (1.9, 0.4), (0.05, 0.4), (0.4, 0.4)])
def test_capacity_search_brackets_and_bisects(threshold, start):
    s, probes = _search(threshold, start)
    summ = s.summary()
    assert summ["converged"]
    assert summ["max_aps_within_slo"] <= threshold < summ["min_aps_violating"]
    assert summ["min_aps_violating"] / summ["max_aps_within_slo"] <= 1.05
    assert summ["runs"] == len(probes) <= 16
    assert probes[0] == start


def test_capacity_search_reports_errors_and_never_met():
    s, probes = _search(1.0, fail_at=0.4)
    assert s.summary()["error"] == "boom" and s.summary()["max_aps_within_slo"] == 0.0 and len(probes) == 1
    s, probes = _search(-1.0, max_runs=40)
    assert s.summary()["max_aps_within_slo"] == 0.0 and not s.converged and probes[-1] / 2 < 1e-3


def test_capacity_table_uses_the_one_max_aps():
    rows = [dict(model=m, system=sy, aps=a, slo_met=a <= cap, status="ok", error="", jct_s=1.0)
            for m, sy, cap in (("ds27b", "basic", 0.3), ("ds27b", "dualpath", 0.6)) for a in (0.2, 0.4, 0.8)]
    cap = capacity_table(table(pd.DataFrame(rows))).set_index("system")
    assert cap.loc["basic", "max_aps_within_slo"] == 0.2 and cap.loc["basic", "min_aps_violating"] == 0.4
    assert cap.loc["dualpath", "max_aps_within_slo"] == 0.4 and cap.loc["dualpath", "min_aps_violating"] == 0.8
    assert cap.loc["basic", "dualpath/basic"] == 2.0 and cap.loc["basic", "runs"] == 3
    assert cap.loc["basic", "n_seeds"] == 1 and math.isnan(cap.loc["basic", "max_aps_within_slo_ci_lo"])
    assert math.isnan(capacity_table(table(pd.DataFrame(rows[:1]))).min_aps_violating.iloc[0])


def test_single_aps_capacity_of_zero_is_labelled_as_a_bound():
    """One APS per system (the large_scale_online figure): a system that missed the SLO there has
    max APS 0, which the figure must label as "< that APS", not show as a capacity of zero."""
    from dpsim.figures import none_met_lines
    rows = [dict(model="ds660b", system=sy, aps=6.6, slo_met=ok, status="ok", error="", jct_s=1.0)
            for sy, ok in (("basic", False), ("dualpath", True))]
    cap = capacity_table(table(pd.DataFrame(rows)))
    lines = none_met_lines(cap.assign(config="ds660b"))
    assert lines == ["ds660b basic: no APS tried met the SLO (capacity < 6.6 APS)"]
    assert none_met_lines(cap[cap.system == "dualpath"].assign(config="x")) == []


def test_capacity_table_per_seed_with_interval():
    """Each seed's capacity comes from its own runs; the table averages them with a t interval,
    and Dualpath/Basic is paired per seed."""
    caps = {("basic", 0): 0.2, ("basic", 1): 0.4, ("dualpath", 0): 0.4, ("dualpath", 1): 0.4}
    rows = [dict(model="ds27b", system=sy, aps=a, slo_met=a <= caps[sy, seed], status="ok", error="", jct_s=1.0,
                 seed=seed, **{"override.seed": str(seed)})
            for sy in ("basic", "dualpath") for seed in (0, 1) for a in (0.2, 0.4, 0.8)]
    cap = capacity_table(table(pd.DataFrame(rows))).set_index("system")
    half = 12.706204736172367 * 0.1  # t(0.975, 1) * s / sqrt(2) with s = sqrt(2) * 0.1
    assert cap.loc["basic", "max_aps_within_slo"] == pytest.approx(0.3)
    assert cap.loc["basic", "max_aps_within_slo_ci_lo"] == pytest.approx(0.3 - half)
    assert cap.loc["basic", "max_aps_within_slo_ci_hi"] == pytest.approx(0.3 + half)
    assert cap.loc["dualpath", "max_aps_within_slo"] == pytest.approx(0.4)
    assert cap.loc["dualpath", "max_aps_within_slo_ci_lo"] == pytest.approx(0.4)  # no spread: a zero-width interval
    assert cap.loc["basic", "n_seeds"] == 2 and cap.loc["basic", "runs"] == 6
    assert cap.loc["basic", "min_aps_violating"] == pytest.approx((0.4 + 0.8) / 2)
    assert cap.loc["basic", "dualpath/basic"] == pytest.approx((2.0 + 1.0) / 2)  # per seed: 0.4/0.2, 0.4/0.4
