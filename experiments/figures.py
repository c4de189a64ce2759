"""The paper's experiments (§S8, §S9) are Hydra configs: dpsim/conf/figure/<name>.yaml (paper
scale) and <name>_small.yaml (a quick version), each a sweep that any launcher runs:

    dpsim -m +figure=offline_grid                                   # one run after another
    dpsim -m +figure=offline_grid_small hydra/launcher=joblib       # local cores
    dpsim -m +figure=online hydra/launcher=submitit_slurm           # a Slurm cluster (or ray)

Its runs are the union of its sweeper's grids (``hydra.sweeper.grids``, dpsim.sweep); its figure
is drawn from the sweep table (dpsim.figures).  This module re-exports the listing and expansion
of dpsim.figures under the names experiments/ always had.

These are predictions: nothing here is tuned to the paper's results beyond the calibration
points (../shared/spec/calibration-points.md).
"""
from __future__ import annotations

from dpsim.figures import PLOTS, config_name, names, runs_for, sweeper_config  # noqa: F401

FIGURES = names()
