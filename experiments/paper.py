"""Every paper experiment (§S8-§S9; dpsim/conf/figure/*.yaml) at paper scale, one simulation per
process on N local cores, resumable, with a deadline -- then the tables and figures.

    python -m experiments.paper --plan                          # every run, its cost, done or not
    python -m experiments.paper --jobs 16 --deadline-s 36000    # run all figures (seeds 0,1,2)
    python -m experiments.paper ablation scaling --jobs 8       # some figures
    python -m experiments.paper online --only model=ds27b       # some runs of a figure
    python -m experiments.paper --collect                       # tables + figures: results/<figure>-paper/
    python -m experiments.paper --scale small --jobs 2 --out runs/small --results results-small  # a check

What it does:

* **The runs** of a figure are those of ``dpsim -m +figure=<name>`` (dpsim.figures.runs_for: the
  union of the figure's grids x the seeds), each run as its own ``dpsim +figure=<name> <overrides>
  hydra.run.dir=<out>/<figure>-<scale>/<run>`` process.  The capacity figure is adaptive: its unit
  is one search (model x MAL x system x seed), run as ``dpsim -m +figure=capacity <overrides>
  hydra.sweep.dir=<run>``.  A run's directory name is its overrides (sorted, ``key-value_...``) and a
  short hash of them, the same on every machine.
* **Resumable**: a run whose directory holds ``summary.json`` (a search: ``capacity_searches.json``)
  is done and skipped -- unless that summary says ``"status": "interrupted"`` (a SIGINT/SIGTERM'd
  run's partial result: it runs again, and ``--collect`` leaves it out; a search without its
  searches file starts again from an empty folder, its old probes removed); a run that failed (``error.json``, not interrupted) is skipped too unless
  ``--retry-failed``.  Copy (rsync) the ``--out`` directories of several machines together and run
  again or ``--collect``: a run is never done twice.  dpsim writes every output under a temporary
  name and renames it, so a run killed half-way leaves no summary and runs again.
* **Big runs first**: runs start in decreasing order of their estimated cost (requests: agents x
  the §S8 mean turns of the MAL, the append/generation scaling folded in; online: APS x the
  longest simulated time x turns; a search: 6 probes) -- a rough guide, not a prediction.
* ``--deadline-s``: no run starts after this many seconds; runs already started finish (their
  results stand; nothing is killed).  ``--jobs``: runs at once (default: the CPU count).
* ``--collect``: per figure, the sweep table of its planned runs that finished, then
  dpsim.figures.draw -> ``<results>/<figure>-<scale>/``: ``<figure>.png``, ``<figure>_summary.csv``
  (the figure's wide table: per configuration each system's mean, ``_ci_lo``/``_ci_hi``, paired
  ratios, ``n_seeds``), ``<figure>_tidy.csv`` (one row per configuration and metric: mean, ci_low,
  ci_high, n_seeds), figure-specific tables (balance_timeseries.csv, online_ttft_breakdown.csv),
  and the sweep table itself (``<figure>.csv``).

Only the standard library, dpsim and its dependencies (numpy, pandas, pyarrow, matplotlib, simpy,
hydra-core, omegaconf) are used: no joblib or tqdm needed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# §S8: mean turns per trajectory of each dataset (the table's "turns" column); a run's requests
# are about agents x (turns + 1) (+1: the synthetic first round, §S8).  Rough cost only.
TURNS = {32768: 60, 49152: 106, 65536: 157}
GEN_SHARE = {32768: 148 / (608 + 148), 49152: 172 / (474 + 172), 65536: 176 / (429 + 176)}  # §S8 gen / (append + gen) per turn
PROBES_PER_SEARCH = 6  # assumption: a capacity search to 5% takes ~6 probes (bracket + bisection)
ADAPTIVE = {"capacity"}
ENV_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass
class Run:
    figure: str
    scale: str
    overrides: list
    dir: Path
    cost: float = 0.0
    search: bool = False
    info: dict = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """Finished: its summary (a search: its searches file) is there and the run was not
        interrupted -- a run stopped by SIGINT/SIGTERM writes a partial summary with ``"status":
        "interrupted"``, which must run again, not be collected as a result."""
        p = self.dir / ("capacity_searches.json" if self.search else "summary.json")
        if not p.exists():
            return False
        if self.search:
            return True
        try:
            return json.loads(p.read_text()).get("status") != "interrupted"
        except (OSError, ValueError):  # unreadable: not a result to trust
            return False

    @property
    def interrupted(self) -> bool:
        """A partial summary of an interrupted run is there (it runs again; --collect skips it)."""
        p = self.dir / "summary.json"
        return not self.search and p.exists() and not self.done

    @property
    def failed(self) -> bool:
        p = self.dir / "error.json"
        if self.done or not p.exists():
            return False
        try:
            return json.loads(p.read_text()).get("status", "failed") != "interrupted"
        except (OSError, ValueError):
            return False

    def command(self) -> list:
        from dpsim.figures import config_name
        fig = f"+figure={config_name(self.figure, self.scale)}"
        if self.search:
            return [sys.executable, "-m", "dpsim", "-m", fig, *self.overrides, f"hydra.sweep.dir={self.dir}"]
        return [sys.executable, "-m", "dpsim", fig, *self.overrides, f"hydra.run.dir={self.dir}"]


def run_name(overrides) -> str:
    """A directory name for a run: its overrides (sorted, unsafe characters replaced) and 8 hex
    digits of their hash, so two runs never share a directory and every machine names a run alike."""
    ov = sorted(overrides)
    h = hashlib.sha1("\n".join(ov).encode()).hexdigest()[:8]
    slug = "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", o.lstrip("+")) for o in ov)  # no '=' or ',' (Hydra's grammar)
    return f"{slug[:150]}__{h}"


def _mal_tokens(v) -> int:
    s = str(v).strip().lower()
    return int(float(s[:-1]) * 1024) if s.endswith("k") else int(float(s))


def _base(figure: str, scale: str, job: list) -> dict:
    """The values of the figure's composed config that the cost estimate reads."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from dpsim.figures import config_name
    with initialize_config_module(config_module="dpsim.conf", version_base=None):
        cfg = compose(config_name="config", overrides=[f"+figure={config_name(figure, scale)}", *job])
        c = OmegaConf.to_container(cfg, resolve=False)
    w, e = c.get("workload", {}), c.get("experiment", {})
    return {"mode": e.get("mode", "offline"), "agents": w.get("agents"), "mal": w.get("mal"),
            "aps": w.get("aps"), "append_scale": w.get("append_scale", 1.0), "gen_scale": w.get("gen_scale", 1.0),
            "max_sim_s": e.get("max_sim_s")}


def estimate(v: dict, search: bool = False) -> float:
    """Rough requests of a run with config values ``v`` (see the module docstring)."""
    mal = _mal_tokens(v["mal"])
    turns = TURNS.get(mal) or TURNS[min(TURNS, key=lambda m: abs(m - mal))]
    share = GEN_SHARE.get(mal, 0.25)
    a, g = float(v.get("append_scale") or 1.0), float(v.get("gen_scale") or 1.0)
    turns = turns / ((1 - share) * a + share * g)  # truncation at the MAL: fewer, longer turns
    if v["mode"] == "online":
        return float(v["aps"]) * float(v["max_sim_s"] or 7200.0) * (turns + 1) * (PROBES_PER_SEARCH if search else 1)
    return float(v["agents"]) * (turns + 1)


def plan(figures, scale: str, out: Path, seeds: str) -> list[Run]:
    """Every run of ``figures`` at ``scale`` with ``seeds``, biggest estimated cost first."""
    from dpsim.figures import runs_for
    runs = []
    for f in figures:
        jobs = runs_for(f, scale, [f"seed={seeds}"])
        search = f in ADAPTIVE
        base = _base(f, scale, [o for o in jobs[0] if not o.startswith("seed=")]) if jobs else {}
        for job in jobs:
            kv = {o.split("=", 1)[0].lstrip("+"): o.split("=", 1)[1] for o in job}
            v = dict(base)
            for k in ("agents", "mal", "aps", "append_scale", "gen_scale"):
                if f"workload.{k}" in kv:
                    v[k] = kv[f"workload.{k}"]
            if search and v.get("aps") is not None:
                v["aps"] = _search_start(f, scale, kv.get("model"), v["aps"])
            r = Run(f, scale, list(job), out / f"{f}-{scale}" / run_name(job), search=search, info=kv)
            r.cost = estimate(v, search)
            runs.append(r)
    runs.sort(key=lambda r: -r.cost)  # stable: ties keep the figures' order
    return runs


def _search_start(figure, scale, model, default):
    from dpsim.figures import sweeper_config
    st = sweeper_config(figure, scale).get("start")
    if isinstance(st, dict):
        return st.get(model, default)
    return st if st is not None else default


def print_plan(runs: list[Run], file=sys.stdout) -> None:
    tot = sum(r.cost for r in runs)
    todo = [r for r in runs if not r.done]
    print(f"{len(runs)} runs ({len(runs) - len(todo)} done), estimated {tot:,.0f} requests "
          f"({sum(r.cost for r in todo):,.0f} to do); biggest first", file=file)
    by = {}
    for r in runs:
        n, c = by.get(r.figure, (0, 0.0))
        by[r.figure] = (n + 1, c + r.cost)
    for f, (n, c) in by.items():
        print(f"  {f:<20} {n:>4} {'searches' if f in ADAPTIVE else 'runs':<8} ~{c:>16,.0f} requests", file=file)
    for r in runs:
        st = "done" if r.done else ("failed" if r.failed else "todo")
        print(f"{r.cost:>14,.0f}  {st:<6} {r.figure:<18} {' '.join(r.overrides)}", file=file)


def execute(runs: list[Run], jobs: int, deadline_s: float | None = None, retry_failed: bool = False,
            poll_s: float = 0.5, log=sys.stderr) -> dict:
    """Run the runs not done yet, ``jobs`` at a time, in the given order; start none after
    ``deadline_s`` seconds.  Returns counts: started, ok, failed, skipped (done before), left."""
    t0 = time.monotonic()
    todo = [r for r in runs if not r.done and (retry_failed or not r.failed)]
    counts = {"skipped": len(runs) - len(todo), "started": 0, "ok": 0, "failed": 0, "left": 0}
    env = {**os.environ, **ENV_ONE_THREAD}
    running: list = []
    i = 0
    while i < len(todo) or running:
        while i < len(todo) and len(running) < jobs:
            if deadline_s is not None and time.monotonic() - t0 >= deadline_s:
                counts["left"] = len(todo) - i
                i = len(todo)
                print(f"[paper] deadline: {counts['left']} runs not started", file=log, flush=True)
                break
            r = todo[i]
            i += 1
            if r.search and r.dir.exists():
                # A search killed half-way left probe folders that --collect would read beside
                # the new ones: start it clean (its probes cannot be resumed).
                shutil.rmtree(r.dir)
            r.dir.mkdir(parents=True, exist_ok=True)
            fh = open(r.dir / "driver.log", "w")
            p = subprocess.Popen(r.command(), stdout=fh, stderr=subprocess.STDOUT, env=env)
            running.append((r, p, fh, time.monotonic()))
            counts["started"] += 1
            print(f"[paper] start {counts['started']}/{len(todo)} {r.figure} {' '.join(r.overrides)} "
                  f"(~{r.cost:,.0f} req)", file=log, flush=True)
        still = []
        for r, p, fh, ts in running:
            if p.poll() is None:
                still.append((r, p, fh, ts))
                continue
            fh.close()
            ok = p.returncode == 0 and r.done
            counts["ok" if ok else "failed"] += 1
            print(f"[paper] {'done' if ok else 'FAILED rc=%d' % p.returncode} {r.figure} {' '.join(r.overrides)} "
                  f"in {time.monotonic() - ts:.0f} s ({r.dir / 'driver.log'})", file=log, flush=True)
        running = still
        if running:
            time.sleep(poll_s)
    return counts


def sweep_table(runs: list[Run]):
    """The sweep table (dpsim.sweep.collect's rows) of the runs that finished or failed; column
    ``_run_dir`` the run's directory (a capacity probe's own)."""
    import pandas as pd

    from dpsim.sweep import collect
    frames = []
    plain = [r for r in runs if not r.search]
    if plain:
        d = plain[0].dir.parent
        names = {r.dir.name for r in plain if not r.interrupted}  # a partial summary is no result
        t = _collect_some(d, names)
        if len(t):
            frames.append(t.assign(_run_dir=[str(d / j) for j in t.job]))
    for r in runs:
        if r.search and r.dir.exists():
            t = collect(r.dir)
            if len(t):
                frames.append(t.assign(_run_dir=[str(r.dir / j) for j in t.job], job=[f"{r.dir.name}/{j}" for j in t.job]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _collect_some(d: Path, names: set):
    """dpsim.sweep.collect of the run directories ``names`` of ``d`` only (others -- older plans,
    another scale -- are left out): collected from a directory of links to them."""
    import tempfile

    from dpsim.sweep import collect
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            if (d / n).is_dir():
                os.symlink(d / n, Path(tmp) / n)
        return collect(tmp)


def collect_figure(figure: str, scale: str, runs: list[Run], results: Path) -> list[str]:
    """Tables and figure of one figure from its finished runs -> ``results``; returns the files."""
    import yaml

    from dpsim.figures import draw
    runs = [r for r in runs if r.figure == figure]
    df = sweep_table(runs)
    if not len(df):
        return []
    results.mkdir(parents=True, exist_ok=True)
    figdir = runs[0].dir.parent
    figdir.mkdir(parents=True, exist_ok=True)
    from dpsim.figures import PLOTS, sweeper_config  # noqa: F401
    plot = _plot_of(figure, scale)
    (figdir / "multirun.yaml").write_text(yaml.safe_dump({"figure": {"name": figure, "scale": scale, "plot": plot}}))
    files = draw(figdir, results, df=df)
    df.drop(columns=["_run_dir"]).to_csv(results / f"{figure}.csv", index=False)
    return files + [f"{figure}.csv"]


def _plot_of(figure: str, scale: str) -> str:
    from hydra import compose, initialize_config_module

    from dpsim.figures import config_name
    with initialize_config_module(config_module="dpsim.conf", version_base=None):
        return str(compose(config_name="config", overrides=[f"+figure={config_name(figure, scale)}"]).figure.plot)


def main(argv=None) -> int:
    from dpsim.figures import names
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("figures", nargs="*", help=f"figures to run (default: all): {', '.join(names())}")
    ap.add_argument("--scale", default="paper", choices=["paper", "small"])
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: 0,1,2 paper, 0,1 small)")
    ap.add_argument("--out", default="runs/paper", help="where the run directories go (default runs/paper)")
    ap.add_argument("--results", default="results", help="where --collect writes <figure>-<scale>/ (default results)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at once (default: CPU count)")
    ap.add_argument("--deadline-s", type=float, default=None, help="start no run after this many seconds")
    ap.add_argument("--retry-failed", action="store_true", help="run again the runs that failed")
    ap.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                    help="keep only runs with this override (repeatable: all must hold), e.g. --only model=ds27b; "
                         "also splits a plan across machines")
    ap.add_argument("--plan", action="store_true", help="print every run with its estimated cost and stop")
    ap.add_argument("--collect", action="store_true", help="build tables and figures of the finished runs and stop")
    a = ap.parse_args(argv)
    figs = a.figures or names()
    bad = [f for f in figs if f not in names()]
    if bad:
        ap.error(f"unknown figure(s) {bad}; choose from {names()}")
    if a.jobs < 1:
        ap.error(f"--jobs must be >= 1 (got {a.jobs})")
    seeds = a.seeds or ("0,1,2" if a.scale == "paper" else "0,1")
    if not re.fullmatch(r"\d+(,\d+)*", seeds):
        ap.error(f"--seeds must be comma-separated integers like 0,1,2 (got {seeds!r})")
    runs = plan(figs, a.scale, Path(a.out).resolve(), seeds)
    for o in a.only:
        if "=" not in o:
            ap.error(f"--only expects KEY=VALUE, e.g. --only model=ds27b (got {o!r})")
        runs = [r for r in runs if o in r.overrides]
    if a.plan:
        print_plan(runs)
        return 0
    if not a.collect:
        c = execute(runs, a.jobs, a.deadline_s, a.retry_failed)
        print(f"[paper] {c}", file=sys.stderr)
    for f in figs:
        out = Path(a.results) / f"{f}-{a.scale}"
        for name in collect_figure(f, a.scale, runs, out):
            print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
