"""Run one of the paper's experiments -- a thin wrapper over ``dpsim -m +figure=<name>``.

    python experiments/run.py offline_grid --scale small --out results/offline_grid
    python experiments/run.py online --scale paper --jobs 2          # hydra/launcher=joblib
    python experiments/run.py capacity --scale paper --launcher submitit_slurm
    python experiments/run.py --list | --dry-run FIGURE | --plot SWEEP_DIR

is the same as

    dpsim -m +figure=offline_grid_small hydra.sweep.dir=results/offline_grid [hydra/launcher=...]

(dpsim/conf/figure/*.yaml; see docs/sweeps.md).  The sweep directory gets one folder per run,
sweep.parquet/sweep.csv (one row per run, failed runs with their error), <figure>.png and
<figure>_summary.csv (drawn from the sweep table by dpsim.figures; ``dpsim report DIR`` redraws).
Only dpsim is imported (no sys.path edits): also ``python -m experiments.run``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

LAUNCHERS = ("basic", "joblib", "ray", "ray_cluster", "submitit_local", "submitit_slurm")


def _figures() -> list[str]:
    from dpsim.figures import names
    return names()


def dpsim_args(name: str, scale: str, out: Path, jobs: int = 1, launcher: str | None = None,
               overrides=()) -> list[str]:
    """The ``dpsim`` command line of a figure."""
    if name not in _figures():
        raise ValueError(f"unknown figure {name!r}; choose from {_figures()}")
    if scale not in ("paper", "small"):
        raise ValueError(f"scale must be 'paper' or 'small' (got {scale!r})")
    args = ["-m", f"+figure={name if scale == 'paper' else name + '_small'}", f"hydra.sweep.dir={out}"]
    launcher = launcher or ("joblib" if jobs > 1 else None)
    if launcher and launcher != "basic":
        args.append(f"hydra/launcher={launcher}")
    if launcher == "joblib" and jobs > 1:
        args.append(f"hydra.launcher.n_jobs={jobs}")
    return args + list(overrides)


def run_figure(name: str, scale: str, out: Path, jobs: int = 1, launcher: str | None = None, overrides=()):
    """Run the figure's sweep (``dpsim -m ...`` in a child process) and return its sweep table."""
    import pandas as pd

    args = dpsim_args(name, scale, Path(out), jobs, launcher, overrides)
    print("dpsim " + " ".join(args), file=sys.stderr)
    p = subprocess.run([sys.executable, "-m", "dpsim", *args])
    if p.returncode != 0:
        raise SystemExit(p.returncode)
    return pd.read_parquet(Path(out) / "sweep.parquet")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("figure", nargs="?", help="a figure name (--list)")
    ap.add_argument("overrides", nargs="*", help="more dpsim overrides, e.g. seed=0,1 model=ds27b")
    ap.add_argument("--scale", default="small", choices=["small", "paper"])
    ap.add_argument("--out", default=None, help="the sweep directory (default results/<figure>-<scale>)")
    ap.add_argument("--jobs", type=int, default=1, help="parallel runs on local cores (hydra/launcher=joblib)")
    ap.add_argument("--launcher", default=None, choices=LAUNCHERS, help="a Hydra launcher (default: basic, "
                    "or joblib with --jobs)")
    ap.add_argument("--list", action="store_true", help="list the figures and their run counts")
    ap.add_argument("--dry-run", action="store_true", help="print the dpsim command and each run's overrides")
    ap.add_argument("--plot", metavar="SWEEP_DIR", help="(re)draw the figure of an existing sweep directory")
    a = ap.parse_args(argv)
    if a.plot:
        from dpsim.figures import draw
        files = draw(a.plot)
        if not files:
            print(f"{a.plot}: not a figure sweep with runs (no multirun.yaml naming a figure, or no runs)",
                  file=sys.stderr)
            return 2
        for f in files:
            print(Path(a.plot) / f)
        return 0
    from dpsim.figures import runs_for
    if a.list or not a.figure:
        for f in _figures():
            how = "searches" if f == "capacity" else "runs"
            print(f"{f:<14} small: {len(runs_for(f, 'small')):>3} {how}   paper: {len(runs_for(f, 'paper')):>3} {how}"
                  f"   (dpsim -m +figure={f}[_small])")
        return 0
    out = Path(a.out or f"results/{a.figure}-{a.scale}")
    try:
        args = dpsim_args(a.figure, a.scale, out, a.jobs, a.launcher, a.overrides)
    except ValueError as e:
        ap.error(str(e))
    if a.dry_run:
        print("dpsim " + " ".join(args))
        if a.figure == "capacity":
            print("# adaptive: one search of workload.aps per line (dpsim.sweep.CapacitySweeper)")
        for r in runs_for(a.figure, a.scale, a.overrides):
            print("  " + " ".join(r))
        return 0
    run_figure(a.figure, a.scale, out, a.jobs, a.launcher, a.overrides)
    summ = out / f"{a.figure}_summary.csv"
    if summ.exists():
        print(summ.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
