"""The bundled WEKA sample: package data, licence, provenance, reproducible conversion."""
from __future__ import annotations

import json

from dpsim.workload import bundled_path, read_trajectories
from dpsim.workload.bundle import build

from .conftest import REPO, need


def test_bundled_file_is_package_data_and_small():
    p = bundled_path()
    assert p.exists() and p.parent.name == "data"
    repo_copy = REPO / "traces" / "weka_sample.jsonl"
    assert p.read_bytes() == repo_copy.read_bytes()
    assert p.stat().st_size < 1_000_000
    trajs = read_trajectories(p)
    assert 10 <= len({t.meta["session"] for t in trajs}) <= 16
    assert 300 <= sum(t.n_rounds for t in trajs) <= 1500
    assert any("/sub_" in t.id for t in trajs)


def test_bundled_header_names_origin_and_licence():
    header = json.loads(bundled_path().read_text().splitlines()[0])
    assert "Apache-2.0" in header["licence"]
    assert "github.com/callanjfox/kv-cache-tester" in header["source"]
    assert "c9b3da54fc2f555942720527b86c1979fcae9bb2" in header["source"]
    lic = (REPO / "traces" / "LICENSE-weka.md").read_text()
    assert "Apache" in lic and "c9b3da54fc2f555942720527b86c1979fcae9bb2" in lic and "dpsim" in lic
    for s in header["sessions"]:
        assert s in lic


def test_bundle_is_reproducible_from_shared_traces(tmp_path):
    weka = need("weka_claude_code")
    out = build(weka, [tmp_path / "w.jsonl"])
    assert out.read_bytes() == bundled_path().read_bytes()


def test_bundled_hit_ratio_and_consistency():
    trajs = read_trajectories(bundled_path())
    ratio = sum(int(t.hit.sum()) for t in trajs) / sum(int(t.prompt.sum()) for t in trajs)
    assert 0.94 < ratio < 0.98
