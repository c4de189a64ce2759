"""`dpsim report`: grouped by every varying key, never averaging different configs; replicates over a
seed aggregated with their interval; Markdown tables; figures for one or many points.  The sweep
directories are written by hand (known values, no simulation)."""
import json

from dpsim.report import main, make_report, max_aps_within_slo, varying_keys


def _job(d, n, overrides, **summ):
    j = d / str(n)
    j.mkdir(parents=True)
    base = {"mode": "offline", "system": "dualpath", "model": "ds27b", "agents": 64, "prefill_nodes": 1,
            "decode_nodes": 1, "status": "complete", "snic_read_bytes_prefill_nodes": 2e9,
            "snic_read_bytes_decode_nodes": 1e9, "requests_completed": 10, "requests_total": 10}
    base.update(summ)
    base["overrides"] = overrides
    (j / "summary.json").write_text(json.dumps(base))


def _failed(d, n, overrides, error):
    j = d / str(n)
    j.mkdir(parents=True)
    (j / "error.json").write_text(json.dumps({"error": error, "overrides": overrides, "status": "failed"}))


def test_two_configs_are_two_rows_not_their_mean(tmp_path):
    """The issue's case: cluster.prefill_nodes=1,2 gave JCTs 771 and 751.8 and one row of 761.4."""
    d = tmp_path / "sweep"
    _job(d, 0, {"cluster.prefill_nodes": "1"}, prefill_nodes=1, jct_s=771.0)
    _job(d, 1, {"cluster.prefill_nodes": "2"}, prefill_nodes=2, jct_s=751.8)
    _failed(d, 2, {"cluster.prefill_nodes": "0"}, "ConfigError: cluster.prefill_nodes=0 must be >= 1")
    assert main([str(d)]) == 0
    md = (d / "report.md").read_text()
    assert "| prefill_nodes | agents | JCT mean (s) | 95% CI lo | 95% CI hi | min | max | n |" in md
    assert "| 1 | 64 | 771 | - | - | 771 | 771 | 1 |" in md  # one run: no interval
    assert "| 2 | 64 | 751.8 | - | - | 751.8 | 751.8 | 1 |" in md
    assert "Replicates: none (one run per config, so no interval" in md
    assert "761.4" not in md and "64.0" not in md and "```" not in md
    assert "| 2 | failed | ConfigError: cluster.prefill_nodes=0 must be >= 1 |" in md
    for f in ("jct_vs_agents.png", "snic_by_role.png"):
        assert (d / f).stat().st_size > 0


def test_replicates_over_seed_are_the_only_aggregate(tmp_path):
    d = tmp_path / "sweep"
    n = 0
    for system, jcts in (("basic", (100.0, 110.0, 120.0)), ("dualpath", (80.0, 90.0, 85.0))):
        for agents in (64, 128):
            for seed, j in enumerate(jcts):
                _job(d, n, {"system": system, "workload.agents": str(agents), "seed": str(seed)},
                     system=system, agents=agents, jct_s=j * agents / 64)
                n += 1
    make_report(d)
    md = (d / "report.md").read_text()
    assert "Replicates: over `seed`: per group the mean, its 95% CI (Student t over seeds)" in md
    # mean +- t(0.975, 2) * s / sqrt(3): s = 10 -> 110 +- 24.84; s = 20 -> 220 +- 49.69; s = 5 -> 85 +- 12.42
    assert "| basic | 64 | 110 | 85.16 | 134.8 | 100 | 120 | 3 |" in md
    assert "| basic | 128 | 220 | 170.3 | 269.7 | 200 | 240 | 3 |" in md
    assert "| dualpath | 64 | 85 | 72.58 | 97.42 | 80 | 90 | 3 |" in md


def test_truncated_runs_are_left_out_and_listed(tmp_path):
    d = tmp_path / "sweep"
    _job(d, 0, {"system": "basic"}, system="basic", jct_s=100.0)
    _job(d, 1, {"system": "dualpath"}, system="dualpath", jct_s=1.0, status="truncated", requests_completed=3)
    make_report(d)
    md = (d / "report.md").read_text()
    assert "| 1 | truncated | truncated: 3/10 requests |" in md
    assert "| 1 | 64 |" not in md and "1 left out" in md


def test_varying_keys_and_capacity():
    import pandas as pd
    on = pd.DataFrame({"override.system": ["basic"] * 3 + ["dualpath"] * 3, "system": ["basic"] * 3 + ["dualpath"] * 3,
                       "override.workload.aps": ["0.1", "0.2", "0.4"] * 2, "aps": [0.1, 0.2, 0.4] * 2,
                       "slo_met": [True, True, False, True, True, True], "model": ["ds27b"] * 6,
                       "override.seed": ["0"] * 6})
    assert varying_keys(on) == ["system", "aps"]
    assert max_aps_within_slo(on, ["system"]) == [["basic", 0.2, 3], ["dualpath", 0.4, 3]]


def test_online_capacity_table(tmp_path):
    d = tmp_path / "sweep"
    n = 0
    for system, met in (("basic", (True, False)), ("dualpath", (True, True))):
        for aps, ok in zip((0.1, 0.2), met):
            _job(d, n, {"system": system, "workload.aps": str(aps)}, mode="online", system=system, aps=aps,
                 slo_met=ok, jct_s=50.0)
            n += 1
    files = make_report(d)
    assert "capacity.png" in files and "jct_vs_agents.png" not in files
    md = (d / "report.md").read_text()
    assert "| basic | 0.1 | 2 |" in md and "| dualpath | 0.2 | 2 |" in md


def test_online_capacity_per_seed_then_interval(tmp_path):
    """With replicates, each seed's capacity is read off its own runs (not the max over all seeds'
    runs), then averaged with its interval."""
    d = tmp_path / "sweep"
    n = 0
    # seed 0 meets the SLO up to 0.2, seed 1 up to 0.4, seed 2 up to 0.3 (APS 0.1 .. 0.5)
    for seed, cap in ((0, 0.2), (1, 0.4), (2, 0.3)):
        for aps in (0.1, 0.2, 0.3, 0.4, 0.5):
            _job(d, n, {"system": "dualpath", "workload.aps": str(aps), "seed": str(seed)}, mode="online",
                 aps=aps, slo_met=aps <= cap + 1e-9, jct_s=50.0, seed=seed)
            n += 1
    make_report(d)
    md = (d / "report.md").read_text()
    # mean 0.3, s = 0.1: 0.3 +- 4.3027 * 0.1 / sqrt(3) = 0.3 +- 0.2484
    assert "| max APS within SLO, mean | 95% CI lo | 95% CI hi | min | max | seeds | runs |" in md
    assert "| 0.3 | 0.05159 | 0.5484 | 0.2 | 0.4 | 3 | 15 |" in md
