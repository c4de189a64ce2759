"""Online capacity: the largest APS whose run meets the SLO (§S8), found by search, not a ladder.

    python experiments/run.py capacity --scale paper --jobs 2
    python experiments/run.py capacity --scale small          # a check, ~1 min

For each model (its default P/D, MAL 64K; Qwen 32B at 32K) and system (basic, dualpath), one
search: from a start APS, multiply / divide by 2 until one run meets the SLO and one does not,
then bisect geometrically until the bracket is narrower than ``tol`` (relative; default 5%).
A run "meets the SLO" when its summary says ``slo_met`` (the online experiment stops a run as
soon as the windowed TTFT exceeds 4 s, or at §S8's steady state, and checks TPOT <= 50 ms).
Arrivals are Poisson with a fixed seed, so a search is deterministic; near the capacity a
different seed can move the edge by a few percent (``--seeds`` repeats the search).

Writes ``capacity.csv`` (every probe), ``capacity_summary.csv`` (per model and system: the
largest APS that met the SLO, the smallest that did not, runs used) and ``capacity.png``.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.figures import MODELS, _cluster, _small  # noqa: E402

# Start APS per model: assumption, a guess from quick runs; the search brackets from there.
START = {"ds660b": 0.4, "ds27b": 0.4, "qwen32b": 0.1}
SYSTEMS = ("basic", "dualpath")


def overrides(model: str, system: str, aps: float, scale: str, seed: int = 0) -> list[str]:
    extra = [] if scale == "paper" else ["experiment.steady_lag_s=300", "experiment.window_s=60",
                                         "experiment.max_sim_s=900"]
    return ["experiment=online", *_cluster(model), "workload.mal=32k" if model == "qwen32b" else "workload.mal=64k",
            f"workload.aps={aps:.6g}", "workload.agents=100000", f"system={system}", f"seed={seed}",
            *extra, *_small(scale)]


def search(model: str, system: str, scale: str, tol: float = 0.05, seed: int = 0,
           start: float | None = None, max_runs: int = 16, run=None) -> tuple[dict, list[dict]]:
    """Bracket then bisect.  ``run(overrides) -> row`` (default: experiments.run.run_one)."""
    if run is None:
        from experiments.run import run_one as run
    rows: list[dict] = []

    def probe(aps: float) -> bool | None:
        r = run(overrides(model, system, aps, scale, seed))
        r.update(search_model=model, search_system=system, search_seed=seed, aps_probe=aps)
        rows.append(r)
        if r.get("error"):
            return None
        return bool(r.get("slo_met"))

    ok, bad = None, None
    aps = start or START[model]
    while len(rows) < max_runs and (ok is None or bad is None):
        res = probe(aps)
        if res is None:
            break
        if res:
            ok = aps if ok is None else max(ok, aps)
            if bad is None:
                aps *= 2.0
        else:
            bad = aps if bad is None else min(bad, aps)
            if ok is None:
                aps /= 2.0
                if aps < 1e-3:
                    break
    while ok is not None and bad is not None and bad / ok > 1 + tol and len(rows) < max_runs:
        mid = math.sqrt(ok * bad)
        res = probe(mid)
        if res is None:
            break
        if res:
            ok = mid
        else:
            bad = mid
    err = next((r["error"] for r in rows if r.get("error")), "")
    summary = {"model": model, "system": system, "seed": seed,
               "max_aps_within_slo": ok if ok is not None else 0.0,
               "min_aps_violating": bad if bad is not None else math.nan,
               "bracket_rel": (bad / ok - 1) if (ok and bad) else math.nan,
               "runs": len(rows), "converged": bool(ok and bad and bad / ok <= 1 + tol), "error": err}
    return summary, rows


def run_capacity(scale: str, out: Path, jobs: int = 1, tol: float = 0.05, seeds: int = 1,
                 models: list[str] | None = None):
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    tasks = [(m, s, seed) for m in (models or list(MODELS)) for s in SYSTEMS for seed in range(seeds)]
    if scale == "small":
        tol = max(tol, 0.25)
    print(f"capacity ({scale}): {len(tasks)} searches, tolerance {tol:.0%} -> {out}", file=sys.stderr)
    if jobs > 1:
        from joblib import Parallel, delayed
        res = Parallel(n_jobs=jobs, verbose=5)(delayed(search)(m, s, scale, tol, seed) for m, s, seed in tasks)
    else:
        res = []
        for m, s, seed in tasks:
            res.append(search(m, s, scale, tol, seed))
            print(f"  {m} {s} seed {seed}: max APS within SLO {res[-1][0]['max_aps_within_slo']:.4g} "
                  f"({res[-1][0]['runs']} runs)", file=sys.stderr)
    summ = pd.DataFrame([r[0] for r in res])
    probes = pd.DataFrame([row for r in res for row in r[1]])
    probes.to_csv(out / "capacity.csv", index=False)
    probes.to_parquet(out / "capacity.parquet", index=False)
    agg = (summ.groupby(["model", "system"], as_index=False)
           .agg(max_aps_within_slo=("max_aps_within_slo", "mean"), min_aps_violating=("min_aps_violating", "mean"),
                runs=("runs", "sum"), converged=("converged", "all"), seeds=("seed", "count")))
    piv = agg.pivot(index="model", columns="system", values="max_aps_within_slo")
    if {"basic", "dualpath"} <= set(piv.columns):
        ratio = (piv["dualpath"] / piv["basic"]).rename("dualpath/basic")
        agg = agg.merge(ratio.reset_index(), on="model", how="left")
    agg.to_csv(out / "capacity_summary.csv", index=False)
    _plot(piv, probes, out / "capacity.png")
    print(agg.to_string(index=False))
    return agg, probes


def _plot(piv, probes, path):
    from experiments.run import plot_capacity

    best = probes.iloc[0:0]
    if len(probes) and "slo_met" in probes:
        ok = probes[probes.slo_met == True]  # noqa: E712
        best = ok.sort_values("aps_probe").groupby(["search_model", "search_system"]).tail(1)
        best = best.set_index(best.search_model + "/" + best.search_system)
    plot_capacity(piv, best, path, "TTFT breakdown at capacity (s)",
                  title="online capacity (TTFT <= 4 s, TPOT <= 50 ms)")
