"""experiments/tables_md.py: the markdown tables of the committed paper-scale results, and the
calibration check they carry (#11 acceptance: every C1 point and C2 within 10%)."""
from __future__ import annotations

import re

from experiments import tables_md as T


def test_c1_points_within_ten_percent_of_the_committed_grid():
    rows = [l for l in T.c1().splitlines() if l.startswith("| C1")]
    assert len(rows) == len(T.C1) == 11
    for l in rows:
        err = float(re.search(r"\| ([+-][\d.]+)% \|$", l).group(1))
        assert abs(err) <= 10.0, l


def test_c2_gain_at_the_most_agents_within_ten_percent():
    rows = [l for l in T.c2_rows()]
    most = max(rows, key=lambda r: r[0])
    assert abs(most[1] / T.C2_GAIN - 1) <= 0.10


def test_fitted_lists_every_fitted_yaml_value():
    t = T.fitted()
    assert "snic_efficiency | 0.5226" in t
    n_yaml = sum(l.count("# fitted") for p in (T.ROOT / "dpsim" / "conf").rglob("*.yaml")
                 for l in p.read_text().splitlines() if re.match(r"\s*[\w.]+:\s*[^#\s]+\s*# fitted", l))
    assert t.count("\n| ") == n_yaml > 0  # data rows (the header has no newline before it)


def test_unknown_table_is_one_line(capsys):
    assert T.main(["nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]
