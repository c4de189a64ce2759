"""The simulation's event loop: a clock and a to-do list ordered by time.

Like a kitchen timer board: anything can ask "call me back in dt" (:meth:`EventLoop.timer`),
and the loop rings each timer in time order, ties in the order they were set.  That is all the
simulation needs from a discrete-event kernel -- no process (generator) runs in it, every event
is a timeout with one callback -- so a min-heap of ``(time, seq, fn, arg)`` does SimPy's job at
a fraction of its cost per event (no Event object, no callback list, no condition events).  The
order is SimPy's exactly: an entry's time is ``now + dt`` computed the same way and ties go by
the order of scheduling, so results are byte-identical to the SimPy-driven core it replaced.

:class:`SimpyClock` offers the same interface over a SimPy environment, for what genuinely
needs SimPy: the hardware-in-the-loop replay runs in ``simpy.rt.RealtimeEnvironment`` (simulated
time follows wall time) beside SimPy processes that poll the hardware.

Both count the events they run (:attr:`events`), so no one needs SimPy's private attributes.
"""
from __future__ import annotations

from .heap import TimeHeap

INF = float("inf")


class EventLoop:
    """Time (``now``), timers and the loop that runs them.

    ``timer(dt, fn, arg=None)`` calls ``fn(arg)`` after ``dt`` simulated seconds (now, after
    everything already due now, if ``dt <= 0``).  ``run()`` rings timers until :meth:`stop` is
    called (returns True) or none is left (returns False); ``step()`` rings one.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.events = 0  # timers rung
        self._heap = TimeHeap(handles=False)  # push and pop only (no re-keying)
        self._seq = 0
        self._stopped = False

    def time(self) -> float:
        """``now``, as a method: what the compiled core calls (a C call there, which a subclass
        such as :class:`SimpyClock` overrides; a field read could not be)."""
        return self.now

    def timer(self, dt, fn, arg=None) -> None:
        self._seq += 1
        self._heap.push(self.now + dt if dt > 0.0 else self.now, self._seq, fn, arg)

    def reserve(self) -> int:
        """Take the place in line that a :meth:`timer` set now would get, without setting it:
        pass it to :meth:`timer_at` later (e.g. only if a pending timer does not cover it).  The
        timer then rings exactly where it would have, had it been set now."""
        self._seq += 1
        return self._seq

    def timer_at(self, t, seq, fn, arg=None) -> None:
        """Set a timer at absolute time ``t`` (>= now) in the place ``seq`` from :meth:`reserve`.
        It must be set before the loop reaches it: before ``t``, or at ``t`` while running an
        entry that comes before it."""
        self._heap.push(t, seq, fn, arg)

    def peek(self) -> float:
        """The time of the next timer (infinity when none is set)."""
        return self._heap.top_t()

    def pending(self) -> int:
        return self._heap.size()

    def step(self) -> None:
        heap = self._heap
        fn = heap.top_a()
        arg = heap.top_b()
        self.now = heap.top_t()
        heap.pop()
        self.events += 1
        fn(arg)

    def stop(self) -> None:
        """Make :meth:`run` return once the running callback returns."""
        self._stopped = True

    def run(self) -> bool:
        heap = self._heap
        self._stopped = False
        n = 0
        try:
            while heap.size() > 0:
                fn = heap.top_a()
                arg = heap.top_b()
                self.now = heap.top_t()
                heap.pop()
                n += 1
                fn(arg)
                if self._stopped:
                    return True
            return False
        finally:
            self.events += n


class SimpyClock(EventLoop):
    """The :class:`EventLoop` interface over a SimPy environment (``env``), e.g. a real-time
    one for hardware-in-the-loop replay.  Anything else (``process``, ``event``, ``timeout``,
    ``sync``) passes through to the environment.  A subclass, so that code typed for the event
    loop (the compiled core) takes it too: it overrides every method (time comes from ``env``),
    and its own loop state stays unused."""

    def __init__(self, env) -> None:  # (EventLoop.__init__ not called: ``now`` is env's)
        self.env = env
        self.events = 0
        self._stopped = False
        self._tokens = 0

    @property
    def now(self) -> float:
        return self.env.now

    def time(self) -> float:
        return self.env.now

    def pending(self) -> int:
        raise NotImplementedError("a SimPy environment does not say how many events it holds "
                                  "(SimpyClock.pending); use peek() for the next one's time")

    def timer(self, dt, fn, arg=None) -> None:
        ev = self.env.timeout(dt if dt > 0.0 else 0.0, arg)
        ev.callbacks.append(self._ring(fn))

    def reserve(self) -> int:
        """Places in line are SimPy's business here: a unique token only (see EventLoop.reserve)."""
        self._tokens += 1
        return self._tokens

    def timer_at(self, t, seq, fn, arg=None) -> None:
        self.timer(t - self.env.now, fn, arg)

    def _ring(self, fn):
        def ring(ev):
            self.events += 1
            fn(ev.value)
        return ring

    def peek(self) -> float:
        return self.env.peek()

    def step(self) -> None:
        self.env.step()

    def stop(self) -> None:
        self._stopped = True

    def run(self) -> bool:
        env = self.env
        self._stopped = False
        while env.peek() < INF:
            env.step()
            if self._stopped:
                return True
        return False

    def __getattr__(self, name):
        return getattr(self.env, name)


def as_clock(env):
    """``env`` as a clock: an :class:`EventLoop` or :class:`SimpyClock` as given, a SimPy
    environment wrapped in a :class:`SimpyClock`, a new :class:`EventLoop` for ``None``."""
    if env is None:
        return EventLoop()
    if hasattr(env, "timer") and hasattr(env, "run"):
        return env
    return SimpyClock(env)
