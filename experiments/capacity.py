"""Online capacity: the largest APS whose run meets the SLO (§S8), found by search, not a ladder.

    dpsim -m +figure=capacity [hydra/launcher=joblib|ray|submitit_slurm]
    dpsim -m +figure=capacity_small                   # a check, ~1 min
    python experiments/run.py capacity --scale paper --jobs 2 [seed=0,1,2,3,4] [hydra.sweeper.tol=0.02]

For each model (its default P/D, MAL 64K; Qwen 32B at 32K) and system (basic, dualpath), one
search (dpsim.sweep.CapacitySearch, run by dpsim.sweep.CapacitySweeper over any launcher): from a
start APS (hydra.sweeper.start), multiply / divide by 2 until one run meets the SLO and one does
not, then bisect geometrically until the bracket is narrower than hydra.sweeper.tol (relative;
5%, small scale 25%).  A run "meets the SLO" when its summary says ``slo_met``.  Arrivals are
Poisson, seeded by the top-level seed (so is the synthetic workload), so a search is
deterministic; every search is repeated once per seed (the figure config's seeds: 0,1,2 at paper
scale, 0,1 small; ``seed=...`` on the command line replaces them), and the capacity is each
seed's own, then averaged with its 95% Student t interval over the seeds.

The sweep directory holds every probe (sweep.parquet), capacity_searches.json (each search's
bracket, runs and convergence) and capacity.png / capacity_summary.csv, whose "max APS within
SLO" is dpsim.report.max_aps_within_slo of the sweep table (the one implementation).
"""
from __future__ import annotations

from pathlib import Path


def summary(sweep):
    """Per model and system (and any other config key that varies): max APS within the SLO
    (dpsim.report.max_aps_within_slo per seed; mean and 95% interval over the seeds), the smallest
    violating APS above it, the runs."""
    from dpsim.figures import capacity_table, table
    return capacity_table(table(sweep))


def run_capacity(scale: str, out: Path, jobs: int = 1, tol: float | None = None, seeds: int | None = None,
                 models: list[str] | None = None, launcher: str | None = None):
    """``dpsim -m +figure=capacity[_small]`` with these options as overrides; returns
    (summary table, sweep table).  ``seeds``: replicates 0..seeds-1 (None: the figure config's)."""
    try:
        from experiments.run import run_figure
    except ImportError:  # run as a script: experiments/ itself is on sys.path
        from run import run_figure
    ov = []
    if tol is not None:
        ov.append(f"hydra.sweeper.tol={tol}")
    if seeds is not None:
        ov.append("seed=" + ",".join(str(s) for s in range(int(seeds))))
    if models:
        ov.append("model=" + ",".join(models))
    df = run_figure("capacity", scale, Path(out), jobs, launcher, ov)
    return summary(df), df
