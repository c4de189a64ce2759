"""Where the simulation's objects live: CPython's object arenas on transparent huge pages.

A large cluster's simulation touches a request, its agent, a transfer, links and engines that
lie far apart in memory at every event; with 4 KiB pages each of those is likely a TLB miss too
(a two-level page walk in a virtual machine).  ``dpsim._hugearena`` (compiled from
``_hugearena.pyx`` at install, Linux) serves CPython's small-object arenas from 2 MiB-aligned
chunks advised ``MADV_HUGEPAGE``.  dpsim installs it when first imported, so the agents, engines
and links built at set-up land there as well as everything made while the simulation runs.

It moves objects, never results: request tables are byte-identical with and without it
(tests/test_hugearena.py).  ``DPSIM_HUGE_PAGES=0`` leaves CPython's allocator alone.  Freed
arenas are kept for reuse, not returned to the system, so a process holds on to its peak of
arena memory (a notebook that runs a large simulation and then a small one keeps the first's
footprint, as CPython's own fragmentation often does anyway).

Large blocks (lists and dict tables over 512 bytes, NumPy arrays) come from glibc's malloc,
which reads its own switch at process start only: ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``
(glibc >= 2.35).  ``python -m dpsim`` sets it for itself (:func:`reexec_with_malloc_thp`).

:data:`ACTIVE` says whether the arenas were installed, :data:`REASON` why or why not.
"""
from __future__ import annotations

import importlib
import os
import sys

#: The glibc tunable that makes malloc advise its heap and mappings MADV_HUGEPAGE.
MALLOC_TUNABLE = "glibc.malloc.hugetlb=1"


def thp_mode() -> str:
    """The kernel's transparent-huge-page mode (``always``/``madvise``/``never``), or
    ``"unknown"`` where it cannot be read (not Linux, or a restricted /sys)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            text = f.read()
    except OSError:
        return "unknown"
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else "unknown"


def _off() -> str:
    """Why neither half applies here ("" when they may): the switch, or not Linux."""
    if os.environ.get("DPSIM_HUGE_PAGES", "") == "0":
        return "DPSIM_HUGE_PAGES=0"
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"
    return ""


def _select() -> tuple[bool, str]:
    off = _off()
    if off:
        return False, off
    try:
        _hugearena = importlib.import_module("dpsim._hugearena")
    except ImportError:
        return False, "not built (DPSIM_NO_EXT=1, no compiler, or a source checkout)"
    _hugearena.install()
    mode = thp_mode()
    if mode == "never":
        return True, "installed, but the kernel's transparent huge pages are off (never): ordinary pages"
    return True, f"installed (transparent_hugepage: {mode})"


def stats() -> dict:
    """The arena allocator's counters (chunks, arenas new/reused/freed, ...); {} if not active."""
    if not ACTIVE:
        return {}
    return importlib.import_module("dpsim._hugearena").stats()


def reexec_with_malloc_thp(argv: list[str] | None = None) -> None:
    """Restart this process with :data:`MALLOC_TUNABLE` in ``GLIBC_TUNABLES`` (glibc reads it at
    start only), unless it is there already, ``DPSIM_HUGE_PAGES=0``, or this is not Linux with a
    kernel offering huge pages.  Call it first thing in an entry point: nothing before it is kept.
    ``os.execv`` keeps the process id, its open files and the rest of the environment."""
    if _off():
        return
    have = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in have or thp_mode() not in ("always", "madvise"):
        return
    os.environ["GLIBC_TUNABLES"] = f"{have}:{MALLOC_TUNABLE}" if have else MALLOC_TUNABLE
    args = list(sys.orig_argv if argv is None else argv)
    try:
        os.execv(sys.executable, [sys.executable] + args[1:])
    except OSError:  # cannot restart (e.g. a frozen or embedded interpreter): run as is
        if have:
            os.environ["GLIBC_TUNABLES"] = have
        else:
            del os.environ["GLIBC_TUNABLES"]


ACTIVE, REASON = _select() if __name__ == "dpsim.hugepages" else (False, "not imported as dpsim.hugepages")
