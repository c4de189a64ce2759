"""The simulation's clock: current time and timers, over a SimPy environment.

A kitchen timer, not a calendar: engines, policies and the network ask "call me back in dt",
nothing more.  The clock keeps its own heap of (time, order, callback) and holds one SimPy
timeout for the earliest of them, so a timer costs a heap push and pop instead of a SimPy
event; callbacks due at the same instant run in the order they were set (as SimPy would run
them).  Only SimPy's public API is used (``env.now``, ``env.timeout``, ``event.callbacks``), so
a real-time environment (hardware-in-the-loop replay) drops in unchanged: SimPy still decides
when "now" is.  The clock counts the timers it runs; that is the run's event count.
"""
from __future__ import annotations

import heapq
import math

INF = math.inf


class Clock:
    __slots__ = ("env", "timers", "_heap", "_seq", "_armed", "_fire_cb", "_running")

    def __init__(self, env) -> None:
        self.env = env
        self.timers = 0  # callbacks run so far
        self._heap: list = []
        self._seq = 0
        self._armed = INF  # earliest time a SimPy timeout is pending for
        self._fire_cb = self._fire
        self._running = False

    @property
    def now(self) -> float:
        return self.env.now

    def timer(self, dt: float, cb) -> None:
        """Call ``cb(None)`` after ``dt`` simulated seconds (now if ``dt <= 0``)."""
        env = self.env
        if dt < 0.0:
            dt = 0.0
        t = env.now + dt  # the same sum SimPy forms, so a timer fires at exactly this time
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, cb))
        if t < self._armed and not self._running:
            self._armed = t
            env.timeout(dt).callbacks.append(self._fire_cb)

    def pending(self) -> int:
        return len(self._heap)

    def _fire(self, _ev) -> None:
        env = self.env
        now = env.now
        heap = self._heap
        if self._running:  # pragma: no cover - SimPy runs one callback at a time
            return
        if self._armed <= now:
            self._armed = INF
        self._running = True
        pop = heapq.heappop
        n = 0
        try:
            while heap and heap[0][0] <= now:
                cb = pop(heap)[2]
                n += 1
                cb(None)
        finally:
            self._running = False
            self.timers += n
        if heap:
            t = heap[0][0]
            if t < self._armed:
                self._arm(now, t)

    def _arm(self, now: float, t: float) -> None:
        """One SimPy timeout at exactly ``t``: SimPy adds the delay to ``now`` itself, so pick
        the delay whose sum is ``t`` (``t - now`` rounds otherwise, by an ulp at most)."""
        d = t - now
        s = now + d
        for _ in range(4):
            if s == t:
                break
            d = math.nextafter(d, INF if s < t else -INF)
            s = now + d
        self._armed = s  # the time SimPy will fire at (t, or an ulp off if none hits it)
        self.env.timeout(d).callbacks.append(self._fire_cb)
