"""The simulation's clock: current time and timers.

A kitchen timer, not a calendar: engines and policies ask "call me back in dt"
(``clock.timer(dt, fn)`` calls ``fn(None)``; ``clock.timer(dt, fn, arg)`` calls ``fn(arg)``),
and read ``clock.now`` (the compiled core calls ``clock.time()``, the same value as a C call).
One refinement: ``seq = clock.reserve()`` takes the place in line a
timer set now would get and ``clock.timer_at(t, seq, fn, arg)`` sets it later (before it is due),
so a timer that may not be needed after all (a decode batch's finish that the next join moves)
is set only if it is, and rings exactly where it would have.  The clock is the event loop itself
(:class:`dpsim.net.EventLoop`, compiled with the network when the extension is built), or
:class:`dpsim.net.SimpyClock` over a SimPy environment when one is given (a real-time
environment for hardware-in-the-loop replay drops in unchanged).  Either counts the timers it
rings (``events``).
"""
from __future__ import annotations

from dpsim.net import EventLoop, SimpyClock, as_clock

Clock = EventLoop

__all__ = ["Clock", "EventLoop", "SimpyClock", "as_clock"]
