"""The simulation's clock: current time and timers, over a SimPy environment.

A kitchen timer, not a calendar: engines and policies ask "call me back in dt", nothing more.
Only SimPy's public API is used (``env.now``, ``env.timeout``, ``event.callbacks``), so a
real-time environment (hardware-in-the-loop replay) drops in unchanged.  The clock counts the
timers it sets; with the network's own wake-ups that is the run's event count.
"""
from __future__ import annotations


class Clock:
    __slots__ = ("env", "timers")

    def __init__(self, env) -> None:
        self.env = env
        self.timers = 0

    @property
    def now(self) -> float:
        return self.env.now

    def timer(self, dt: float, cb) -> None:
        """Call ``cb(event)`` after ``dt`` simulated seconds (now if ``dt <= 0``)."""
        self.timers += 1
        ev = self.env.timeout(dt if dt > 0.0 else 0.0)
        ev.callbacks.append(cb)
