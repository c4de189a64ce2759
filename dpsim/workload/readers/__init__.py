"""Trace readers: one module per source format, discovered from this package.

``load(path, fmt=None)`` sniffs the format from the file's first bytes when ``fmt`` is None.

A reader is one file here, ``<fmt>.py`` (modules starting with ``_`` are helpers, not readers),
that defines:

* ``FORMAT``: its name (the ``workload.format`` / ``--format`` value);
* ``ALIASES`` (optional): other names accepted for it;
* ``ORDER`` (optional, default 100): its place in :data:`FORMATS`, the list that help texts and
  error messages show;
* ``SNIFF_PRIORITY`` (optional, default 100): sniffers are tried from the lowest value up and the
  first match wins, so specific formats take low values and loose ones high;
* ``sniff(path, head) -> bool`` (``head``: the file's first 4 KiB) and
  ``read(path) -> list[Trajectory]``.

The shipped readers (each module's ``sniff`` says what it recognises): ``canonical``
(dpsim trajectory JSONL), ``weka`` (WEKA session JSON, or a directory of them), ``weka_csv``
(derived_all_requests.csv), ``mooncake`` (Mooncake JSONL), ``azure`` (Azure LLM CSV).

Every defect raises one :class:`~dpsim.workload.trajectory.TraceError` naming file, record and field.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

from ..trajectory import TraceError, Trajectory

READERS: dict[str, ModuleType] = {}   # format name -> reader module
FORMATS: tuple[str, ...] = ()          # format names in ORDER (rebuilt by add_reader/remove_reader)
ALIASES: dict[str, str] = {}           # alias -> format name
SNIFF_ORDER: tuple[str, ...] = ()      # format names in the order sniff() tries them


def _rebuild() -> None:
    global FORMATS, SNIFF_ORDER
    mods = sorted(READERS.values(), key=lambda m: (getattr(m, "ORDER", 100), m.FORMAT))
    FORMATS = tuple(m.FORMAT for m in mods)
    ALIASES.clear()
    ALIASES.update({a: m.FORMAT for m in mods for a in getattr(m, "ALIASES", ())})
    SNIFF_ORDER = tuple(m.FORMAT for m in sorted(mods, key=lambda m: (getattr(m, "SNIFF_PRIORITY", 100),
                                                                       getattr(m, "ORDER", 100), m.FORMAT)))


def add_reader(mod: ModuleType) -> ModuleType:
    """Register a reader module (done for every module of this package when it loads)."""
    names = [mod.FORMAT, *getattr(mod, "ALIASES", ())]
    for n in names:
        if n in READERS or n in ALIASES:
            raise ValueError(f"trace format {n!r} registered twice")
    if len(set(names)) != len(names):
        raise ValueError(f"trace format {mod.FORMAT!r} lists a name twice")
    READERS[mod.FORMAT] = mod
    _rebuild()
    return mod


def remove_reader(fmt: str) -> None:
    """Drop a registered reader (for tests)."""
    READERS.pop(fmt, None)
    _rebuild()


def _module(fmt: str) -> ModuleType:
    return READERS[fmt]


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
    for fmt in SNIFF_ORDER:
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


for _m in pkgutil.iter_modules(__path__):  # every reader module registers itself by its FORMAT
    if not _m.name.startswith("_"):
        add_reader(importlib.import_module(f"{__name__}.{_m.name}"))

__all__ = ["FORMATS", "READERS", "ALIASES", "SNIFF_ORDER", "add_reader", "remove_reader", "load",
           "sniff", "normalise_format"]
