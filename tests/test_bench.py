"""benchmarks/bench_sim.py: the --quick --no-ref path on one tiny scenario, the reference
extraction's error for an unknown commit, and the child's import-origin check.  No wall-clock
assertions (speed belongs in the benchmark, not in tests)."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("bench_sim", ROOT / "benchmarks" / "bench_sim.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_no_ref_one_scenario(tmp_path):
    b = _bench()
    out = tmp_path / "rows.json"
    rc = b.main(["--quick", "--no-ref", "--only", "ladder-2P4D", "--timeout", "120", "--json", str(out)])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["ref"] is None and d["quick"] is True
    rows = d["rows"]
    assert [r["key"] for r in rows] == ["ladder-2P4D"]
    cur = rows[0]["cur"]
    assert "error" not in cur, cur
    assert cur["requests"] > 0 and cur["rss_mib"] > 0
    assert Path(cur["dpsim_file"]).resolve().is_relative_to(ROOT)
    assert rows[0]["ref"] is None
    assert {t["target"] for t in d["targets"]}  # the targets block is built


def test_jobs_run_scenarios_at_once_with_the_same_results(tmp_path):
    """--jobs N runs the scenario processes concurrently: rows stay in scenario order and each
    simulation is the one a sequential run measures (same requests and events)."""
    b = _bench()
    out = tmp_path / "par.json"
    assert b.main(["--quick", "--no-ref", "--only", "ladder", "--jobs", "2", "--timeout", "300",
                   "--json", str(out)]) == 0
    par = json.loads(out.read_text())["rows"]
    assert [r["key"] for r in par] == ["ladder-2P4D", "ladder-4P8D", "ladder-8P16D"]
    seq_out = tmp_path / "seq.json"
    assert b.main(["--quick", "--no-ref", "--only", "ladder-4P8D", "--timeout", "300",
                   "--json", str(seq_out)]) == 0
    seq = json.loads(seq_out.read_text())["rows"][0]["cur"]
    assert (par[1]["cur"]["requests"], par[1]["cur"]["events"]) == (seq["requests"], seq["events"])
    assert all(r["cur"]["requests"] > 0 for r in par)
    assert b.main(["--quick", "--no-ref", "--jobs", "0"]) == 2


def test_unknown_reference_commit_is_rejected(tmp_path):
    b = _bench()
    with pytest.raises(b.BenchError, match="not a commit"):
        b.extract_ref("0123456789abcdef0123456789abcdef01234567", cache=tmp_path)
    with pytest.raises(b.BenchError, match="no-such-ref"):
        b.resolve_commit("no-such-ref")


def test_child_refuses_dpsim_from_elsewhere(tmp_path):
    b = _bench()
    r = b.measure(["workload.agents=4"], root=tmp_path, timeout=60)  # tmp_path has no dpsim/
    assert "error" in r and "not from under" in r["error"]


def test_spy_breakdown_charges_innermost_source_frame(tmp_path):
    """benchmarks/spy_breakdown.py: each sample goes to its innermost frame with a source file;
    only samples under Simulation.run count unless --all."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("spy_breakdown", Path(__file__).resolve().parent.parent
                                                  / "benchmarks" / "spy_breakdown.py")
    sb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sb)
    raw = tmp_path / "spy.txt"
    raw.write_text(
        "<module> (m.py:1);Simulation.run (dpsim/sim.py:9);_rerate (dpsim/net/_c/network.py:5);memcpy (libc.so.6) 6\n"
        "<module> (m.py:1);Simulation.run (dpsim/sim.py:9);issue (dpsim/lifecycle/transitions.py:70) 3\n"
        "<module> (m.py:1);build (dpsim/runner.py:3) 1\n")
    total, kept, files, fns = sb.breakdown(str(raw))
    assert (total, kept) == (10, 9)
    assert files == [("dpsim/net/_c/network.py", 6), ("dpsim/lifecycle/transitions.py", 3)]
    assert fns[0] == ("_rerate (dpsim/net/_c/network.py)", 6)
    total, kept, files, _ = sb.breakdown(str(raw), only_run=False)
    assert kept == 10 and ("dpsim/runner.py", 1) in files


def test_verdict_on_an_interval_and_the_benchmark_uses_dpsims_interval():
    b = _bench()
    from dpsim.analysis.stats import mean_ci
    assert b.mean_ci is mean_ci  # one Student t interval in the project, not a second table
    ok = lambda v: v <= 1.3  # noqa: E731
    assert b.verdict(1.1, 1.2, ok) is True
    assert b.verdict(1.4, 1.5, ok) is False
    assert b.verdict(1.2, 1.4, ok) is None  # straddles the bound: the runs cannot tell


def test_repeated_targets_take_growth_within_each_repetition():
    """Growth is cost(largest rung) / cost(smallest) of the same repetition; the target reports
    the mean and interval of those, and straddling the bound is 'uncertain' (None)."""
    b = _bench()

    def run(wall):
        return {"sim_wall_s": wall, "requests": 100, "req_per_s": 100 / wall}
    rows = [{"key": "ladder-2P4D", "group": "ladder", "label": "small",
             "runs": {"cur": [run(1.0), run(2.0)], "ref": [None, None]}},
            {"key": "ladder-48P96D", "group": "ladder", "label": "big",
             "runs": {"cur": [run(1.2), run(2.8)], "ref": [None, None]}}]
    for i in range(2):
        b.add_ladder_growth(b.repetition(rows, i))
    assert [c["cost_vs_first"] for c in rows[1]["runs"]["cur"]] == pytest.approx([1.2, 1.4])
    t = {x["target"]: x for x in b.repeated_targets(rows, True, 2)}
    g = t["ladder: cost/request growth 2P4D -> 48P96D <= 1.3x"]
    assert g["values"] == pytest.approx([1.2, 1.4]) and g["value"] == pytest.approx(1.3)
    assert g["high"] - g["value"] == pytest.approx(12.706 * 0.1, rel=1e-4)  # t(0.975, 1) sd 0.1414 / sqrt 2
    assert g["met"] is None
    assert t["paper cell: peak RSS < 1 GiB"]["value"] is None  # no paper row: not measured


def test_repeat_runs_every_scenario_n_times(tmp_path):
    b = _bench()
    out = tmp_path / "rep.json"
    assert b.main(["--quick", "--no-ref", "--only", "ladder-2P4D", "--repeat", "2", "--timeout", "120",
                   "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["repeat"] == 2
    runs = d["rows"][0]["runs"]["cur"]
    assert len(runs) == 2 and all("error" not in r for r in runs)
    assert runs[0]["requests"] == runs[1]["requests"] and runs[0]["events"] == runs[1]["events"]
    g = [t for t in d["targets"] if t["target"].startswith("ladder")][0]
    assert g["values"] == [1.0, 1.0] and g["met"] is True  # one rung: growth 1 in each run
    assert b.main(["--quick", "--no-ref", "--repeat", "0"]) == 2


def _cache_counts():
    import sys
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("cache_counts", ROOT / "benchmarks" / "cache_counts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_ANNOTATE = """\
--------------------------------------------------------------------------------
Ir                     D1mr               D1mw              DLmr             DLmw
--------------------------------------------------------------------------------
1,000,000 (100.0%)  40,000 (100.0%)  10,000 (100.0%)  3,000 (100.0%)  1,000 (100.0%)  PROGRAM TOTALS
  600,000 (60.00%)  30,000 (75.00%)   5,000 (50.00%)  2,000 (66.67%)    500 (50.00%)  /b/network.c:__pyx_f_drop [/x/network.so]
  300,000 (30.00%)   8,000 (20.00%)   4,000 (40.00%)    900 (30.00%)      .           /b/heap.c:__pyx_f_sift_down [/x/heap.so]
  100,000 (10.00%)   2,000 ( 5.00%)   1,000 (10.00%)    100 ( 3.33%)    500 (50.00%)  /other/network.c:__pyx_f_drop [/x/network.so]
"""


def test_cache_counts_parses_annotate_and_ranks_growth_per_request():
    """benchmarks/cache_counts.py: callgrind_annotate's columns per function (a function in two
    files summed, '.' as zero, the totals line left out), per request, and the growth ranking
    of read + write misses."""
    cc = _cache_counts()
    c = cc.parse_annotate(_ANNOTATE, 5)
    assert c == {"__pyx_f_drop": [700_000, 32_000, 6_000, 2_100, 1_000],
                 "__pyx_f_sift_down": [300_000, 8_000, 4_000, 900, 0]}
    one = "1,000 (100.0%)  PROGRAM TOTALS\n  600 (60.00%)  /b/network.c:__pyx_f_drop [/x/network.so]\n"
    assert cc.parse_annotate(one, 1) == {"__pyx_f_drop": [600]}  # --model none: Ir only
    small = cc.per_request(c, 100)
    big = cc.per_request({"__pyx_f_drop": [700_000, 0, 0, 4_100, 1_000],
                          "__pyx_f_sift_down": [300_000, 0, 0, 3_000, 3_000]}, 100)
    assert cc.totals(small)[0] == 10_000.0 and cc.totals(small)[3] == 30.0
    # misses per request: drop 31 -> 51 (+20), sift_down 9 -> 60 (+51)
    assert cc.growth(small, big, 3, 5) == [(51.0, "__pyx_f_sift_down", 9.0, 60.0),
                                           (20.0, "__pyx_f_drop", 31.0, 51.0)]
    assert cc.growth(small, big, 0, 1) == [(0.0, "__pyx_f_drop", 7000.0, 7000.0)]
    with pytest.raises(ValueError, match="max-sim-s"):
        cc.per_request(c, 0)
    assert set(cc.MODELS) == {"none", "l2", "llc", "tlb"}


def test_cache_counts_resizes_the_last_level():
    """--ll-mib / --ll-ways: the l2 (or llc) model's last level at another size, as valgrind's
    --LL option (size, ways, 64-byte lines); sizes that are no power-of-two number of sets and
    models without a last level of their own are refused."""
    cc = _cache_counts()
    assert cc.model_args("l2") == ["--cache-sim=yes", "--LL=1048576,8,64"]
    assert cc.model_args("l2", 2, 16) == ["--cache-sim=yes", "--LL=2097152,16,64"]
    assert cc.model_args("llc", 0.5) == ["--cache-sim=yes", "--LL=524288,8,64"]
    with pytest.raises(ValueError, match="power-of-two"):
        cc.model_args("l2", 3)
    with pytest.raises(ValueError, match="power-of-two"):
        cc.model_args("l2", 1, 0)
    with pytest.raises(ValueError, match="l2 or llc"):
        cc.model_args("tlb", 2)
