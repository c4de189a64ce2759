"""dpsim.analysis.sensitivity: tornado rows, per-seed ratios, range checks, the shape knob."""
from __future__ import annotations

import math

import pytest

from dpsim.analysis import sensitivity as S
from dpsim.analysis.stats import mean_ci

CELLS = {"ds": S.Cell("ds660b", 2, 4, "64k", 8), "qwen": S.Cell("qwen32b", 1, 2, "32k", 4)}
EFF = S.Assumption("eff", "efficiency", "cluster.eff", 0.4, 0.8, "test range")
NOOP = S.Assumption("noop", "no effect", "cluster.other", 1.0, 3.0, "test range")


def fake_cfg(cell, system, seed):
    return {"system": {"name": system}, "seed": seed, "cluster": {"eff": 0.6, "other": 2.0}}


def fake_runner(cfg):
    """Basic is storage bound (JCT ~ 1/eff), DualPath half as much, Oracle not at all; every JCT
    grows with the seed so that pairing runs of different seeds would give other ratios."""
    s, sd, eff = cfg["system"]["name"], cfg["seed"], cfg["cluster"]["eff"]
    base = 100.0 * (1 + sd)
    return {"basic": base + 60 / eff, "dualpath": base + 30 / eff, "oracle": base}[s]


def sweep(seeds=(0, 1, 2)):
    return S.Sweep(CELLS, seeds, runner=fake_runner, base_cfg=fake_cfg, log=lambda *a: None)


def test_row_brackets_base_and_moves_with_the_knob():
    r = sweep().row(EFF)
    for m in S.METRICS:
        lo, hi = S.bar(r, m)
        assert lo <= r["base"][m].mean <= hi
        assert S.width(r, m) == pytest.approx(hi - lo)
        assert S.width(r, m) > 0
    # lower efficiency -> Basic slower relative to DualPath
    assert r["low"]["Basic/DualPath"].mean > r["base"]["Basic/DualPath"].mean > r["high"]["Basic/DualPath"].mean
    assert (r["low"]["value"], r["base"]["value"], r["high"]["value"]) == (0.4, 0.6, 0.8)


def test_knob_without_effect_has_zero_width():
    r = sweep().row(NOOP)
    for m in S.METRICS:
        assert S.width(r, m) == 0.0
        assert r["low"][m].mean == r["base"][m].mean == r["high"][m].mean


def test_ratio_is_per_seed_then_averaged():
    sw = sweep(seeds=(0, 1, 2))
    r = sw.row(EFF)
    per_seed = []
    for sd in (0, 1, 2):
        b = 100.0 * (1 + sd) + 60 / 0.6
        d = 100.0 * (1 + sd) + 30 / 0.6
        per_seed.append(b / d)
    want = mean_ci(per_seed)
    got = r["base"]["Basic/DualPath"]
    assert got.mean == pytest.approx(want.mean, rel=1e-12)
    assert (got.lo, got.hi, got.n) == pytest.approx((want.lo, want.hi, 3), rel=1e-12)
    # not the ratio of the mean JCTs (that would pool the seeds)
    ratio_of_means = (sum(100.0 * (1 + s) for s in range(3)) / 3 + 100) / (sum(100.0 * (1 + s) for s in range(3)) / 3 + 50)
    assert abs(got.mean - ratio_of_means) > 1e-4
    # the per-seed JCT table pairs each seed's own runs
    base_runs = [x for x in sw.runs if x["end"] == "base"]
    assert sorted((x["seed"], x["system"]) for x in base_runs) == sorted((s, y) for s in range(3) for y in S.SYSTEMS)


def test_identical_configs_run_once():
    calls = []
    sw = S.Sweep(CELLS, (0, 1), runner=lambda c: calls.append(1) or fake_runner(c), base_cfg=fake_cfg,
                 log=lambda *a: None)
    one_sided = S.Assumption("one", "one-sided", "cluster.eff", None, 0.9, "test")
    r = sw.row(one_sided)
    assert len(calls) == 2 * 3 * 2  # base (= low) and high, 3 systems, 2 seeds
    assert r["low"]["Basic/DualPath"].mean == r["base"]["Basic/DualPath"].mean
    assert r["low"]["value"] == 0.6


def test_parallel_prefetch_gives_the_sequential_rows():
    """--jobs: every distinct config runs once on a process pool (the runner must be picklable:
    fake_runner is a module function); the rows then read the same JCTs as a sequential sweep."""
    one_sided = S.Assumption("one", "one-sided", "cluster.eff", None, 0.9, "test")
    seq = sweep(seeds=(0, 1))
    want = [seq.row(a) for a in (EFF, one_sided)]
    par = sweep(seeds=(0, 1))
    cfgs = par.configs((EFF, one_sided))
    # base shared by both assumptions, the one-sided low = base: base + 0.4 + 0.8 + 0.9
    assert len(cfgs) == 4 * 3 * 2
    assert par.prefetch((EFF, one_sided), jobs=2) == len(cfgs)
    assert par.prefetch((EFF, one_sided), jobs=2) == 0  # all cached now
    par.runner = lambda c: pytest.fail("a row ran a simulation the prefetch should have run")
    got = [par.row(a) for a in (EFF, one_sided)]
    for w, g in zip(want, got):
        for end in ("low", "base", "high"):
            for m in S.METRICS:
                assert g[end]["seeds"][m] == w[end]["seeds"][m]
    assert par.runs == seq.runs


def test_jobs_must_be_positive(capsys):
    assert S.main(["--quick", "--only", "fetch_period", "--jobs", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--jobs 0" in err[0]


@pytest.mark.parametrize("a, msg", [
    (S.Assumption("bad", "b", "cluster.eff", 0.7, 0.9, "x"), "range [0.7, 0.9] does not bracket the config's cluster.eff=0.6"),
    (S.Assumption("bad", "b", "cluster.eff", 0.1, 0.5, "x"), "does not bracket"),
    (S.Assumption("bad", "b", "cluster.eff", None, None, "x"), "give a low or a high end"),
    (S.Assumption("bad", "b", "cluster.eff", 0.6, None, "x"), "low < high"),
    (S.Assumption("bad", "b", "cluster.nokey", 0.1, 0.9, "x"), "config has no key 'cluster.nokey'"),
])
def test_bad_range_is_one_clear_line(a, msg):
    with pytest.raises(ValueError) as e:
        sweep().rows([EFF, a])  # checked before anything runs
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_categorical_end_equal_to_base_is_rejected():
    a = S.Assumption("cat", "c", "system.name", None, "basic", "x")
    with pytest.raises(ValueError, match="an end equals the config's system.name='basic'"):
        a.check("basic")
    a.check("dualpath")  # another value is fine


def test_cli_errors_are_one_line(capsys):
    assert S.main(["--only", "nonsense"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown assumption(s) nonsense" in err and "snic_efficiency" in err
    assert S.main(["--seeds", "0"]) == 2
    assert "--seeds 0: expected an integer >= 1" in capsys.readouterr().err


def test_every_paper_range_brackets_the_yaml():
    """The shipped ranges against the shipped YAML (the composed configs of their cells)."""
    cs = S.cells(quick=True)
    for a in S.ASSUMPTIONS:
        cfg = S._scenario(cs[a.cell], "dualpath", 0)
        a.check(S.get(cfg, a.key))


def test_kv_layout_keeps_the_model_consistent():
    from dpsim.config import validate

    a = next(x for x in S.ASSUMPTIONS if x.name == "kv_bytes")
    cfg = S._scenario(S.cells(quick=True)["ds"], "dualpath", 0)
    for v, main in ((a.low, 576), (a.high, 1152)):
        c = S._scenario(S.cells(quick=True)["ds"], "dualpath", 0)
        for k, x in a.sets(v, c).items():
            S.put(c, k, x)
        assert c["model"]["kv_cache"]["main_bytes_per_layer"] == main
        assert c["model"]["kv_bytes_per_token"] == 61 * (main + 132) == v
        validate(c)
    with pytest.raises(ValueError, match="not n_layers"):
        a.sets(50000, cfg)


def test_spread_changes_the_shape_and_is_synthetic_only():
    import numpy as np

    from dpsim.workload.source import load_workload
    from dpsim.workload.synthetic import generate

    a = generate("64k", 200, 3)
    b = generate("64k", 200, 3, spread=1.0)
    assert all(np.array_equal(x.append, y.append) for x, y in zip(a, b))  # 1.0 = the calibrated shape, unchanged
    wide = generate("64k", 200, 3, spread=1.5)
    p0 = lambda ts: np.std(np.log([t.append[0] for t in ts]))  # noqa: E731
    assert p0(wide) > 1.3 * p0(a)  # the first prompt's log-spread grows ~1.5x
    with pytest.raises(ValueError, match="spread: expected a number > 0"):
        generate("64k", 10, 0, spread=0)
    cfg = S._scenario(S.cells(quick=True)["ds"], "dualpath", 0)["workload"]
    cfg.update(source="bundled", mal=None, spread=1.5)
    with pytest.raises(ValueError, match="only used with source: synthetic"):
        load_workload(cfg, seed=0)


def test_shape_recalibration_holds_the_s8_means():
    """The length_shape ends change the spreads but keep the §S8 per-trajectory means (5%)."""
    from dpsim.workload.synthetic import fit_rows, generate

    k = S._calibrated("64k", 1.5)
    rows = fit_rows("64k", generate("64k", 500, 0, 1.5, **k))
    assert all(abs(e) <= 0.05 for *_, e in rows), rows
    assert not math.isclose(k["sigma_append"], 0.828, rel_tol=0.05)  # the fit moved the calibrated knobs


def test_delta_is_paired_per_seed():
    r = sweep(seeds=(0, 1, 2)).row(EFF)
    ratio = lambda sd, eff: (100.0 * (1 + sd) + 60 / eff) / (100.0 * (1 + sd) + 30 / eff)  # noqa: E731
    want = mean_ci(ratio(sd, 0.4) - ratio(sd, 0.6) for sd in range(3))
    got = S.delta(r, "low", "Basic/DualPath")
    assert (got.mean, got.lo, got.hi) == pytest.approx((want.mean, want.lo, want.hi), rel=1e-12)
    assert S.delta(r, "base", "Basic/DualPath").mean == 0.0


def test_from_runs_replays_the_same_rows(tmp_path):
    sw = sweep(seeds=(0, 1))
    rows = sw.rows([EFF, NOOP])
    S.write_outputs(sw, rows, tmp_path, "t")
    def no_run(cfg):
        raise AssertionError("replay must not run")
    again = S.Sweep(CELLS, (0, 1), runner=no_run, base_cfg=fake_cfg, log=lambda *a: None)
    again.load_runs(tmp_path / "runs.csv")
    rows2 = again.rows([EFF, NOOP])
    for r, r2 in zip(rows, rows2):
        for e in ("low", "base", "high"):
            assert r2[e]["seeds"] == r[e]["seeds"] and r2[e]["value"] == r[e]["value"]
    assert (tmp_path / "tornado.md").read_text().count("| efficiency |") == 3  # a row per metric and its range
    missing = S.Sweep(CELLS, (0, 1, 2), runner=no_run, base_cfg=fake_cfg, log=lambda *a: None)
    missing.load_runs(tmp_path / "runs.csv")
    with pytest.raises(ValueError, match="no run for eff base basic seed 2"):
        missing.rows([EFF])
