"""Workload: canonical trajectories, trace readers, the §S8 synthetic generator, replay semantics.

Public API (imported lazily so that ``import dpsim.workload`` stays cheap):

* :class:`Trajectory`, :class:`TraceError`, :func:`read_trajectories`, :func:`write_trajectories`
* :func:`bundled_path` -- the bundled WEKA sample (package data)
* :func:`load` -- any supported trace file into trajectories (``dpsim.workload.readers``)
* :func:`generate` -- synthetic §S8 datasets (``dpsim.workload.synthetic``)
* :func:`build_agents` -- replay semantics (``dpsim.workload.replay``)
* :func:`load_workload` -- the agents list from a workload config (``dpsim.workload.source``)
"""
from __future__ import annotations

from .trajectory import TraceError, Trajectory, read_trajectories, write_trajectories

_LAZY = {
    "bundled_path": ("bundle", "bundled_path"),
    "load": ("readers", "load"),
    "generate": ("synthetic", "generate"),
    "build_agents": ("replay", "build_agents"),
    "load_workload": ("source", "load_workload"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{mod}", __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Trajectory", "TraceError", "read_trajectories", "write_trajectories", "bundled_path",
           "load", "generate", "build_agents", "load_workload"]
