"""Flow-level network on the event loop: transfers over routes of links, shared max-min fairly.

Rates are recomputed whenever a transfer starts or ends, at most once per simulated instant
(changes at the same time are coalesced), and only for the flows the change can affect: in a
max-min allocation a change propagates only through *saturated* links (a flow below its cap is
held by a saturated bottleneck; a flow on unsaturated links only is at its own cap).  The
re-rating starts from the new flows and the links that were saturated when a flow left, takes
in every flow of each saturated link it reaches, and allocates those flows against the fixed
load of everyone else; a link that the new rates saturate is taken in and the allocation
repeated.  The result equals a full recomputation (max-min allocations are unique); tests
check that with ``check=True``, which also recomputes every component from scratch.  A flow
whose rate did not change keeps its completion entry.

The backend is the seam for real hardware: :class:`FlowBackend` (default) shares bandwidth
analytically; a backend that returns a duration for each transfer (e.g. ``hw``'s replay
backend, or :class:`FixedRateBackend`) replaces the sharing model.  Nothing else in dpsim knows
which one runs.
"""
from __future__ import annotations

import math
from array import array
from .heap import TimeHeap
from typing import Callable, Iterable

from dpsim.net.backends import (CapacityViolation, ExternalBackend, FixedRateBackend, FlowBackend,
                                LinkBackend)

from .links import HIGH, INF, LOW, Link, Transfer, new_transfer
from .loop import EventLoop, as_clock
from .maxmin import allocate, allocate_scratch

try:
    import cython
    _COMPILED = cython.compiled  # True in the compiled build (a C constant there)
except ImportError:  # Cython not installed: this is the pure-Python module
    _COMPILED = False

_START = -1  # heap entry kind: a transfer whose latency has elapsed starts flowing


class _Sharing:
    """The bandwidth-sharing half of the network: the completion heap and its wake-ups, the
    incremental max-min re-rating with its check mode, external completions, inspection.
    :class:`Network` (the transfer lifecycle) builds on it; the split only keeps each class
    small -- a Network is always used whole."""

    def _now(self) -> float:
        return self._loop.now if self._loop is not None else self.env.now

    def _push(self, t: float, tr: Transfer) -> None:
        """``tr``'s completion entry at ``t``: its earlier one (superseded by this re-rating) is
        re-keyed in place where the heap keeps handles (the compiled one), else pushed anew."""
        self._seq += 1
        heap = self._heap
        s = tr._hslot
        if s >= 0:
            heap.update(s, t, self._seq, tr.version, tr)
        else:
            tr._hslot = heap.push(t, self._seq, tr.version, tr)
        if heap.size() > self._compact_at:
            self._compact()
        if t < self._wake_at and not self._in_wake:
            now = self._now()
            self._arm(now, t - now)

    def _schedule_rerate(self) -> None:
        """Re-rate at the end of this instant: a wake-up now (coalesced with any pending one)."""
        if not self._in_wake:
            now = self._now()
            if self._wake_at > now:
                self._arm(now, 0.0)

    def _compact(self) -> None:
        """Drop superseded completion entries (each re-rating of a flow leaves its old entry
        behind until that time comes) once they may outnumber the live ones.  Keys are unique,
        so the order in which the remaining entries come out is unchanged; amortized O(1)."""
        heap = self._heap
        heap.drop_stale(_START)  # in place: a running wake-up holds this heap
        self._compact_at = max(256, 2 * heap.size())

    def _arm(self, now: float, delay: float) -> None:
        """Schedule a wake-up ``delay`` after ``now``.  Only when none is pending at or before
        that time: a pending one re-arms for what is due next when it runs, so no wake-up is
        scheduled twice for the same entry (timers cannot be cancelled).  So each new one is the
        earliest pending, and the pending times are a stack (latest first), not a heap: the
        first ``_n_wakes`` entries of the array ``_wakes`` (doubled when full, never shrunk)."""
        at = now + delay  # the time the loop will run it at
        n = self._n_wakes
        if n == self._wakes.shape[0]:
            self._wakes = _grown(self._wakes, "d", 2 * n)
        wakes = self._wakes
        self._n_wakes = n + 1
        while n > 0 and wakes[n - 1] < at:  # (only if ``at`` rounded up past a pending one)
            wakes[n] = wakes[n - 1]
            n -= 1
        wakes[n] = at
        self._wake_at = wakes[self._n_wakes - 1]
        if self._loop is not None:
            self._loop.timer(delay, self._wake_cb, None)
        else:
            self.env.timer(delay, self._wake_cb)

    def complete(self, tr: Transfer) -> None:
        """An external backend reports that ``tr`` finished now: account its bytes on its links
        (as if it had run at its mean rate) and fire its callback."""
        now = self._now()
        if tr.t_end >= 0.0:
            return
        dur = now - tr.t_start
        for l in tr.links:
            l.acc_bytes += l.rate_sum * (now - l.acc_t) + tr.size
            l.acc_t = now
            _drop(l, tr)
        tr.delivered_check = tr.size
        tr.rate = tr.size / dur if dur > 0 else 0.0
        self.active -= 1
        tr.remaining = 0.0
        tr.t_end = now
        self.n_completed += 1
        self.bytes_delivered += tr.size
        if tr.on_done is not None:
            tr.on_done(tr)

    def _saturated(self, l: Link) -> bool:
        if l.rate_sum >= l.sat_cap:
            return True
        return l.n_low > 0 and l.high_rate > 0.0 and l.high_rate >= l.sat_cap * self.high_share

    # ------------------------------------------------------------------ re-rating
    def _rerate(self) -> None:
        dirty, new = self._dirty, self._new
        if not dirty and not new:
            return
        self.rerates += 1
        now = self._now()
        self._epoch += 1
        ep = self._epoch
        share = self.high_share
        # Scratch lists kept between re-ratings (emptied at the end: no allocation per call; a
        # re-rating runs no callback, so nothing appends to ``dirty``/``new`` while it runs).
        sub = self._sub  # flows being re-allocated (flow._mark == ep)
        stack = self._stack  # saturated links to take in whole (link._mark == ep)
        touched = self._touched  # every link of every flow in sub (link._cmark == ep)

        # "Taking in" a flow (inlined twice below, the hot path): mark it, remember its old
        # rate, bring its links' counters up to now and queue the saturated ones.
        for f in new:
            if f._mark != ep and f.t_end < 0.0:
                f._mark = ep
                f._old = f.rate
                sub.append(f)
                for l2 in f.links:
                    if l2._cmark != ep:
                        l2._cmark = ep
                        touched.append(l2)
                        l2.acc_bytes += l2.rate_sum * (now - l2.acc_t)
                        l2.acc_t = now
                    if l2._mark != ep and (l2.rate_sum >= l2.sat_cap or (
                            l2.n_low > 0 and l2.high_rate > 0.0 and l2.high_rate >= l2.sat_cap * share)):
                        l2._mark = ep
                        stack.append(l2)
                if f.max_rate == INF:
                    # An uncapped flow will saturate its tightest link: take that link in now
                    # rather than after a first allocation round.
                    best = None
                    room = INF
                    for l2 in f.links:
                        a = l2.capacity - l2.rate_sum
                        if a < room:
                            room = a
                            best = l2
                    if best is not None and best._mark != ep:
                        best._mark = ep
                        stack.append(best)
        for l in dirty:
            if l._mark != ep:
                l._mark = ep
                stack.append(l)
        while True:
            while stack:
                l = stack.pop()
                if l._cmark != ep:
                    l._cmark = ep
                    touched.append(l)
                    l.acc_bytes += l.rate_sum * (now - l.acc_t)
                    l.acc_t = now
                for k in range(l.n_flows):
                    f = l.flows[k]
                    if f._mark != ep:
                        f._mark = ep
                        f._old = f.rate
                        sub.append(f)
                        for l2 in f.links:
                            if l2._cmark != ep:
                                l2._cmark = ep
                                touched.append(l2)
                                l2.acc_bytes += l2.rate_sum * (now - l2.acc_t)
                                l2.acc_t = now
                            if l2._mark != ep and (l2.rate_sum >= l2.sat_cap or (
                                    l2.n_low > 0 and l2.high_rate > 0.0
                                    and l2.high_rate >= l2.sat_cap * share)):
                                l2._mark = ep
                                stack.append(l2)
            # Background: the fixed load of flows outside ``sub`` on every touched link (kept
            # in the links' scratch slots: no dictionaries on this hot path).
            for l in touched:
                l._bgh = l.high_rate
                l._bgl = l.rate_sum - l.high_rate
            for f in sub:
                o = f._old
                if o:
                    if f.prio == HIGH:
                        for l in f.links:
                            l._bgh -= o
                    else:
                        for l in f.links:
                            l._bgl -= o
            for l in touched:
                if l._bgh < 0.0:
                    l._bgh = 0.0
                if l._bgl < 0.0:
                    l._bgl = 0.0
                l._load = 0.0
                l._hload = 0.0
            if len(sub) == 1:  # the common case: one flow against fixed background load
                f = sub[0]
                r = f.max_rate
                if f.prio == HIGH:
                    for l in f.links:
                        a = (l.capacity * share if l.n_low > 0 else l.capacity) - l._bgh
                        if a < r:
                            r = a
                else:
                    for l in f.links:
                        a = l.capacity - l._bgh - l._bgl
                        if a < r:
                            r = a
                f.rate = r if r > 0.0 else 0.0
            else:
                allocate_scratch(sub, touched, share)
            # A link outside the taken-in set that the new rates saturate holds flows that may
            # have to slow down: take it in and allocate again.
            for f in sub:
                r = f.rate
                if f.prio == HIGH:
                    for l in f.links:
                        l._load += r
                        l._hload += r
                else:
                    for l in f.links:
                        l._load += r
            grew = False
            for l in touched:
                if l._mark == ep:
                    continue
                cap = l.sat_cap
                hr = l._bgh + l._hload
                if l._bgh + l._bgl + l._load >= cap or (l.n_low > 0 and hr > 0.0 and hr >= cap * share):
                    l._mark = ep
                    stack.append(l)
                    grew = True
            if not grew:
                break
        # Commit: advance the flows to now at their old rates, then switch rates.  (_settle
        # repeats this arithmetic for a link left with no flow: keep the two the same.)
        for l in touched:
            l.rate_sum = l._bgh + l._bgl + l._load
            l.high_rate = l._bgh + l._hload
        for f in sub:
            self._switch(f, now, f._old)
        del dirty[:], new[:], sub[:]
        if self.check:
            try:
                _verify(self, touched)
            finally:
                del touched[:]
        else:
            del touched[:]

    def _switch(self, f: Transfer, now: float, old: float) -> None:
        """Advance ``f`` to ``now`` at its ``old`` rate, then take on its new ``f.rate``: a new
        version and completion entry when the rate changed (a re-rating's commit per flow)."""
        dt = now - f.last_t
        if dt > 0.0:
            d = old * dt
            f.remaining -= d
            f.delivered_check += d
            if f.remaining < 0.0:
                f.remaining = 0.0
        f.last_t = now
        r = f.rate
        if r != old:
            f.version += 1
            if r > 0.0 and f.remaining != INF:
                self._push(now + f.remaining / r, f)

    # ------------------------------------------------------------------ inspection
    def flush(self) -> None:
        """Bring every link's byte counter up to now (for sampling)."""
        now = self._now()
        for l in self.links:
            l.acc_bytes += l.rate_sum * (now - l.acc_t)
            l.acc_t = now

    def link(self, name: str) -> Link:
        return self._by_name[name]

    def stuck_transfers(self) -> list[Transfer]:
        out = []
        for l in self.links:
            out.extend(l.live_flows())
        return list({t.id: t for t in out}.values())


class Network(_Sharing):
    def __init__(self, env, high_share: float = 0.99, backend: LinkBackend | None = None,
                 check: bool = False):
        if not 0.0 < high_share <= 1.0:
            raise ValueError(f"net.high_share must be in (0, 1] (got {high_share})")
        self.env = as_clock(env)  # an EventLoop (or SimpyClock); a SimPy environment is wrapped
        self.high_share = float(high_share)
        self.backend = backend or FlowBackend()
        self._flow_model = isinstance(self.backend, FlowBackend)
        self._external = isinstance(self.backend, ExternalBackend)
        self.check = check
        self.links: list[Link] = []
        self._by_name: dict[str, Link] = {}
        self._heap = TimeHeap(handles=True)  # (time, seq) -> (version or _START, transfer); re-keyed in place
        self._compact_at = 256  # heap size that triggers dropping superseded entries
        self._seq, self._tid = 0, 0  # the heap entries' sequence; the last transfer id
        self._dirty: list = []  # links that were saturated when a flow left them
        self._new: list = []  # flows that started since the last re-rating
        self._sub, self._stack, self._touched = [], [], []  # the re-rating's scratch lists
        # The time of the earliest wake-up scheduled and not yet run, and of all of them (_arm).
        self._wake_at, self._wakes = INF, _grown(None, "d", 16)
        self._n_wakes, self._in_wake, self._epoch = 0, False, 0
        self.active, self.n_started, self.n_completed = 0, 0, 0
        self.bytes_requested, self.bytes_delivered, self.rerates = 0.0, 0.0, 0
        self.max_overload, self.wakeups = 0.0, 0  # wakeups: run (each one timer of the network's own)
        self._wake_cb = self._wake  # bound once: _arm runs per wake-up
        self.on_transfer = None  # called with every new transfer (before it starts), when set
        # The event loop itself when it is one (typed in the compiled build: its clock and timer
        # are C calls), None for another clock (a SimPy one), which is used through ``env``.
        self._loop = self.env if type(self.env) is EventLoop else None

    # ------------------------------------------------------------------ topology
    def add_link(self, name: str, capacity: float, kind: str = "", node: int = -1) -> Link:
        if name in self._by_name:
            raise ValueError(f"duplicate link name {name!r}")
        l = Link(name, capacity, kind, node, len(self.links))
        l.acc_t = self.env.now
        self.links.append(l)
        self._by_name[name] = l
        return l

    def busy(self) -> bool:
        """True while a transfer is flowing or a start, completion or re-rating is pending."""
        return self.active > 0 or self._heap.size() > 0 or len(self._new) > 0 or len(self._dirty) > 0

    # ------------------------------------------------------------------ transfers
    def transfer(self, route: Iterable[Link], size: float, on_done: Callable | None = None,
                 prio: int = LOW, max_rate: float = INF, latency: float = 0.0, tag=None) -> Transfer:
        """Start moving ``size`` bytes over ``route``; ``on_done(transfer)`` fires when the last
        byte arrives.  ``latency`` delays the first byte; ``max_rate`` caps the transfer (e.g. a
        submission-bound stream of small blocks).  A tuple of links (or a tuple subclass), or a
        route object whose ``links`` is one (:class:`dpsim.cluster.routes.Route`), is kept as
        given; other iterables become a tuple."""
        return self._submit(route, size, on_done, prio, max_rate, latency, tag, -1)

    def _submit(self, route, size: float, on_done, prio: int, max_rate: float, latency: float, tag,
                rid: int):
        """:meth:`transfer` with every argument, by position (``rid`` >= 0: tagged ``(tag, rid)``):
        the KV port's entry, a C call in the compiled build.  :attr:`on_transfer` sees each."""
        if not size >= 0 or (size == INF and max_rate == INF):
            raise ValueError(f"transfer size must be a number >= 0, or infinite for a stream with "
                             f"a max_rate (got {size!r})")
        if not max_rate > 0:
            raise ValueError(f"transfer max_rate must be > 0 (got {max_rate!r})")
        self._tid += 1
        if not isinstance(route, tuple) and type(getattr(route, "links", None)) is not tuple:
            route = tuple(route)  # (a Route carries its links as a tuple; anything else becomes one)
        tr = new_transfer(self._tid, route, size, prio, max_rate, on_done, tag, rid)
        if self.on_transfer is not None:
            self.on_transfer(tr)
        now = self._now()
        tr.t_submit = now
        self.n_started += 1
        if size != INF:
            self.bytes_requested += tr.size
        if latency > 0.0:
            # The first byte leaves after ``latency``: a start entry in the network's own heap
            # (no timer of its own).
            self._seq += 1
            t = now + latency
            self._heap.push(t, self._seq, _START, tr)
            if t < self._wake_at and not self._in_wake:
                self._arm(now, latency)
        else:
            self._begin(tr)
        return tr

    def stream(self, route: Iterable[Link], rate: float, prio: int = HIGH, tag=None) -> Transfer:
        """An open-ended flow that wants ``rate`` bytes/s until :meth:`stop` (e.g. a decode
        engine's expert-parallel all-to-all); its achieved rate is ``transfer.rate``."""
        return self.transfer(route, math.inf if rate > 0 else 0.0, None, prio=prio,
                             max_rate=rate if rate > 0 else 1.0, tag=tag)

    def set_max_rate(self, tr: Transfer, rate: float) -> None:
        """Change a running transfer's cap (re-rated at the end of this instant)."""
        if not rate > 0:
            raise ValueError(f"transfer max_rate must be > 0 (got {rate!r})")
        if tr.max_rate == rate or tr.t_end >= 0.0:
            return
        old = tr.max_rate
        tr.max_rate = rate
        if tr.t_start >= 0.0 and tr.links and self._flow_model:
            if tr.rate == old and not self._new and not self._dirty and _recap(self, tr, rate):
                return
            self._new.append(tr)
            self._schedule_rerate()

    def stop(self, tr: Transfer) -> None:
        """End a stream (or abandon a transfer) now; its bytes so far count as delivered."""
        if tr.t_end >= 0.0:
            return
        now = self._now()
        self.n_completed += 1
        if tr.t_start < 0.0:  # still in its latency: never started
            tr.t_end = now
            tr.version += 1
            return
        if tr.links:
            self._detach(tr, now, False)
        tr.version += 1
        tr.rate = 0.0
        tr.t_end = now

    def _begin(self, tr: Transfer) -> None:
        now = self._now()
        tr.t_start = now
        tr.last_t = now
        route = tr.links
        if tr.size <= 0.0 or not route:
            if tr.size > 0.0 and not route:
                tr.remaining = 0.0  # local, free (e.g. the Oracle system's zero-cost I/O)
                tr.delivered_check = tr.size
            self._push(now, tr)
            return
        self.active += 1
        if self._external:
            for l in route:
                _join(l, tr)
            self.backend.start(self, tr)
            return
        if not self._flow_model:
            d = self.backend.duration(self, tr)
            if d is not None:
                rate = tr.size / d if d > 0 else 0.0
                tr.rate = rate
                for l in route:
                    l.acc_bytes += l.rate_sum * (now - l.acc_t)
                    l.acc_t = now
                    l.rate_sum += rate
                    _join(l, tr)
                self._push(now + d, tr)
                return
        low = tr.prio != HIGH
        r = tr.max_rate
        if r != INF and not self._new:
            # Fast path: a capped flow that fits under every link of its route without
            # saturating any of them changes nobody else's rate (no one is held by an
            # unsaturated link): it runs at its cap at once, with no re-rating.
            ok = True
            share = self.high_share
            for l in route:
                cap = l.sat_cap
                if l.rate_sum + r >= cap:
                    ok = False
                    break
                if low:
                    if l.high_rate > 0.0 and l.high_rate >= cap * share:
                        ok = False
                        break
                elif l.high_rate + r >= (cap * share if l.n_low > 0 else cap):
                    ok = False
                    break
            if ok:
                for l in route:
                    l.acc_bytes += l.rate_sum * (now - l.acc_t)
                    l.acc_t = now
                    _join(l, tr)
                    l.rate_sum += r
                    if low:
                        l.n_low += 1
                    else:
                        l.high_rate += r
                tr.rate = r
                tr.version += 1
                if tr.remaining != INF:
                    self._push(now + tr.remaining / r, tr)
                if self.check and not self._dirty:  # (a pending re-rating verifies it)
                    _verify(self, list(route))
                return
        for l in route:
            _join(l, tr)
            if low:
                l.n_low += 1
        self._new.append(tr)
        self._schedule_rerate()

    # ------------------------------------------------------------------ completion
    def _wake(self, _ev=None) -> None:
        """Start delayed transfers, complete finished ones, re-rate, run the callbacks; repeat
        while the callbacks start or end transfers at this instant (one wake-up serves a whole
        chain of same-time transfers)."""
        now = self._now()
        heap = self._heap
        tol = now + 1e-12 * max(1.0, abs(now))
        wakes = self._wakes
        n = self._n_wakes
        while n > 0 and wakes[n - 1] <= tol:  # this one (up to rounding), and any it covers
            n -= 1
        self._n_wakes = n
        self._wake_at = wakes[n - 1] if n > 0 else INF
        if self._in_wake:  # re-entered from a callback: the running wake-up covers it
            return
        self._in_wake = True
        self.wakeups += 1
        try:
            while True:
                done = []
                while heap.top_t() <= tol:
                    ver = heap.top_a()
                    tr = heap.top_b()
                    heap.pop()
                    if ver == _START:
                        if tr.t_end < 0.0:  # not stopped during its latency
                            self._begin(tr)
                        continue
                    tr._hslot = -1  # a completion entry: its handle is gone
                    if ver != tr.version or tr.t_end >= 0.0:
                        continue
                    done.append(tr)
                for tr in done:
                    self._finish(tr, now)
                if self._dirty or self._new:
                    self._rerate()
                for tr in done:
                    if tr.on_done is not None:
                        tr.on_done(tr)
                if not (self._dirty or self._new or heap.top_t() <= tol):
                    break
        finally:
            self._in_wake = False
        while heap.size() > 0:  # drop superseded completion entries so they cause no wake-ups
            ver = heap.top_a()
            tr = heap.top_b()
            if ver != _START and (ver != tr.version or tr.t_end >= 0.0):
                heap.pop()
                tr._hslot = -1
            else:
                break
        if heap.size() > 0:
            t = heap.top_t()
            if t < self._wake_at:
                self._arm(now, max(0.0, t - now))

    def _detach(self, tr: Transfer, now: float, settle: bool) -> None:
        """Take a flowing transfer off its links; links it saturated are re-rated (with ``settle``,
        one left with no flow is settled at once instead: :func:`_settle`)."""
        self.active -= 1
        high = tr.prio == HIGH
        r = tr.rate
        flow_model = self._flow_model
        share = self.high_share
        dirty = self._dirty
        for l in tr.links:
            l.acc_bytes += l.rate_sum * (now - l.acc_t)
            l.acc_t = now
            sat = flow_model and (l.rate_sum >= l.sat_cap or (
                l.n_low > 0 and l.high_rate > 0.0 and l.high_rate >= l.sat_cap * share))
            l.rate_sum -= r
            if l.rate_sum < 0.0:
                l.rate_sum = 0.0
            if high:
                l.high_rate -= r
                if l.high_rate < 0.0:
                    l.high_rate = 0.0
            else:
                l.n_low -= 1
            _drop(l, tr)
            if sat:  # flows held by this link may speed up
                if settle and l.n_flows == 0 and l not in dirty:
                    _settle(l)
                else:
                    dirty.append(l)
        if dirty:
            self._schedule_rerate()

    def _finish(self, tr: Transfer, now: float) -> None:
        if tr.links and tr.size > 0.0:
            tr.delivered_check += tr.rate * (now - tr.last_t)
            self._detach(tr, now, True)  # (a wake-up's completions: the re-rating comes next)
        tr.rate = 0.0
        tr.remaining = 0.0
        tr.t_end = now
        self.n_completed += 1
        self.bytes_delivered += tr.size
        if self.check and tr.size > 0.0 and tr.links:
            err = abs(tr.delivered_check - tr.size)
            if err > 1e-6 * tr.size + 1e-3:
                raise CapacityViolation(f"transfer {tr.id} ({tr.tag}) delivered {tr.delivered_check:.6g} "
                                        f"bytes, requested {tr.size:.6g}")


def _verify(net: _Sharing, touched: list) -> None:
    """Check mode: capacities hold and the incremental rates equal a full max-min
    recomputation of every component that the re-rating touched."""
    for l in touched:
        over = l.rate_sum - l.capacity
        if over > 1e-9 * l.capacity:
            raise CapacityViolation(f"link {l.name} carries {l.rate_sum:.6g} B/s > capacity "
                                    f"{l.capacity:.6g}")
        if l.rate_sum / l.capacity - 1.0 > net.max_overload:
            net.max_overload = l.rate_sum / l.capacity - 1.0
    net._epoch += 1
    ep = net._epoch
    flows, links, stack = [], [], []
    for l in touched:
        if l._mark != ep:
            l._mark = ep
            links.append(l)
            stack.append(l)
    while stack:
        l = stack.pop()
        for k in range(l.n_flows):
            f = l.flows[k]
            if f._mark != ep:
                f._mark = ep
                flows.append(f)
                for l2 in f.links:
                    if l2._mark != ep:
                        l2._mark = ep
                        links.append(l2)
                        stack.append(l2)
    keep = [f.rate for f in flows]
    allocate(flows, links, net.high_share)
    for f, r in zip(flows, keep):
        if abs(f.rate - r) > 1e-6 * max(abs(r), abs(f.rate), 1e-300) + 1e-9:
            raise CapacityViolation(f"incremental re-rating gave transfer {f.id} rate {r:.9g}, "
                                    f"a full recomputation {f.rate:.9g}")
        f.rate = r


def _grown(a, typecode: str, n: int):
    """An array of ``n`` C numbers (``typecode``: ``"d"`` float64, ``"q"`` int64), zeros after
    ``a``'s values (``a`` None: all zeros)."""
    out = memoryview(array(typecode, bytes(8 * n)))
    if a is not None:
        out[:a.shape[0]] = a
    return out


def _join(l: Link, tr: Transfer) -> None:
    """``tr`` starts flowing on ``l``: listed last (flows keep the order they started in).  The
    list doubles when full, allocated to its exact length (so that :func:`_drop`'s
    delete-and-append never reallocates it)."""
    flows = l.flows
    n = l.n_flows
    if n == len(flows):
        l.flows = flows = flows + [None] * (n if n > 4 else 4)
    flows[n] = tr
    l.n_flows = n + 1


def _drop(l: Link, tr: Transfer) -> None:
    """Take ``tr`` off ``l`` if it is there (one that never started flowing is not).  Found by
    identity -- in the compiled build a scan of the list's pointers that touches no other
    transfer (reading each through the list would touch its reference count: at scale a cache
    miss each) -- the later ones moved up a place (a pointer move, again touching none), so the
    rest keep their order."""
    n = l.n_flows
    flows = l.flows
    if _COMPILED:
        i = _c_find(flows, tr, n)  # noqa: F821 (declared in network.pxd)
    else:
        i = 0
        while i < n and flows[i] is not tr:
            i += 1
    if i < n:
        if i == n - 1:
            flows[i] = None
        elif _COMPILED:  # the same list, by a pointer move over the n live entries only
            _c_remove_at(flows, i, n)  # noqa: F821 (declared in network.pxd)
        else:
            del flows[i]
            flows.append(None)
        l.n_flows = n - 1


def _settle(l: Link) -> None:
    """A saturated link that a completion left with no flow: the re-rating due next would hold
    nobody on it and only recompute its loads, so that is done now, with the re-rating's own
    arithmetic (the same bits), and the link is not re-rated.  Only while nothing can start a
    flow on it before that re-rating: between a wake-up's completions and its re-rating."""
    bgh = l.high_rate
    bgl = l.rate_sum - l.high_rate
    if bgh < 0.0:
        bgh = 0.0
    if bgl < 0.0:
        bgl = 0.0
    l.rate_sum = bgh + bgl + 0.0
    l.high_rate = bgh + 0.0


def _recap(net, tr: Transfer, r: float) -> bool:
    """Fast path of a cap change (``Network.set_max_rate``): a flow running at its old cap, on
    links none of which is saturated before or after the change, changes nobody else's rate (as
    ``_begin``'s fast path), so its new rate is its new cap, applied now with the re-rating's own
    arithmetic (the same bits as the wake-up it saves).  False, nothing changed, when that does
    not hold: then it is re-rated as usual.  Uses the links' re-rating scratch slots."""
    old = tr.rate
    high = tr.prio == HIGH
    share = net.high_share
    for l in tr.links:
        cap = l.sat_cap
        if l.rate_sum >= cap or (l.n_low > 0 and l.high_rate > 0.0 and l.high_rate >= cap * share):
            return False  # saturated now: others may be held by it
        bgh = l.high_rate - old if high else l.high_rate
        bgl = l.rate_sum - l.high_rate if high else l.rate_sum - l.high_rate - old
        if bgh < 0.0:
            bgh = 0.0
        if bgl < 0.0:
            bgl = 0.0
        hr = bgh + r if high else bgh + 0.0
        if bgh + bgl + r >= cap or (l.n_low > 0 and hr > 0.0 and hr >= cap * share):
            return False  # would saturate
        l._bgh = bgh
        l._bgl = bgl
    now = net._now()
    net.rerates += 1  # counted as the re-rating it replaces
    for l in tr.links:  # the re-rating's commit
        l.acc_bytes += l.rate_sum * (now - l.acc_t)
        l.acc_t = now
        l.rate_sum = l._bgh + l._bgl + r
        l.high_rate = l._bgh + r if high else l._bgh + 0.0
    tr.rate = r
    net._switch(tr, now, old)
    if net.check:
        _verify(net, list(tr.links))
    return True


__all__ = ["Network", "LinkBackend", "FlowBackend", "FixedRateBackend", "ExternalBackend",
           "CapacityViolation", "HIGH", "LOW", "INF"]
