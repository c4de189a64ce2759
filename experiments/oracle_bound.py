"""Is Oracle a bound?  (#11 item 3) -- DualPath and Oracle on offline-grid cells over seeds.

    python experiments/oracle_bound.py [--seeds 0,1,2] [--jobs 1] [--tag NAME] [--cells ds660b]

Each run (cell x system x seed) is its own ``python -m experiments.oracle_bound --one ...``
process (one at a time unless ``--jobs``); its summary is cached as JSON under
``results/oracle_bound/<tag>/runs/`` so a rerun only runs what is missing.  The table
(``results/oracle_bound/<tag>/table.md``) gives per cell the mean JCT of each system with its
95% interval over seeds (dpsim.analysis.stats) and the per-seed paired difference Oracle -
DualPath (both replay the same seed's workload) with its interval.  A cell **passes** when Oracle
does not exceed DualPath beyond the seed interval: the paired difference's interval reaches 0 or
below (``lo <= 0``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "oracle_bound"

# (model, P, D, MAL, agents): the offline-grid cells checked (§S8/§S9 default P/D per model).
CELLS = [
    ("ds660b", 2, 4, "64k", 1024), ("ds660b", 2, 4, "64k", 2048), ("ds660b", 2, 4, "64k", 4096),
    ("ds27b", 1, 1, "64k", 1024), ("ds27b", 1, 1, "64k", 4096),
    ("qwen32b", 1, 2, "32k", 256), ("qwen32b", 1, 2, "32k", 512),
]
# Further cells where DualPath beat Oracle before ba2740d (results/offline_grid-paper, seed 0):
# checked with --extra as far as time allows.
EXTRA = [("ds660b", 2, 4, "48k", 2048), ("ds660b", 2, 4, "32k", 2048), ("ds660b", 2, 4, "48k", 4096),
         ("ds660b", 2, 4, "32k", 4096)]
SYSTEMS = ("dualpath", "oracle")
KEEP = ("jct_s", "requests_completed", "requests_total", "ttft_s", "tpot_s", "ttft_breakdown_s",
        "read_path_share", "pe_busy_fraction", "peak_hbm_bytes_decode", "events", "truncated")


def key(cell, system, seed) -> str:
    m, P, D, mal, n = cell
    return f"{m}_{P}P{D}D_{mal}_{n}_{system}_s{seed}"


def run_one(cell, system, seed, path: Path) -> None:
    from dpsim.analysis.validate import run_summary, scenario_cfg

    m, P, D, mal, n = cell
    summ, wall = run_summary(scenario_cfg(m, P, D, mal, n, system=system, seed=seed))
    rec = {k: summ.get(k) for k in KEEP}
    rec.update(model=m, P=P, D=D, mal=mal, agents=n, system=system, seed=seed, wall_s=wall)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, indent=1, default=float))


def table(runs: Path, cells, seeds) -> str:
    from dpsim.analysis.stats import INTERVAL, mean_ci

    rows = ["| cell | DualPath JCT s | Oracle JCT s | Oracle - DualPath per seed (s) | paired diff mean [95% CI] | "
            "Oracle alloc wait s | pass |", "|---|---|---|---|---|---|---|"]
    for c in cells:
        rec = {}
        for s in SYSTEMS:
            for sd in seeds:
                p = runs / f"{key(c, s, sd)}.json"
                if p.exists():
                    rec[s, sd] = json.loads(p.read_text())
        sds = [sd for sd in seeds if ("dualpath", sd) in rec and ("oracle", sd) in rec]
        if not sds:
            continue
        dp = mean_ci(rec["dualpath", sd]["jct_s"] for sd in sds)
        orc = mean_ci(rec["oracle", sd]["jct_s"] for sd in sds)
        diffs = [rec["oracle", sd]["jct_s"] - rec["dualpath", sd]["jct_s"] for sd in sds]
        d = mean_ci(diffs)
        alloc = max((rec["oracle", sd].get("ttft_breakdown_s") or {}).get("allocation") or 0.0 for sd in sds)
        ok = (d.lo <= 0) if len(sds) > 1 else (diffs[0] <= 0)
        m, P, D, mal, n = c
        rows.append(f"| {m} {P}P{D}D {mal.upper()} {n} | {dp.mean:.1f} [{dp.lo:.1f}, {dp.hi:.1f}] | "
                    f"{orc.mean:.1f} [{orc.lo:.1f}, {orc.hi:.1f}] | {', '.join(f'{x:+.1f}' for x in diffs)} | "
                    f"{d.mean:+.1f} [{d.lo:+.1f}, {d.hi:+.1f}] | {alloc:.3g} | {'yes' if ok else 'NO'} |")
    c1 = c1_rows(runs, cells, seeds)
    return (f"Seeds {', '.join(map(str, seeds))}; intervals: {INTERVAL}.  Pass: Oracle - DualPath (paired "
            f"per seed) is not above 0 beyond its interval (lo <= 0).\n\n" + "\n".join(rows) + "\n" + c1)


def c1_rows(runs: Path, cells, seeds) -> str:
    """The cells that are calibration point C1 (Oracle JCTs, dpsim.analysis.points): the Oracle
    mean here, the paper's value, and the single seed-0 Oracle run of results/offline_grid-paper
    (before Oracle's buffers were unbounded, ba2740d)."""
    import csv

    from dpsim.analysis.points import C1_POINTS
    from dpsim.analysis.stats import mean_ci

    old = {}
    f = ROOT / "results" / "offline_grid-paper" / "offline_grid_summary.csv"
    if f.exists():
        for r in csv.DictReader(f.open()):
            old[r["model"], r["workload.mal"], int(r["agents"])] = float(r["oracle"])
    rows = ["", "C1 (Oracle JCT calibration points) in these cells:", "",
            "| C1 point | paper s | Oracle here, mean [95% CI] | vs paper | Oracle here, seed 0 | offline_grid-paper (seed 0, before ba2740d) | seed 0 moved |",
            "|---|---|---|---|---|---|---|"]
    for p in C1_POINTS:
        c = (p.model, p.P, p.D, p.mal, p.agents)
        if c not in cells:
            continue
        v = [json.loads(q.read_text())["jct_s"] for sd in seeds
             if (q := runs / f"{key(c, 'oracle', sd)}.json").exists()]
        if not v:
            continue
        iv = mean_ci(v)
        o = old.get((p.model, p.mal, p.agents))
        q0 = runs / f"{key(c, 'oracle', 0)}.json"
        v0 = json.loads(q0.read_text())["jct_s"] if q0.exists() else None
        moved = f"{100 * (v0 / o - 1):+.1f}%" if (o is not None and v0 is not None) else ""
        rows.append(f"| {p.name} | {p.paper_jct_s:.0f} | {iv.mean:.1f} [{iv.lo:.1f}, {iv.hi:.1f}] (n={iv.n}) | "
                    f"{100 * (iv.mean / p.paper_jct_s - 1):+.1f}% | {'' if v0 is None else f'{v0:.1f}'} | "
                    f"{'' if o is None else f'{o:.1f}'} | {moved} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--tag", default="current")
    ap.add_argument("--cells", default="", help="only cells whose model is in this comma list")
    ap.add_argument("--agents", default="", help="only cells with these agent counts")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--one", nargs=7, metavar=("MODEL", "P", "D", "MAL", "AGENTS", "SYSTEM", "SEED"))
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--extra", action="store_true", help="also the EXTRA cells")
    ap.add_argument("--order", choices=("longest", "seed"), default="longest",
                    help="longest runs first, or every cell's seed 0 first (then 1, ...)")
    a = ap.parse_args(argv)
    runs = OUT / a.tag / "runs"
    if a.one:
        m, P, D, mal, n, s, sd = a.one
        cell = (m, int(P), int(D), mal, int(n))
        run_one(cell, s, int(sd), runs / f"{key(cell, s, int(sd))}.json")
        return 0
    seeds = [int(x) for x in a.seeds.split(",")]
    cells = [c for c in CELLS + (EXTRA if a.extra else []) if (not a.cells or c[0] in a.cells.split(","))
             and (not a.agents or str(c[4]) in a.agents.split(","))]
    todo = [(c, s, sd) for c in cells for sd in seeds for s in a.systems.split(",")
            if not (runs / f"{key(c, s, sd)}.json").exists() and not (runs / f"{key(c, s, sd)}.lock").exists()]
    if a.order == "longest":
        todo.sort(key=lambda x: -x[0][4])
    else:  # by seed: every cell's seed 0 first (smallest cells first), then seed 1, ...
        todo.sort(key=lambda x: (x[2], x[0][4] * (1 if x[0][0] != "ds660b" else 2)))

    def go(job):
        c, s, sd = job
        t = time.time()
        lock = runs / f"{key(c, s, sd)}.lock"
        if lock.exists() or (runs / f"{key(c, s, sd)}.json").exists():
            return  # another driver has it
        runs.mkdir(parents=True, exist_ok=True)
        lock.write_text("")
        r = subprocess.run([sys.executable, "-m", "experiments.oracle_bound", "--tag", a.tag, "--one",
                            *map(str, c), s, str(sd)], cwd=ROOT, capture_output=True, text=True)
        lock.unlink(missing_ok=True)
        msg = "ok" if r.returncode == 0 else "FAILED\n" + r.stderr[-2000:]
        print(f"{key(c, s, sd)}: {time.time() - t:.0f} s {msg}", flush=True)

    if not a.table_only:
        with ThreadPoolExecutor(max(1, a.jobs)) as ex:
            list(ex.map(go, todo))
    txt = table(runs, cells, seeds)
    (OUT / a.tag).mkdir(parents=True, exist_ok=True)
    (OUT / a.tag / "table.md").write_text(f"# Oracle vs DualPath ({a.tag})\n\n" + txt)
    print(txt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
