"""The one interface every real transport implements.

A transport moves bytes between *locations* (strings such as ``"host"``,
``"host_pageable"``, ``"cuda:0"``, ``"file"``, ``"rank0"``) and reports the
time each move took, measured on the hardware (host clock, CUDA events, or a
completion queue).  Every transport is usable alone::

    from dpsim.hw import get_transport
    t = get_transport("cpu")
    t.check()                       # raises dpsim.hw.TransportUnavailable if it can't run
    secs = t.transfer(1 << 20, src="host", dst="host")
    times = t.transfer_concurrent([TransferSpec(1 << 20), TransferSpec(1 << 20)])
    total = t.transfer_blocks(61, 64 << 10, mode="loop")
    print(t.describe())

Missing hardware or libraries raise :class:`TransportUnavailable` with one
message naming what is missing and how to get it.
"""
from __future__ import annotations

import abc
import datetime as _dt
import os
import platform
import socket
import sys
from dataclasses import dataclass, field
from typing import Iterable, Sequence

__all__ = [
    "TransportUnavailable",
    "TransferSpec",
    "Route",
    "Transport",
    "host_metadata",
    "PAGE",
]

PAGE = 4096


class TransportUnavailable(RuntimeError):
    """A transport cannot run here.

    The message names what is missing and how to get it, e.g.
    ``"cuda transport: PyTorch is not installed (pip install dpsim-dualpath[torch])"``.
    """

    def __init__(self, transport: str, missing: str, how: str = ""):
        self.transport = transport
        self.missing = missing
        self.how = how
        msg = f"{transport} transport unavailable: {missing}"
        if how:
            msg += f" -- {how}"
        super().__init__(msg)


@dataclass(frozen=True)
class TransferSpec:
    """One transfer of ``nbytes`` from ``src`` to ``dst``."""

    nbytes: int
    src: str | None = None
    dst: str | None = None


@dataclass(frozen=True)
class Route:
    """A (src, dst) pair a transport can measure, and the link kind it exercises."""

    kind: str
    src: str
    dst: str
    # larger sweeps may skip slow routes above this many bytes (None = no cap)
    max_bytes: int | None = None


@dataclass
class BlockResult:
    seconds: float
    method: str = ""  # e.g. "cuMemcpyBatchAsync", "cuda-graph", "preadv"
    extra: dict = field(default_factory=dict)


class Transport(abc.ABC):
    """Base class of the real transports (cpu, file, cuda, nccl, verbs)."""

    #: short name used on the command line
    name: str = "abstract"

    # ------------------------------------------------------------------ setup
    @abc.abstractmethod
    def check(self) -> None:
        """Raise :class:`TransportUnavailable` if this transport cannot run here."""

    def close(self) -> None:  # pragma: no cover - trivial default
        """Release buffers, processes, devices."""

    def __enter__(self):
        self.check()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ---------------------------------------------------------------- routes
    @abc.abstractmethod
    def routes(self) -> list[Route]:
        """The single-transfer routes this transport measures in a size sweep."""

    def concurrency_groups(self) -> list[tuple[str, list[Route]]]:
        """Groups for the concurrency suite: ``(group_name, routes)``.

        ``k`` transfers are spread round-robin over ``routes``: one route means
        k transfers sharing one direction of a link; two routes of opposite
        direction means both directions at once (duplex).
        """
        rs = self.routes()
        return [(f"{rs[0].kind}_same", [rs[0]])] if rs else []

    def block_routes(self) -> list[Route]:
        """Routes for the block-count suite (n small blocks vs one big block)."""
        rs = self.routes()
        return rs[:1]

    def block_modes(self) -> list[str]:
        """Modes :meth:`transfer_blocks` supports besides ``single``."""
        return ["loop", "batched"]

    def max_transfer_bytes(self) -> int:
        """Largest single transfer this machine can hold (memory cap)."""
        return 1 << 30

    # ------------------------------------------------------------- transfers
    @abc.abstractmethod
    def transfer(self, nbytes: int, *, src: str | None = None, dst: str | None = None,
                 verify: bool = False) -> float:
        """Move ``nbytes`` from ``src`` to ``dst`` once; return measured seconds.

        ``verify=True`` fills the source with a fresh pattern first and checks
        the destination afterwards (outside the timed region); a mismatch
        raises ``AssertionError``.
        """

    @abc.abstractmethod
    def transfer_concurrent(self, specs: Sequence[TransferSpec], *,
                            verify: bool = False) -> list[float]:
        """Start all ``specs`` at once; return each one's completion time (s)
        measured from the common start."""

    @abc.abstractmethod
    def transfer_blocks(self, n_blocks: int, block_bytes: int, *, src: str | None = None,
                        dst: str | None = None, mode: str = "loop",
                        verify: bool = False) -> BlockResult:
        """Move ``n_blocks`` blocks of ``block_bytes`` each, scattered in the
        destination (a KV pool).  ``mode``: ``loop`` (one call per block),
        ``batched`` (one batched submission), ``single`` (one contiguous
        transfer of the same total bytes).  Returns the total time."""

    # -------------------------------------------------------------- metadata
    def describe(self) -> dict:
        """Machine metadata (host, versions, devices, options)."""
        d = host_metadata()
        d["transport"] = self.name
        return d

    def kind_of(self, src: str, dst: str) -> str:
        for r in self.routes():
            if r.src == src and r.dst == dst:
                return r.kind
        return f"{src}->{dst}"


def host_metadata() -> dict:
    """Host facts every results table carries."""
    try:
        import numpy as np

        npv = np.__version__
    except Exception:  # pragma: no cover
        npv = None
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return {
        "host": socket.gethostname(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": npv,
        "cpu": cpu,
        "n_cpus": os.cpu_count(),
        "mem_total_bytes": mem,
    }


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (falls back to 4 GiB)."""
    from dpsim.runner import meminfo_available_bytes
    m = meminfo_available_bytes()
    return 4 << 30 if m is None else m


def round_up(n: int, a: int = PAGE) -> int:
    return ((int(n) + a - 1) // a) * a


def pattern_bytes(nbytes: int, seed: int):
    """A cheap non-constant byte pattern (numpy uint8 array) for verification."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n8 = (nbytes + 7) // 8
    words = rng.integers(0, 2**63 - 1, size=min(n8, 4096), dtype=np.int64)
    if n8 > words.size:
        reps = (n8 + words.size - 1) // words.size
        words = np.tile(words, reps)[:n8]
        # make the tiles differ: add the tile index
        words = words + (np.arange(n8, dtype=np.int64) // 4096)
    return words.view(np.uint8)[:nbytes]


def spread(items: Iterable, k: int) -> list:
    """Round-robin ``k`` picks over ``items``."""
    items = list(items)
    return [items[i % len(items)] for i in range(k)]
