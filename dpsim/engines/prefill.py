"""Prefill engine (one per GPU): forms batches from its ready queue and runs forward passes whose
KV traffic is part of the flow-level network.

Layerwise prefill (§S3), coarse mode (default): a batch of compute time T over L layers streams
each request's cached KV in (paced by compute: it cannot run more than a layer ahead, so its
rate is capped at bytes / (T (L-1)/L)) and streams the produced KV out, starting after the
first layer.  The batch ends at max(t0 + T, inputs done + T/L, outputs done): compute waits for
inputs, and the last layer's attention runs after its KV arrived.  Fine mode (``fine``) runs
one event per layer (compute, inbound Layer Blocks, outbound Layer Blocks) to validate the
coarse mode on small cases.

Non-layerwise (Basic, §S9): all cached KV must be in HBM before the forward (one transfer of
Full Blocks), then compute T, then the KV goes out to the DE buffer; the engine is busy until
the KV has left HBM.
"""
from __future__ import annotations

import math
from collections import deque

INF = math.inf


class PrefillEngine:
    def __init__(self, sim, gpu, idx: int):
        self.sim = sim
        self.gpu = gpu
        self.idx = idx  # index among PEs
        self.queue: deque = deque()
        self.busy = False
        self.seq = 0  # unfinished requests assigned here (§S6 seq_e)
        self.tok = 0  # their tokens (§S6 tok_e)
        self.batches = 0
        self.busy_time = 0.0
        self.attn_times: list = []  # per-forward attention time (attention-time balance)
        self.batch_log: list = []  # (start, end, requests, new tokens) when sim.timeline
        self.group = None

    @property
    def name(self) -> str:
        return f"PE{self.idx}@gpu{self.gpu.gid}"

    def enqueue(self, req, front: bool = False) -> None:
        req.stage = "prefill_queue"
        if front:
            self.queue.appendleft(req)
        else:
            self.queue.append(req)
        if not self.busy:
            self._start()

    # ------------------------------------------------------------------ batches
    def _start(self) -> None:
        sim = self.sim
        if not self.queue:
            return
        items = sim.policy.form_batch(self, self.queue)
        if not items:
            # Nothing fits (e.g. HBM): the head request cannot ever run here.
            req = self.queue.popleft()
            sim.fail(req, "prefill batch cannot hold the request's KV in PE HBM (non-layerwise "
                          "prefill): use system.layerwise=true or a GPU with more HBM")
            self._start()
            return
        self.busy = True
        Batch(self, items)

    def batch_done(self, batch) -> None:
        sim = self.sim
        now = sim.env.now
        self.batches += 1
        self.busy_time += now - batch.t0
        if sim.timeline:
            self.batch_log.append((batch.t0, now, len(batch.items), sum(b for _r, b in batch.items)))
        requeue = []
        for req, bsz in batch.items:
            req.computed += bsz
            if req.computed >= req.new:
                sim.prefill_done(req)
            else:
                requeue.append(req)
        for req in reversed(requeue):
            req.stage = "prefill_queue"
            self.queue.appendleft(req)
        self.busy = False
        if self.queue:
            self._start()


class Batch:
    """One forward pass of a PE over ``items`` = [(request, new tokens this pass)]."""

    __slots__ = ("eng", "items", "t0", "T", "L", "pin", "pout", "t_in", "timer_fired",
                 "compute_done", "out_started", "finished", "out_list", "layer", "ep")

    def __init__(self, eng: PrefillEngine, items: list):
        sim = eng.sim
        env = sim.env
        self.eng = eng
        self.items = items
        self.t0 = env.now
        cm = sim.compute
        new_sum = 0
        work = 0.0
        for req, bsz in items:
            if req.n_chunks == 0:
                req.t_pf0 = self.t0
            req.n_chunks += 1
            req.stage = "prefill"
            new_sum += bsz
            work += cm.attn_work(req.hit + req.computed, bsz)
        self.T = cm.prefill_time(new_sum, work, len(items))
        eng.attn_times.append(cm.attention_time_forward(new_sum, work, len(items)))
        self.L = cm.n_layers
        self.pin = 0
        self.pout = 0
        self.t_in = self.t0
        self.timer_fired = False
        self.compute_done = False
        self.out_started = False
        self.finished = False
        self.out_list = []
        sysc = sim.sys
        if sysc["layerwise"] and sim.fine_layers:
            self.layer = 0
            self._fine_layer()
            return
        self.layer = -1
        ins = []
        for req, bsz in items:
            cached = req.hit + req.computed
            inb = cached * sim.kvb
            if inb > 0:
                ins.append((req, inb))
            outb = bsz * sim.kvb
            if req.computed == 0 and req.path == "pe":
                outb += req.hit * sim.kvb  # PE path forwards hit KV with the new KV (§S4 step 3)
            elif req.computed == 0 and req.path == "split":
                outb += (req.hit - req.split_de) * sim.kvb
            self.out_list.append((req, outb))
        self.ep = new_sum * sim.ep_prefill_tok  # model traffic leaving the node
        if sysc["layerwise"]:
            pace = self.T * (self.L - 1) / self.L if self.L > 1 else 0.0
            for req, inb in ins:
                self.pin += sim.start_pe_input(req, eng, inb, pace, self._in_done)
            self.pout += sim.start_model_traffic(eng, self.ep, self.T, self._out_done)
            sim.timer(self.T, self._timer)
            sim.timer(self.T / self.L, self._start_out)
            if self.pin == 0:
                self.t_in = self.t0
        else:
            for req, inb in ins:
                self.pin += sim.start_pe_input(req, eng, inb, 0.0, self._in_done_basic)
            if self.pin == 0:
                self._compute_basic()

    # ---- layerwise, coarse
    def _in_done(self, _tr=None) -> None:
        self.pin -= 1
        if self.pin == 0:
            self.t_in = self.eng.sim.env.now
            if self.timer_fired:
                self._after_compute()

    def _timer(self, _ev=None) -> None:
        self.timer_fired = True
        if self.pin == 0:
            self._after_compute()

    def _after_compute(self) -> None:
        sim = self.eng.sim
        tail = self.t_in + self.T / self.L
        now = sim.env.now
        if tail > now + 1e-15:
            sim.timer(tail - now, self._compute_finished)
        else:
            self._compute_finished()

    def _compute_finished(self, _ev=None) -> None:
        self.compute_done = True
        self._check()

    def _start_out(self, _ev=None) -> None:
        sim = self.eng.sim
        self.out_started = True
        pace = self.T * (self.L - 1) / self.L if self.L > 1 else 0.0
        for req, outb in self.out_list:
            if outb > 0:
                self.pout += sim.start_pe_output(req, self.eng, outb, pace, self._out_done)
        self._check()

    def _out_done(self, _tr=None) -> None:
        self.pout -= 1
        self._check()

    def _check(self) -> None:
        if self.compute_done and self.out_started and self.pout == 0 and not self.finished:
            self.finished = True
            self.eng.batch_done(self)

    # ---- non-layerwise (Basic)
    def _in_done_basic(self, _tr=None) -> None:
        self.pin -= 1
        if self.pin == 0:
            self._compute_basic()

    def _compute_basic(self) -> None:
        sim = self.eng.sim
        self.pout += sim.start_model_traffic(self.eng, self.ep, self.T, self._out_done)
        sim.timer(self.T, self._compute_done_basic)

    def _compute_done_basic(self, _ev=None) -> None:
        sim = self.eng.sim
        self.compute_done = True
        self.out_started = True
        for req, outb in self.out_list:
            if outb > 0:
                self.pout += sim.start_pe_output(req, self.eng, outb, 0.0, self._out_done)
        self._check()

    # ---- layerwise, fine (one event chain per layer; for validation on small cases)
    def _fine_layer(self) -> None:
        """Layer l: wait for its inbound Layer Blocks, compute T/L, then send its outbound KV.
        Inbound for layer l+1 is prefetched while layer l computes (double buffering)."""
        sim = self.eng.sim
        L = self.L
        self.layer = 0
        # Per-layer byte volumes.
        self.out_list = []
        ins = []
        for req, bsz in self.items:
            cached = req.hit + req.computed
            inb = cached * sim.kvb / L
            outb = bsz * sim.kvb
            if req.computed == 0 and req.path == "pe":
                outb += req.hit * sim.kvb
            elif req.computed == 0 and req.path == "split":
                outb += (req.hit - req.split_de) * sim.kvb
            ins.append((req, inb))
            self.out_list.append((req, outb / L))
        fine = _FineRun(self, ins)
        fine.fetch(0)


class _FineRun:
    """Per-layer chain: in[l] -> compute[l] -> out[l]; in[l+1] overlaps compute[l]."""

    def __init__(self, batch: Batch, ins: list):
        self.b = batch
        self.ins = ins
        self.in_pending = {}
        self.in_ready = set()
        self.computing = -1
        self.next_compute = 0
        self.out_pending = 0
        self.done_layers = 0

    def fetch(self, l: int) -> None:
        b = self.b
        sim = b.eng.sim
        if l >= b.L:
            return
        n = 0
        for req, inb in self.ins:
            if inb > 0:
                n += sim.start_pe_input(req, b.eng, inb, 0.0, lambda _t, l=l: self._in_done(l))
        self.in_pending[l] = n
        if n == 0:
            self._in_done(l, counted=False)

    def _in_done(self, l: int, counted: bool = True) -> None:
        if counted:
            self.in_pending[l] -= 1
        if self.in_pending[l] == 0:
            self.in_ready.add(l)
            self._try_compute()

    def _try_compute(self) -> None:
        b = self.b
        l = self.next_compute
        if self.computing < 0 and l in self.in_ready and l < b.L:
            self.computing = l
            self.next_compute += 1
            if l + 1 < b.L:
                self.fetch(l + 1)
            b.eng.sim.timer(b.T / b.L, lambda _e, l=l: self._computed(l))

    def _computed(self, l: int) -> None:
        b = self.b
        sim = b.eng.sim
        self.computing = -1
        for req, outb in b.out_list:
            if outb > 0:
                self.out_pending += sim.start_pe_output(req, b.eng, outb, 0.0, self._out_done)
        self.done_layers += 1
        if self.done_layers == b.L:
            b.compute_done = True
            b.out_started = True
            b.pout = self.out_pending
            self._maybe_finish()
        else:
            self._try_compute()

    def _out_done(self, _t) -> None:
        self.out_pending -= 1
        if self.b.compute_done:
            self.b.pout = self.out_pending
            self._maybe_finish()

    def _maybe_finish(self) -> None:
        b = self.b
        if b.compute_done and self.out_pending == 0 and not b.finished:
            b.finished = True
            b.eng.batch_done(b)
