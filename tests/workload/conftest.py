"""Shared fixtures: the real traces under shared/traces (DPSIM_SHARED_TRACES, default
``<repo>/../shared/traces``); tests that need them skip with the reason when absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_traces_dir() -> Path:
    return Path(os.environ.get("DPSIM_SHARED_TRACES", REPO.parent / "shared" / "traces"))


def need(rel: str) -> Path:
    """Path of a shared trace file, or skip the test naming the missing path and the env var."""
    p = shared_traces_dir() / rel
    if not p.exists():
        pytest.skip(f"real trace {p} not found (set DPSIM_SHARED_TRACES to the shared/traces directory)")
    return p


@pytest.fixture(scope="session")
def shared() -> Path:
    d = shared_traces_dir()
    if not d.is_dir():
        pytest.skip(f"shared traces directory {d} not found (set DPSIM_SHARED_TRACES)")
    return d


@pytest.fixture(scope="session")
def weka_dir(shared) -> Path:
    return need("weka_claude_code")


@pytest.fixture(scope="session")
def weka_all(weka_dir):
    from dpsim.workload.readers import load

    return load(weka_dir, "weka")


@pytest.fixture(scope="session")
def weka_csv_all(weka_dir):
    from dpsim.workload.readers import load

    return load(weka_dir / "derived_all_requests.csv")
