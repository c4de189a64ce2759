"""Decode engine (one per GPU): every admitted request is in the forward batch (§S6).

Batches advance analytically.  One decode iteration over n sequences with attended context S
takes ``t0 + t_seq n + t_tok S`` (the compute model's affine coefficients).  Between membership
changes n is fixed and S grows by ``n_grow`` per iteration (sequences whose context is below the
sparse-attention cap), so k iterations take ``k a + t_tok n_grow k (k-1) / 2`` with
``a = t0 + t_seq n + t_tok S``.  Events happen only when a request joins (at the end of the
iteration in progress) or finishes -- never one per token or per step.
"""
from __future__ import annotations

from collections import deque
import math
from dataclasses import dataclass
from typing import Callable

from .. import net as _net
from ..net.network import _grown
from ..lifecycle.stage import Stage

# Stage members as module constants: read on every transition, and a module global is
# much cheaper to read than an enum class attribute.
_DECODE = Stage.DECODE

INF = math.inf


@dataclass
class DecodeDeps:
    """What every DE needs from outside (one shared bundle, not the simulation)."""

    clock: object             # now, timer(dt, cb)
    compute: object           # the compute model: decode_coeffs(), decode_ctx_cap
    port: object              # dpsim.lifecycle.ports.KVPort (EP all-to-all streams)
    done: Callable            # done(request, engine): its last token is out
    ep_tok: float             # EP all-to-all bytes per token per iteration that leave the node
    timeline: bool


class DecodeEngine:
    def __init__(self, gpu, idx: int, deps: DecodeDeps):
        self.deps = deps
        self.clock = deps.clock
        self.gpu = gpu
        self.idx = idx
        # Sum over seqs of (ctx0 - step0): the batch's attended context after ``steps``
        # iterations is base + n * steps (no cap), kept as sequences join and leave (integers:
        # exact), so an iteration's cost is O(1) in the batch size.
        self.base = 0
        self.fresh: list = []  # the requests whose first iteration starts at step ``fresh_step``
        self.fresh_step = -1
        # Finishes to come: a C min-heap keyed (end_step, rid), each sequence its payload (the
        # network's TimeHeap: no tuple per admission, no Python comparison per sift).  One entry
        # per sequence in the batch, so its size is the batch's (:attr:`n_seqs`).
        self.heap = _net.implementation().TimeHeap(handles=False)  # push and pop only
        self.steps = 0  # iterations completed so far (integer)
        self.t_int = 0.0  # start of the current interval (an iteration boundary)
        self.a = 0.0  # first-iteration time of the interval
        self.c = 0.0  # growth of iteration time per iteration
        self.version = 0
        self.joiners: list = []
        self.boundary_pending = False
        self.btoken = 0
        self.alloc_q: deque = deque()  # requests waiting for HBM (FIFO)
        self.seq = 0  # unfinished requests assigned (§S6 seq_e; LoadLedger writes it)
        self.tok = 0  # their tokens (§S6 tok_e; LoadLedger writes it)
        self.busy_time = 0.0
        self.group = None
        t0, ts, tt = deps.compute.decode_coeffs()
        self.t0, self.ts, self.tt = t0, ts, tt
        self.cap = deps.compute.decode_ctx_cap
        self.ep_tok = deps.ep_tok if deps.port.has_ep_peer(gpu) else 0.0
        self.ep_stream = None
        self.slowdown = 1.0
        self.size_log: list = []  # (time, sequences) when sim.timeline
        self._fin_k = 0  # iterations to the next finish (of the pending finish event)
        self._bnd_k = 0  # iterations to the pending boundary event
        # The finish event: at most one live target (time, place in line) at once.  A new
        # target is set as a timer only when no finish timer already set rings before it;
        # otherwise that earlier timer sets it when it rings (a batch's finish moves later with
        # every join, and each timer would otherwise stay queued, stale, until its time).
        self._fin_t = 0.0
        self._fin_seq = -1  # -1: no target (empty batch)
        self._fin_deferred = False  # the target is not set as a timer yet
        # [time, place] of each finish timer set and not yet rung, in a C array of doubles (a
        # place is an event sequence number < 2**53: exact as a double), ``_n_armed`` of them
        # in any order: no boxed float and int per timer, no list of them to scan.
        self._armed = _grown(None, "d", 8)
        self._n_armed = 0
        # Timer callbacks bound once (reading ``self.method`` allocates a bound method).
        self._finish_cb, self._done_cb = self._finish_due, self._done_now
        self._boundary_cb = self._boundary_due

    @property
    def name(self) -> str:
        return f"DE{self.idx}@gpu{self.gpu.gid}"

    @property
    def n_seqs(self) -> int:
        """Sequences in the batch (each has its finish entry in ``heap``)."""
        return self.heap.size()

    @property
    def hbm_free(self) -> float:
        return self.gpu.hbm_kv - self.gpu.hbm_used

    # ------------------------------------------------------------------ analytics
    def _iter_params(self):
        n = self.heap.size()
        if n == 0:
            return 0.0, 0.0
        cap = self.cap
        steps = self.steps
        if cap is None:
            S = self.base + n * steps
            n_grow = n
        else:
            S = 0
            n_grow = 0
            for _t, _k, r, _b in self.heap.entries():  # (integer sums: any order is exact)
                c = r.dec_base + steps
                if c < cap:
                    S += c
                    n_grow += 1
                else:
                    S += cap
        return self.t0 + self.ts * n + self.tt * S, self.tt * n_grow

    def _model_traffic(self) -> None:
        """Expert-parallel all-to-all of the decode batch (§S5) as a stream wanting
        n x bytes/token per iteration.  If the last interval's stream got less than it wanted
        (isolation off, or the CNIC full), iterations slow down by wanted / achieved."""
        port = self.deps.port
        st = self.ep_stream
        slow = 1.0
        if st is not None and st.rate > 0.0 and st.max_rate > st.rate:
            slow = st.max_rate / st.rate
        self.slowdown = slow
        demand = self.heap.size() * self.ep_tok / self.a
        if st is None:
            self.ep_stream = port.decode_stream(self.gpu, demand, self.name)
        else:
            port.set_rate(st, demand)
        if slow > 1.0:
            self.a *= slow
            self.c *= slow

    def _time_for(self, k: float) -> float:
        return k * self.a + self.c * k * (k - 1) * 0.5

    def _steps_by(self, dt: float) -> int:
        """Whole iterations completed within ``dt`` of the interval start."""
        a, c = self.a, self.c
        if dt <= 0:
            return 0
        if c <= 0:
            k = int(dt / a * (1 + 1e-12))
        else:
            # c k^2/2 + (a - c/2) k - dt <= 0
            b = a - 0.5 * c
            k = int((-b + math.sqrt(b * b + 2 * c * dt)) / c * (1 + 1e-12))
        while k > 0 and self._time_for(k) > dt * (1 + 1e-12) + 1e-15:
            k -= 1
        return k

    def _reschedule(self) -> None:
        self.version += 1
        if self.deps.timeline:
            log = self.size_log
            n = self.heap.size()
            if not log or log[-1][1] != n:
                log.append((self.clock.time(), n))
        if self.heap.size() == 0:
            self._fin_seq = -1  # no finish pending (timers already set ring idle)
            self._fin_deferred = False
            if self.ep_stream is not None:
                self.deps.port.stop(self.ep_stream)
                self.ep_stream = None
            return
        self.a, self.c = self._iter_params()
        if self.ep_tok > 0.0:
            self._model_traffic()
        # The sequence that finishes first: its last step is the heap's top key (an integer,
        # exact as a double; reading it leaves the request, cold on a large cluster, alone).
        k = int(self.heap.top_t()) - self.steps
        dt = self._time_for(k)
        self._fin_k = k  # the pending finish event is the one of this version
        # The finish at now + dt, in the place in line a timer set now gets (EventLoop.timer's
        # arithmetic): set now unless a finish timer already set rings no later.
        clock = self.clock
        now = clock.time()
        t = now + dt if dt > 0.0 else now
        self._fin_t = t
        self._fin_seq = clock.reserve()
        if self._covered(t):
            self._fin_deferred = True
            return
        self._set_finish()

    def _covered(self, t: float) -> bool:
        """A finish timer already set rings no later than ``t`` (it will set the target then)."""
        armed = self._armed
        for i in range(0, 2 * self._n_armed, 2):
            if armed[i] <= t:
                return True
        return False

    def _set_finish(self) -> None:
        self._fin_deferred = False
        n = 2 * self._n_armed
        if n + 2 > self._armed.shape[0]:
            self._armed = _grown(self._armed, "d", 2 * self._armed.shape[0])
        self._armed[n] = self._fin_t
        self._armed[n + 1] = self._fin_seq
        self._n_armed += 1
        self.clock.timer_at(self._fin_t, self._fin_seq, self._finish_cb, self._fin_seq)

    # ------------------------------------------------------------------ events
    def join(self, req) -> None:
        """``req``'s KV is in HBM: it joins the batch at the next iteration boundary."""
        now = self.clock.time()
        req.stage = _DECODE
        if req.gen <= 1:  # the only token came from prefill: nothing to decode
            req.t_second = now
            self.clock.timer(0.0, self._done_cb, req)
            return
        if self.heap.size() == 0:
            self.t_int = now
            self._admit([req], now)
            self._reschedule()
            return
        if now <= self.t_int and not self.boundary_pending:
            # The current iteration starts at this very instant: join it.
            self._admit([req], now)
            self._reschedule()
            return
        self.joiners.append(req)
        if not self.boundary_pending:
            self.boundary_pending = True
            # The first iteration end at or after ``now`` by this engine's arithmetic (_steps_by's
            # rounding slack may count an end just after ``now`` as passed).
            t_int = self.t_int
            j = self._steps_by(now - t_int)
            while j > 0 and t_int + self._time_for(j) >= now:
                j -= 1
            j += 1
            tb = t_int + self._time_for(j)
            while tb < now:
                j += 1
                tb = t_int + self._time_for(j)
            self.btoken += 1
            self._bnd_k = j  # the pending boundary event is the one of this token
            self.clock.timer(max(0.0, tb - now), self._boundary_cb, self.btoken)

    def _admit(self, reqs: list, t: float) -> None:
        for req in reqs:
            steps_needed = req.gen - 1  # the first token came from prefill
            if steps_needed <= 0:  # nothing to decode: done without entering the batch
                req.t_second = t
                self.clock.timer(0.0, self._done_cb, req)
                continue
            steps = self.steps
            # Its attended context after the batch's ``s`` steps is dec_base + s (it joins with
            # prompt + 1 tokens at step ``steps``); it leaves at step steps + steps_needed.
            req.dec_base = req.prompt + 1 - steps
            self.base += req.dec_base
            if self.fresh_step != steps:
                self.fresh = []
                self.fresh_step = steps
            self.fresh.append(req)
            self.heap.push(steps + steps_needed, req.rid, req, None)
        if self.fresh_step != self.steps:
            return
        a, _c = self._iter_params()
        for req in self.fresh:  # everyone whose first iteration starts now (joined at this step)
            req.t_second = t + a if req.gen > 1 else t

    def _advance(self, k: int, now: float) -> None:
        self.busy_time += now - self.t_int
        self.steps += k
        self.t_int = now
        done = []
        heap = self.heap
        while heap.size() > 0 and heap.top_t() <= self.steps:
            req = heap.top_a()
            heap.pop()
            self.base -= req.dec_base
            done.append(req)
        cb = self.deps.done
        for req in done:
            cb(req, self)

    def _done_now(self, req) -> None:
        self.deps.done(req, self)

    def _boundary_due(self, bt: int) -> None:
        self._on_boundary(self._bnd_k, bt)

    def _finish_due(self, seq: int) -> None:
        armed = self._armed
        n = 2 * self._n_armed
        for i in range(0, n, 2):
            if armed[i + 1] == seq:
                # The last timer takes its place: only "does any ring by t" is ever asked.
                armed[i] = armed[n - 2]
                armed[i + 1] = armed[n - 1]
                self._n_armed -= 1
                break
        if seq == self._fin_seq:  # the live target
            self._fin_seq = -1
            self._on_finish(self.version, self._fin_k)
        elif self._fin_deferred and not self._covered(self._fin_t):  # an earlier one rang
            self._set_finish()

    def _on_boundary(self, k: int, bt: int) -> None:
        if bt != self.btoken or not self.boundary_pending:
            return
        now = self.clock.time()
        self.boundary_pending = False
        if self.heap.size() > 0:
            self._advance(k, now)
        else:
            self.t_int = now
        joiners, self.joiners = self.joiners, []
        self._admit(joiners, now)
        self._reschedule()

    def _on_finish(self, v: int, k: int) -> None:
        if v != self.version:
            return
        now = self.clock.time()
        self._advance(k, now)
        if self.boundary_pending:
            # A boundary event is queued for a later iteration end; joiners enter now instead.
            self.boundary_pending = False
            self.btoken += 1
            joiners, self.joiners = self.joiners, []
            self._admit(joiners, now)
        self._reschedule()
