"""A priority queue of ``(time, seq)`` keys, each with two payloads: the to-do list behind the
event loop and the network's completion and wake-up heaps.

Like a stack of dated letters kept in order: you can read the top letter's date and its two
enclosures (:meth:`TimeHeap.top_t`, :meth:`~TimeHeap.top_a`, :meth:`~TimeHeap.top_b`) and take
it off (:meth:`~TimeHeap.pop`).  Keys are unique (``seq`` breaks ties in time), so every correct
heap hands the letters out in the same order.

This file is the pure-Python reference (a ``heapq`` list of tuples).  The compiled build of
``dpsim.net`` uses ``heap.pyx`` beside it instead: the same class over C arrays of keys, so a
sift compares two doubles instead of two tuples (tuple comparisons were most of the cost of a
pop on large clusters, where tens of thousands of timers are pending).  ``tests/test_heap.py``
checks that both hand out the same entries in the same order.
"""
from __future__ import annotations

from heapq import heapify, heappop, heappush

INF = float("inf")


class TimeHeap:
    """Min-heap of ``(t, seq, a, b)`` ordered by ``(t, seq)``."""

    __slots__ = ("_h",)

    def __init__(self, handles: bool = True) -> None:
        # ``handles``: whether the compiled heap keeps positions for ``update``; this one keeps
        # none either way (accepted so that both are made alike).
        self._h: list = []

    def push(self, t: float, seq: int, a, b) -> int:
        """Add an entry; returns its handle for :meth:`update` -- -1 here: this reference keeps
        no handles (the compiled heap does), so callers push again instead."""
        heappush(self._h, (t, seq, a, b))
        return -1

    def update(self, slot: int, t: float, seq: int, a, b) -> None:
        """Re-key the entry with handle ``slot`` in place (the compiled heap only: this one
        hands out no handles, see :meth:`push`)."""
        raise ValueError(f"the pure-Python TimeHeap hands out no handles (got {slot})")

    def size(self) -> int:
        return len(self._h)

    def __len__(self) -> int:
        return len(self._h)

    def top_t(self) -> float:
        """The smallest time (infinity when empty)."""
        h = self._h
        return h[0][0] if h else INF

    def top_seq(self) -> int:
        return self._h[0][1]

    def top_a(self):
        return self._h[0][2]

    def top_b(self):
        return self._h[0][3]

    def pop(self) -> None:
        """Remove the top entry (IndexError when empty)."""
        heappop(self._h)

    def entries(self) -> list:
        """Every entry as a ``(t, seq, a, b)`` tuple, in no particular order."""
        return list(self._h)

    def drop_stale(self, start: int) -> None:
        """The network's compaction: drop every entry ``(t, seq, version, transfer)`` that no
        longer stands -- its ``version`` is not ``start`` (a start entry) and either differs
        from ``transfer.version`` (superseded by a re-rating) or the transfer has ended.  The
        rest come out in the same order (keys are unique)."""
        keep = [e for e in self._h if e[2] == start or (e[2] == e[3].version and e[3].t_end < 0.0)]
        heapify(keep)
        self._h = keep
