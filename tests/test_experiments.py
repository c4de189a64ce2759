"""experiments/: every figure's runs compose into valid configs; a small figure runs end to end
and writes its table and figure."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dpsim.config import validate  # noqa: E402
from experiments.figures import FIGURES, runs_for  # noqa: E402
from experiments.run import compose_many, run_figure  # noqa: E402


@pytest.mark.parametrize("name", sorted(FIGURES))
@pytest.mark.parametrize("scale", ["small", "paper"])
def test_every_run_composes(name, scale):
    runs = runs_for(name, scale)
    assert runs
    if len(runs) > 8:  # composing is ~0.15 s a run: check a spread sample of big sweeps
        runs = runs[::len(runs) // 6] + [runs[-1]]
    for cfg in compose_many(runs):
        validate(cfg)


def test_small_figure_end_to_end(tmp_path):
    df = run_figure("balance", "small", tmp_path)
    assert (df.error == "").all()
    assert set(df.system) == {"round_robin", "dualpath"}
    assert (df.requests_completed == df.requests_total).all()
    for f in ("balance.csv", "balance.parquet", "balance.png", "balance_summary.csv"):
        assert (tmp_path / f).stat().st_size > 0


def test_unknown_figure():
    with pytest.raises(ValueError, match="unknown figure"):
        runs_for("nope", "small")


# ------------------------------------------------------------------ capacity search
from experiments.capacity import overrides as cap_overrides, search  # noqa: E402


def _fake_runner(threshold, calls):
    def run(ov):
        aps = float(next(o for o in ov if o.startswith("workload.aps=")).split("=")[1])
        calls.append(aps)
        return {"slo_met": aps <= threshold, "error": ""}
    return run


@pytest.mark.parametrize("threshold,start", [(0.37, 0.4), (1.9, 0.4), (0.05, 0.4), (0.4, 0.4)])
def test_capacity_search_brackets_and_bisects(threshold, start):
    calls = []
    s, rows = search("ds660b", "dualpath", "small", tol=0.05, start=start, run=_fake_runner(threshold, calls))
    assert s["converged"]
    assert s["max_aps_within_slo"] <= threshold < s["min_aps_violating"]
    assert s["min_aps_violating"] / s["max_aps_within_slo"] <= 1.05
    assert s["runs"] == len(rows) == len(calls) <= 16


def test_capacity_search_reports_errors_and_never_met():
    s, rows = search("qwen32b", "basic", "small", run=lambda ov: {"error": "boom", "slo_met": None})
    assert s["error"] == "boom" and s["max_aps_within_slo"] == 0.0 and not s["converged"] and len(rows) == 1
    s, rows = search("qwen32b", "basic", "small", max_runs=40, run=lambda ov: {"error": "", "slo_met": False})
    assert s["max_aps_within_slo"] == 0.0 and not s["converged"]


def test_capacity_overrides_compose():
    cfgs = compose_many([cap_overrides(m, "dualpath", 0.3, sc) for m in ("ds660b", "qwen32b") for sc in ("small", "paper")])
    for cfg in cfgs:
        validate(cfg)
        assert cfg["experiment"]["mode"] == "online" and cfg["workload"]["aps"] == pytest.approx(0.3)
