"""The canonical dpsim trajectory JSONL (see dpsim/workload/trajectory.py and traces/FORMAT.md)."""
from __future__ import annotations

import json
from pathlib import Path

from ..trajectory import FORMAT_NAME, Trajectory, read_trajectories

FORMAT = "canonical"
ALIASES = ("dpsim", "jsonl", "trajectories")
ORDER = 10             # place in readers.FORMATS
SNIFF_PRIORITY = 10    # readers.sniff tries lower values first


def sniff(path: Path, head: str) -> bool:
    first = head.lstrip().split("\n", 1)[0]
    if FORMAT_NAME not in first:
        return False
    try:
        return json.loads(first).get("format") == FORMAT_NAME
    except (json.JSONDecodeError, AttributeError):
        return True  # header cut by the sniff window or malformed: let the reader say what is wrong


def read(path: str | Path) -> list[Trajectory]:
    return read_trajectories(path)
