"""Prefill engine (one per GPU): forms batches from its ready queue and runs forward passes
whose KV traffic is part of the flow-level network.

How a forward moves its KV is a *prefill strategy* (dpsim/engines/prefill_modes/): layerwise
(§S3, coarse), layerwise fine (one event chain per layer, for validation) or whole-request
(Basic, §S9).  The engine only queues, asks the batcher (the policy's intra-engine rule) for
the next forward, starts the strategy's batch and hands finished requests on.
"""
from __future__ import annotations

from collections import deque
from typing import Callable

from ..lifecycle.stage import Stage

# Stage members as module constants: read on every transition, and a module global is
# much cheaper to read than an enum class attribute.
_PREFILL_QUEUE = Stage.PREFILL_QUEUE


class PrefillDeps:
    """What every PE needs from outside (one shared bundle, not the simulation).  A plain class
    (not a dataclass): the compiled core makes it an extension type with typed fields
    (prefill.pxd), so a batch reads them as C fields."""

    def __init__(self, clock, compute, port, batcher: Callable, strategy: type, first_token: Callable,
                 fail: Callable, kvb: float, n_layers: int, ep_tok: float, timeline: bool):
        self.clock = clock                # now, timer(dt, cb)
        self.compute = compute            # the compute model
        self.port = port                  # dpsim.lifecycle.ports.KVPort
        self.batcher = batcher            # form_batch(engine, queue) -> [(request, new tokens)]
        self.strategy = strategy          # a prefill_modes batch class
        self.first_token = first_token    # first_token(request): all of its prompt is computed
        self.fail = fail                  # fail(request, reason)
        self.kvb = kvb
        self.n_layers = n_layers
        self.ep_tok = ep_tok              # EP all-to-all bytes per prefilled token that leave the node
        self.timeline = timeline


class PrefillEngine:
    def __init__(self, gpu, idx: int, deps: PrefillDeps):
        self.deps = deps
        self.gpu = gpu
        self.idx = idx  # index among PEs
        self.queue: deque = deque()
        self.busy = False
        self.seq = 0  # unfinished requests assigned here (§S6 seq_e; LoadLedger writes it)
        self.tok = 0  # their tokens (§S6 tok_e; LoadLedger writes it)
        self.batches = 0
        self.busy_time = 0.0
        self.attn_times: list = []  # per-forward attention time (attention-time balance)
        self.batch_log: list = []  # (start, end, requests, new tokens) when timeline
        self.group = None

    @property
    def name(self) -> str:
        return f"PE{self.idx}@gpu{self.gpu.gid}"

    def enqueue(self, req, front: bool = False) -> None:
        req.stage = _PREFILL_QUEUE
        if front:
            self.queue.appendleft(req)
        else:
            self.queue.append(req)
        if not self.busy:
            self._start()

    def _start(self) -> None:
        d = self.deps
        while self.queue:
            items = d.batcher(self, self.queue)
            if items:
                self.busy = True
                d.strategy(self, items)
                return
            # Nothing fits (e.g. HBM): the head request cannot ever run here.
            req = self.queue.popleft()
            d.fail(req, "prefill batch cannot hold the request's KV in PE HBM (non-layerwise "
                        "prefill): use system.layerwise=true or a GPU with more HBM")

    def batch_done(self, batch) -> None:
        d = self.deps
        now = d.clock.time()
        items = batch.items
        t0 = batch.t0
        self.batches += 1
        self.busy_time += now - t0
        if d.timeline:
            new_sum = 0
            for _r, b in items:
                new_sum += b
            self.batch_log.append((t0, now, len(items), new_sum))
        requeue = []
        for req, bsz in items:
            req.computed += bsz
            if req.computed >= req.new:
                d.first_token(req)
            else:
                requeue.append(req)
        for req in reversed(requeue):
            req.stage = _PREFILL_QUEUE
            self.queue.appendleft(req)
        self.busy = False
        if self.queue:
            self._start()
