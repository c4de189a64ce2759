"""#11 item 1, seeds and replicates: the top-level ``seed`` drives every random choice unless a
sub-seed pins it, summary.json names the seeds used, the same config and seed give byte-identical
outputs, and replicate intervals are the Student t interval over seeds."""
import json
import math

import pytest

from dpsim.analysis.stats import mean_ci, t_quantile
from dpsim.runner import effective_seeds, run

from helpers import make_cfg

TABLES = ("requests.parquet", "trajectories.parquet")


def _cfg(*extra):
    # the default workload (bundled: 19 recorded trajectories + sampled extra agents), small
    return make_cfg("workload.agents=28", "cluster.gpus_per_node=2", "output.plots=false", *extra)


def _run(tmp_path, name, *extra):
    d = tmp_path / name
    summ, _ = run(_cfg(*extra), out_dir=d)
    return summ, d, json.loads((d / "summary.json").read_text())


def _same_tables(a, b) -> bool:
    return all((a / t).read_bytes() == (b / t).read_bytes() for t in TABLES)


def test_two_seeds_give_different_offline_outputs_and_one_seed_identical_ones(tmp_path):
    s1, d1, j1 = _run(tmp_path, "s1", "seed=1")
    s2, d2, j2 = _run(tmp_path, "s2", "seed=2")
    s1b, d1b, _ = _run(tmp_path, "s1b", "seed=1")
    assert not _same_tables(d1, d2)
    assert s1["jct_s"] != s2["jct_s"]
    assert _same_tables(d1, d1b) and s1["jct_s"] == s1b["jct_s"]  # byte-identical for the same seed
    assert (j1["seed"], j1["seeds"]) == (1, {"workload": 1})
    assert (j2["seed"], j2["seeds"]) == (2, {"workload": 2})


def test_the_printed_summary_names_the_seed_and_how_to_get_an_interval(tmp_path):
    from dpsim.runner import format_summary
    s, _, _ = _run(tmp_path, "s7", "seed=7")
    line = [l for l in format_summary(s).splitlines() if l.strip().startswith("seed ")]
    assert len(line) == 1 and " 7 (one replicate" in line[0] and "seed=0,1,2" in line[0]


def test_a_pinned_sub_seed_wins_and_seed_0_is_what_workload_seed_0_was(tmp_path):
    """workload.seed=0 pins the workload: offline, the workload is the only random choice, so
    seed=5 with it pinned is the seed-0 run (and summary.json says which seed did what)."""
    _, d0, j0 = _run(tmp_path, "default")
    _, dp, jp = _run(tmp_path, "pinned", "seed=5", "workload.seed=0")
    _, d5, _ = _run(tmp_path, "five", "seed=5")
    assert _same_tables(d0, dp) and not _same_tables(d0, d5)
    assert (j0["seed"], j0["seeds"]) == (0, {"workload": 0})
    assert (jp["seed"], jp["seeds"]) == (5, {"workload": 0})


def test_synthetic_workload_follows_the_seed(tmp_path):
    ex = ("experiment=offline", "workload.mal=32k", "workload.n_trajectories=12", "workload.agents=12",
          "model=ds27b")
    _, da, _ = _run(tmp_path, "a", *ex, "seed=3")
    _, db, _ = _run(tmp_path, "b", *ex, "seed=4")
    assert not _same_tables(da, db)


def test_online_arrivals_follow_the_top_level_seed():
    """With the workload pinned, only the Poisson arrivals differ between seeds."""
    ex = ("experiment=online", "workload.aps=2.0", "workload.mal=32k", "workload.n_trajectories=8",
          "workload.agents=8", "workload.seed=0", "model=ds27b", "experiment.max_sim_s=60")
    c3, c4 = make_cfg(*ex, "seed=3"), make_cfg(*ex, "seed=4")
    assert effective_seeds(c3) == {"workload": 0, "arrivals": 3}
    (s3, sim3), (s4, sim4) = run(c3), run(c4)
    assert s3["seeds"] == {"workload": 0, "arrivals": 3} and s4["seeds"] == {"workload": 0, "arrivals": 4}
    starts = lambda sim: sorted(r.arrival for r in sim.requests if r.round == 0)  # noqa: E731
    assert starts(sim3) != starts(sim4)


def test_effective_seeds_derivation():
    assert effective_seeds(make_cfg()) == {"workload": 0}
    assert effective_seeds(make_cfg("seed=7")) == {"workload": 7}
    assert effective_seeds(make_cfg("seed=7", "workload.seed=2")) == {"workload": 2}
    assert make_cfg()["workload"]["seed"] is None  # null in the YAML: derived


def test_schema_takes_null_and_refuses_a_negative_sub_seed():
    from dpsim.conf.schema import SchemaError, check_group
    cfg = make_cfg()["workload"]
    check_group("workload", {**cfg, "seed": None})
    with pytest.raises(SchemaError, match=r"workload.seed=-1: must be >= 0"):
        check_group("workload", {**cfg, "seed": -1})


# ------------------------------------------------------------------ the interval
@pytest.mark.parametrize("nu,t", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622),
                                  (30, 2.0423), (120, 1.9799)])
def test_t_quantile_matches_the_tables(nu, t):
    assert t_quantile(0.95, nu) == pytest.approx(t, abs=1e-4)


def test_t_quantile_matches_scipy():
    st = pytest.importorskip("scipy.stats")
    for nu in (1, 2, 5, 11, 64):
        for level in (0.5, 0.9, 0.95, 0.99):
            assert t_quantile(level, nu) == pytest.approx(st.t.ppf(0.5 + level / 2, nu), rel=1e-9)


def test_mean_ci():
    iv = mean_ci([10.0, 12.0, 14.0])
    half = 4.302652729749752 * 2.0 / math.sqrt(3)  # t(0.975, 2) * s / sqrt(n), s = 2
    assert (iv.mean, iv.n, iv.min, iv.max) == (12.0, 3, 10.0, 14.0)
    assert iv.lo == pytest.approx(12.0 - half) and iv.hi == pytest.approx(12.0 + half)
    one = mean_ci([5.0, float("nan")])
    assert one.n == 1 and one.mean == 5.0 and math.isnan(one.lo) and "no interval" in one.fmt()
    same = mean_ci([3.0, 3.0])
    assert same.lo == same.hi == 3.0
    assert mean_ci([]).n == 0


# ------------------------------------------------------------------ figures draw the interval
SYS_JCT = {"basic": 200.0, "basic_layer": 190.0, "basic_layer_dpl": 120.0, "round_robin": 150.0, "dualpath": 100.0,
           "oracle": 90.0}


def _fake_sweep(name):
    """A figure's small sweep table written by hand: JCT = the system's base x (1 + seed / 10), so
    the mean over seeds 0 and 1 is base x 1.05 and Basic/DualPath is 2 for every seed."""
    import pandas as pd

    from dpsim.figures import runs_for
    rows = []
    for job in runs_for(name, "small"):
        ov = dict(o.split("=", 1) for o in job)
        seed = int(ov["seed"])
        for aps in ((0.1, 0.2, 0.4) if name in ("capacity", "online") else (None,)):
            if aps is not None and "workload.aps" in ov and aps != 0.1:
                continue
            o = dict(ov, **({"workload.aps": str(aps)} if aps is not None and "workload.aps" not in ov else {}))
            a = float(o.get("workload.aps", 0) or 0)
            jct = SYS_JCT[ov["system"]] * (1 + seed / 10)
            rows.append({"job": str(len(rows)), "status": "ok", "error": "", "run_status": "complete",
                         **{f"override.{k}": v for k, v in o.items()},
                         "mode": "online" if aps is not None else "offline", "system": ov["system"],
                         "model": ov.get("model", "ds660b"), "agents": int(ov.get("workload.agents", 64)),
                         "prefill_nodes": int(ov.get("cluster.prefill_nodes", 2)),
                         "decode_nodes": int(ov.get("cluster.decode_nodes", 4)), "jct_s": jct,
                         "snic_balance_max_over_avg": 1.0 + seed / 10, "attention_balance_max_over_avg": 1.5,
                         "aps": a, "slo_met": a <= (0.2 if ov["system"] == "basic" else 0.4) * (1 + seed),
                         "ttft_breakdown_s.scheduling": 0.1, "ttft_breakdown_s.allocation": 0.1,
                         "ttft_breakdown_s.reading": 0.2, "ttft_breakdown_s.prefill": 0.5,
                         "seed": seed, "seeds.workload": seed})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("name", ["headline", "offline_grid", "pd_ratio", "scaling", "ablation", "balance",
                                  "large_scale", "online", "capacity"])
def test_every_figure_reports_mean_and_interval_over_seeds(name, tmp_path):
    import pandas as pd

    from dpsim.figures import PLOTS, table
    t = PLOTS[name](table(_fake_sweep(name)), tmp_path / f"{name}.png")
    assert (tmp_path / f"{name}.png").stat().st_size > 0
    t = pd.DataFrame(t)
    assert (t["n_seeds"] == 2).all()
    lo_cols = [c for c in t.columns if c.endswith("_ci_lo")]
    assert lo_cols
    for c in lo_cols:
        m, hi = c[:-len("_ci_lo")], c[:-len("_ci_lo")] + "_ci_hi"
        assert ((t[c] <= t[m] + 1e-12) & (t[m] <= t[hi] + 1e-12)).all(), c
    half = 12.706204736172367 * 0.05  # t(0.975, 1) * s / sqrt(2); seeds 0, 1: values x1.0, x1.1 -> s / sqrt 2 = 0.05 x
    if name == "headline":
        r = t.iloc[0]
        assert r["basic_jct_s"] == pytest.approx(210.0) and r["dualpath_jct_s"] == pytest.approx(105.0)
        assert r["basic_jct_s_ci_lo"] == pytest.approx(210.0 - 200 * half)
        assert r["dualpath/basic JCT"] == pytest.approx(0.5) and r["dualpath/basic JCT_ci_lo"] == pytest.approx(0.5)
    if name in ("offline_grid", "pd_ratio", "large_scale", "scaling"):
        assert t["basic/dualpath"].to_numpy() == pytest.approx(2.0)  # paired per seed
        assert t["basic"].to_numpy() == pytest.approx(210.0)
    if name == "ablation":
        assert t["basic_layer_dpl/basic_layer"].iloc[0] == pytest.approx(120 / 190)
    if name == "capacity":  # probes 0.1, 0.2, 0.4: basic meets 0.2 at seed 0 and 0.4 at seed 1; dualpath 0.4 at both
        c = t.set_index(["model", "workload.mal", "system"]) if "workload.mal" in t else t.set_index(["model", "system"])
        b = c.xs("basic", level="system")["max_aps_within_slo"]
        assert b.to_numpy() == pytest.approx(0.3)
        assert c.xs("dualpath", level="system")["max_aps_within_slo_ci_lo"].to_numpy() == pytest.approx(0.4)
