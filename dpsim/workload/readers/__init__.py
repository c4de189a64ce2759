"""Trace readers: one module per source format, each ``read(path) -> list[Trajectory]``.

``load(path, fmt=None)`` sniffs the format from the file's first bytes when ``fmt`` is None:

========== ==========================================================================
format     recognised by
========== ==========================================================================
canonical  JSONL whose header has ``"format": "dpsim-trajectories"``
weka       a JSON object with ``requests`` and ``hash_ids``/``block_size``; or a directory
           of such ``*.json`` session files
weka_csv   CSV header with ``session_id`` and ``prefix_hit_tokens`` (derived_all_requests.csv)
mooncake   JSONL records with ``input_length`` and ``hash_ids``
azure      CSV header ``TIMESTAMP,ContextTokens,GeneratedTokens``
========== ==========================================================================

Every defect raises one :class:`~dpsim.workload.trajectory.TraceError` naming file, record and field.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from ..trajectory import TraceError, Trajectory

FORMATS = ("canonical", "weka", "weka_csv", "mooncake", "azure")
_MODULES = {"canonical": "canonical", "weka": "weka", "weka_csv": "weka_csv",
            "mooncake": "mooncake", "azure": "azure"}
ALIASES = {"dpsim": "canonical", "jsonl": "canonical", "trajectories": "canonical",
           "weka_json": "weka", "claude_code": "weka", "weka-csv": "weka_csv", "derived": "weka_csv",
           "azure_llm": "azure", "splitwise": "azure"}


def _module(fmt: str):
    return importlib.import_module(f".{_MODULES[fmt]}", __name__)


def normalise_format(fmt: str) -> str:
    f = str(fmt).strip().lower()
    f = ALIASES.get(f, f)
    if f not in FORMATS:
        raise TraceError(f"unknown trace format {fmt!r}; use one of {', '.join(FORMATS)} "
                         f"(or leave it unset to sniff)")
    return f


def sniff(path: str | Path) -> str:
    """The format name of ``path`` from its first bytes; TraceError if none matches."""
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: file not found")
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if files and _module("weka").sniff(files[0], _head(files[0])):
            return "weka"
        raise TraceError(f"{path}: a directory is read only as WEKA session files (*.json); none found")
    head = _head(path)
    if not head.strip():
        raise TraceError(f"{path}: empty file; nothing to sniff")
    for fmt in ("canonical", "weka", "mooncake", "weka_csv", "azure"):
        if _module(fmt).sniff(path, head):
            return fmt
    raise TraceError(f"{path}: unrecognised trace format; pass format= one of {', '.join(FORMATS)}")


def _head(path: Path, n: int = 4096) -> str:
    with open(path, "rb") as f:
        return f.read(n).decode("utf-8", errors="replace")


def load(path: str | Path, fmt: str | None = None) -> list[Trajectory]:
    """Read any supported trace into canonical trajectories (ids made unique with ``#k``)."""
    path = Path(path)
    fmt = sniff(path) if fmt is None else normalise_format(fmt)
    if not path.exists():
        raise TraceError(f"{path}: file not found")
    try:
        trajs = _module(fmt).read(path)
    except TraceError:
        raise
    except (UnicodeDecodeError, OSError, RecursionError) as e:
        raise TraceError(f"{path}: cannot read as {fmt}: {e}") from None
    if not trajs:
        raise TraceError(f"{path}: no trajectories (empty trace)")
    seen: dict[str, int] = {}
    out = []
    for t in trajs:
        if t.id in seen:
            seen[t.id] += 1
            t = Trajectory(f"{t.id}#{seen[t.id]}", t.append, t.gen, t.think_s, t.prompt, t.hit, meta=t.meta)
        else:
            seen[t.id] = 1
        out.append(t)
    return out


__all__ = ["FORMATS", "load", "sniff", "normalise_format"]
