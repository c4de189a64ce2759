"""`dpsim validate --quick`: every calibration point present with a finite relative error and the
verdict its error gives, every claim with the verdict its own numbers give, the exact claim (§S7
closed form) passing, and an exit status that says whether anything failed."""
import csv
import math
import re
import subprocess
import sys

from dpsim.analysis.validate import C1_POINTS, QUICK_AGENTS

# C2 rows the report must carry (substrings of the point names)
C2_ROWS = ["motivation: PE throughput @2 reqs", "@3 reqs", "@5 reqs", "@10 reqs", "@20 reqs",
           "DeepSeek V3 prefill", "DeepSeek V3 decode", "low-load TPOT, 1-agent sim [ds660b",
           "low-load TPOT, 1-agent sim [ds27b", "DualPath/Basic throughput"]
CLAIMS = ["(a) DualPath/Basic gain grows with the number of agents", "(a) DualPath/Basic gain grows with the MAL",
          "(b) DualPath within 15% of Oracle", "(c) §S7 closed form", "(c) storage-bound DualPath sim"]


def test_validate_quick_report_structure(tmp_path):
    out = tmp_path / "val"
    # (its speed is a benchmark matter; the timeout only guards against a hang)
    p = subprocess.run([sys.executable, "-m", "dpsim.analysis.validate", "--quick", "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode in (0, 1), p.stderr[-3000:]
    for f in ("report.md", "report.csv", "report.png"):
        assert (out / f).stat().st_size > 0, f
    rows = list(csv.DictReader((out / "report.csv").open()))
    points = [r for r in rows if r["group"] in ("C1", "C2")]
    claims = [r for r in rows if r["group"] == "claim"]
    # C1: the quick points, each with a finite relative error and a verdict
    want_c1 = [q for q in C1_POINTS if q.agents == QUICK_AGENTS[q.model]]
    c1 = [r for r in points if r["group"] == "C1"]
    assert len(c1) == len(want_c1) == 3
    for q in want_c1:
        assert any(q.name in r["point"] for r in c1), q.name
    for name in C2_ROWS:
        assert any(name in r["point"] for r in points if r["group"] == "C2"), name
    for r in points:
        assert math.isfinite(float(r["sim"])) and float(r["sim"]) > 0, r
        assert math.isfinite(float(r["paper"])) and float(r["paper"]) > 0, r
        assert math.isfinite(float(r["rel_err"])), r
        assert math.isclose(float(r["rel_err"]), float(r["sim"]) / float(r["paper"]) - 1, rel_tol=1e-3,
                            abs_tol=1e-4), r
        assert (r["pass"] == "pass") == (abs(float(r["rel_err"])) <= 0.10), r
    by = {}
    for name in CLAIMS:
        hit = [r for r in claims if r["point"].startswith(name)]
        assert len(hit) == 1, name
        by[name] = hit[0]
    # Each claim's verdict is what its detail's numbers say.
    xs = [float(x) for x in re.findall(r"agents: ([0-9.]+)x", by[CLAIMS[0]]["note"])]
    assert len(xs) >= 2 and (by[CLAIMS[0]]["pass"] == "pass") == all(b > a for a, b in zip(xs, xs[1:]))
    lo, hi = (float(x) for x in re.findall(r"(?:32K|64K) ([0-9.]+)x", by[CLAIMS[1]]["note"]))
    assert (by[CLAIMS[1]]["pass"] == "pass") == (hi > lo)
    gap = float(re.search(r"\(([-+0-9.]+)%\)", by[CLAIMS[2]]["note"]).group(1))
    assert (by[CLAIMS[2]]["pass"] == "pass") == (abs(gap) <= 15.0 + 0.05)
    assert by[CLAIMS[3]]["pass"] == "pass"  # 1/7 <= P/D <= 7/2 is exact arithmetic
    # The exit status: 1 exactly when a point or a claim failed, and stderr names it.
    failing = [r["point"] for r in rows if r["pass"] == "fail"]
    assert p.returncode == (1 if failing else 0), (p.returncode, failing)
    for name in failing:
        assert name in p.stderr
    # #11: every simulated point is the mean over the quick run's 2 seeds with its 95% t interval;
    # compute-model rows (no random input) have none
    for r in points:
        simulated = r["group"] == "C1" or "sim [" in r["point"] or "DualPath/Basic" in r["point"]
        if simulated:
            assert r["n_seeds"] == "2", r
            lo, hi = float(r["ci_lo"]), float(r["ci_hi"])
            assert lo <= float(r["sim"]) <= hi, r
            assert hi > lo, r  # two seeds give two different runs
        else:
            assert r["n_seeds"] == "0" and r["ci_lo"] == r["ci_hi"] == "", r
    assert re.search(r"\[[-+0-9.]+%, [-+0-9.]+%\]", by[CLAIMS[2]]["note"])  # the paired gap's interval
    md = (out / "report.md").read_text()
    assert "Qualitative claims" in md and all(q.name in md for q in want_c1)
    assert "95% CI (Student t over seeds)" in md and "| 95% CI | seeds |" in md
    # the printed report carries the same rows
    assert "C1" in p.stdout and "claims hold" in p.stdout


def test_validate_refuses_a_fixed_seed():
    """The replicates set the seed; --set seed=... (or workload.seed) would make them one run."""
    from dpsim.analysis.validate import main
    assert main(["--quick", "--set", "seed=3"]) == 2
    assert main(["--quick", "--set", "workload.seed=3"]) == 2
    assert main(["--quick", "--seeds", "0"]) == 2
