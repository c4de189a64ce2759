"""`dpsim trace` subcommands through trace_cli.main."""
from __future__ import annotations

import json
import re

import pytest

from dpsim.workload import read_trajectories
from dpsim.workload.trace_cli import main

from .conftest import REPO


def test_stats_weka_sessions(weka_dir, capsys, tmp_path):
    assert main(["stats", str(weka_dir), "--out", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    m = re.search(r"prefix-hit ratio: ([\d.]+)% of input tokens", out)
    assert m and 95.0 <= float(m.group(1)) <= 97.5  # SOURCES.md: 96.4% (all 710 sessions)
    for row in ("turns / trajectory", "input tokens / request", "output tokens / request", "gap"):
        assert row in out
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert {"turns.png", "input.png", "output.png", "gaps.png"} <= set(pngs)
    assert all((tmp_path / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    st = json.loads((tmp_path / "plots" / "stats.json").read_text())
    assert st["rounds"] == st["input"]["n"]


def test_convert_then_validate(weka_dir, tmp_path, capsys):
    out = tmp_path / "conv.jsonl"
    src = weka_dir / "trace_0021.json"
    assert main(["convert", str(src), str(out)]) == 0
    header = json.loads(out.read_text().splitlines()[0])
    assert "Apache-2.0" in header["licence"]
    assert main(["validate", str(out)]) == 0
    assert "OK" in capsys.readouterr().out
    assert read_trajectories(out)[0].n_rounds == len(json.loads(src.read_text())["requests"])


def test_validate_reports_error_and_exit_1(tmp_path, capsys):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"format": "dpsim-trajectories", "version": 1}\n{"id": "a", "rounds": [[5, 2, 0], [3, -1, 0]]}\n')
    assert main(["validate", str(p)]) == 1
    err = capsys.readouterr().err
    assert "bad.jsonl:2" in err and "round 1" in err and "'gen'" in err
    assert main(["validate", str(tmp_path / "missing.jsonl")]) == 1


def test_validate_bundled():
    assert main(["validate", str(REPO / "traces" / "weka_sample.jsonl")]) == 0


@pytest.mark.parametrize("mal", ["32k", "48k", "64k"])
def test_generate_prints_fit(mal, capsys, tmp_path):
    out = tmp_path / "g.jsonl"
    assert main(["generate", "--mal", mal, "--n", "500", "--seed", "0", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    rows = [ln for ln in text.splitlines() if ln.strip().endswith(("yes", "NO"))]
    assert len(rows) == 5 and all(r.strip().endswith("yes") for r in rows)
    for r in rows:
        err = float(re.search(r"([+-][\d.]+)%", r).group(1))
        assert abs(err) <= 5.0
    assert len(read_trajectories(out)) == 500


def test_generate_bad_mal(capsys):
    assert main(["generate", "--mal", "lots"]) == 1
    assert "mal" in capsys.readouterr().err
