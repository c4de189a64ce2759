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
