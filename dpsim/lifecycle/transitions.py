"""One round's way through the cluster (§S4), one method per stage transition.

Read it top to bottom, like a recipe:

1. ``issue``       an agent's round arrives; the policy gets it              ARRIVED
2. ``assign``      the policy chose PE, DE and a read plan                   SCHEDULED
                   -> DRAM buffers: the DE buffer first when the plan reads into it, the PE
                   buffer for the PE side's hit KV
3. ``_allocated``  buffers held; wait until the previous round's KV is
                   persisted (only stored Full Blocks can hit)               ALLOCATED
4. ``_read``       hit KV storage -> SNIC -> DRAM on each side of the plan   READING
5. ``_read_done``  (DE buffer now, on the PE-only plan) -> the PE's queue     PREFILL_QUEUE
                   [the PE engine and its prefill strategy run the forwards]  PREFILL
6. ``first_token`` the prompt is computed and its KV is in the DE buffer;
                   the DE persists the prompt's new Full Blocks (§S10)       DE_ALLOC
7. ``_de_h2d``     DE HBM for prompt + generated KV, then H2D DE buffer ->
                   DE GPU; the buffer is freed once H2D and persist are done  DE_H2D
                   [the DE engine decodes the batch analytically]           DECODE
8. ``decode_done`` the last token: HBM freed, the generated KV's new Full
                   Blocks go GPU -> DRAM -> storage; the agent's next round
                   arrives after its think time                              DONE

Fixed costs (``costs``, :class:`~dpsim.lifecycle.costs.LifecycleCosts`; docs/fixed_costs.md):
``assign``'s effect waits for the scheduler decision + RPC (``t_sched``: the engines have it) and
the buffer allocation call -- one timer for both; the port reads a request's hit blocks in rounds
of the storage queue depth, each paying the read latency; the PE -> DE hand-off delays the DE's
HBM request after the first token.  A zero cost sets no timer.

``fail`` ends a request anywhere (FAILED); its agent stops.  The lifecycle owns no policy
decision: the plan says where hit KV is read, the ledger keeps the loads, the port moves bytes.
"""
from __future__ import annotations

import math
from array import array
from collections import deque

from .costs import LifecycleCosts
from .join import Join
from .request import ROUND_COLS, new_request
from .stage import Stage

# Stage members as module constants: read on every transition, and a module global is
# much cheaper to read than an enum class attribute.
_SCHEDULED, _ALLOCATED, _READING, _DE_ALLOC = Stage.SCHEDULED, Stage.ALLOCATED, Stage.READING, Stage.DE_ALLOC
_DE_H2D, _DONE, _FAILED = Stage.DE_H2D, Stage.DONE, Stage.FAILED
_RC = ROUND_COLS  # (a C constant in the compiled core)


def _pe(req):
    """``req``'s prefill engine (typed in the compiled core: what follows is C field reads)."""
    return req.pe


def _de(req):
    """``req``'s decode engine (typed in the compiled core)."""
    return req.de


def _free_pe_buffer(req) -> None:
    """Give back the hit KV ``req`` holds in its PE node's buffer, if any."""
    if req.pe_buf > 0:
        _pe(req).gpu.node.buffer.free(req.pe_buf)
        req.pe_buf = 0.0


class Lifecycle:
    def __init__(self, clock, port, ledger, log, kvb: float, block: int, persist: bool,
                 track_first: bool, costs=None):
        self.clock = clock
        self.port = port
        self.ledger, self.log, self.kvb, self.block = ledger, log, kvb, block
        # Callbacks set per request, bound once (reading ``self.method`` allocates a bound method).
        self._dispatch_cb, self._issue_cb = self._dispatch, self.issue
        self._alloc_pe_cb, self._to_prefill_cb = self._alloc_pe_buffer, self._to_prefill
        self.persist = persist
        self.policy = None  # set by the builder (the policy needs the lifecycle's assign)
        self.progress = None  # a tqdm bar, or None
        self.on_agent_done = None  # callable(agent): the driver's hook
        self.on_change = None  # callable(): a request ended (None: no one asks after each request)
        self.track_first = track_first  # keep requests awaiting a first token (online driver)
        self.awaiting_first: deque = deque()  # requests in arrival order (pruned by the online driver)
        self.first_token_times, self.first_token_ttft = array("d"), array("d")  # t_first, TTFT, in time order
        self.n_rid = self.outstanding = self.n_done = self.n_failed = 0
        c = costs if costs is not None else LifecycleCosts()  # (read_queue_depth: the port's)
        self.pre_s, self.alloc_s, self.handoff_s = c.sched_s + c.alloc_s, c.alloc_s, c.handoff_s

    # ------------------------------------------------------------------ 1 arrival
    def start_agent(self, agent, t: float | None = None) -> None:
        agent.t_start = self.clock.time() if t is None else t
        self.issue(agent)

    def issue(self, agent, _ev=None) -> None:
        i = agent.next_round
        agent.next_round += 1
        self.n_rid += 1
        j = _RC * i  # the round's row: [prompt, hit, gen, think_s] (request.round_table)
        req = new_request(self.n_rid, agent, i, int(agent._rounds[j]), int(agent._rounds[j + 1]),
                          int(agent._rounds[j + 2]), self.clock.time())
        self.log.issued(req)
        if self.track_first:
            self.awaiting_first.append(req)
        self.outstanding += 1
        self.policy.submit(req)

    # ------------------------------------------------------------------ 2 scheduling, allocation
    def assign(self, req, pe, de, plan) -> None:
        """The policy's decision: ``req`` goes to ``pe`` and ``de``, its hit KV read as ``plan``
        (a :class:`~dpsim.scheduling.read_paths.ReadPlan`; the policy clamped ``req.hit``)."""
        req.stage = _SCHEDULED
        req.pe, req.de = pe, de
        req.new = req.prompt - req.hit
        req.path = plan.label
        req.de_hit = plan.de_tokens
        if self.pre_s > 0.0:  # decision + RPC to the engines, then the buffer allocation call
            self.clock.timer(self.pre_s, self._dispatch_cb, req)
        else:
            self._dispatch(req)

    def _dispatch(self, req) -> None:  # the engines had the decision alloc_s ago; buffers next
        req.t_sched = self.clock.time() - self.alloc_s
        if req.path == "pe":
            # The DE buffer is needed only once prefill streams KV out: taken after the read.
            self._alloc_pe_buffer(req)
        else:  # hit KV lands in the DE buffer: take it first (the whole prompt's KV)
            self._alloc_de_buffer(req, self._alloc_pe_cb)

    def _alloc_de_buffer(self, req, then) -> None:
        b = req.prompt * self.kvb
        g = _de(req).gpu
        if g.node.buffer.alloc_or_wait(b, _step(self, _S_DE_BUFFER_GRANTED, req, then, None, b, 0, 0)):
            self._de_buffer_granted(req, b, then)

    def _de_buffer_granted(self, req, b: float, then) -> None:
        req.de_buf = b
        then(req)

    def _alloc_pe_buffer(self, req) -> None:
        pe_hit = req.hit - req.de_hit
        if pe_hit > 0:
            b = pe_hit * self.kvb
            req.pe_buf = b
            g = _pe(req).gpu
            if not g.node.buffer.alloc_or_wait(b, _step(self, _S_ALLOCATED, req, None, None, 0.0, 0, 0)):
                return
        self._allocated(req)

    def _allocated(self, req) -> None:
        req.t_alloc = self.clock.time()
        req.stage = _ALLOCATED
        agent = req.agent
        if agent.persist_pending > 0:
            agent.wait_for_persist(req)
            return
        self._read(req)

    # ------------------------------------------------------------------ 3 storage read
    def _read(self, req) -> None:
        now = self.clock.time()
        req.t_read0 = now
        stored = req.agent.stored
        if req.hit > stored:  # only Full Blocks that are really in storage can hit
            req.hit = stored
            req.new = req.prompt - req.hit
            self.ledger.recharge_pe(req)
            if req.de_hit > req.hit:
                req.de_hit = req.hit
        if req.hit <= 0:
            req.t_read1 = now
            self._read_done(req)
            return
        req.stage = _READING
        de_t = req.de_hit
        pe_t = req.hit - de_t
        parts = (de_t > 0) + (pe_t > 0)
        join = Join(parts, _step(self, _S_READ_JOINED, req, None, None, 0.0, 0, 0))
        kvb = self.kvb
        ledger = self.ledger
        for node, tokens in ((_de(req).gpu.node, de_t), (_pe(req).gpu.node, pe_t)):
            if tokens > 0:
                ledger.read_started(node, tokens)
                self.port.storage_read(node, tokens * kvb,
                                       _step(self, _S_READ_PART, None, node, join, 0.0, tokens, 0), req.rid)

    def _read_part(self, node, tokens: int, join: Join) -> None:
        self.ledger.read_finished(node, tokens)
        join.part_done()

    def _read_joined(self, req) -> None:
        req.t_read1 = self.clock.time()
        self._read_done(req)

    def _read_done(self, req) -> None:
        if req.de_buf == 0.0:
            self._alloc_de_buffer(req, self._to_prefill_cb)
        else:
            self._to_prefill(req)

    def _to_prefill(self, req) -> None:
        _pe(req).enqueue(req)

    # ------------------------------------------------------------------ 4 first token
    def first_token(self, req) -> None:
        """All of the prompt is computed and its KV is in the DE buffer (PE callback)."""
        now = self.clock.time()
        req.t_first = now
        self.first_token_times.append(now)
        self.first_token_ttft.append(now - req.arrival)
        self.ledger.release_pe(req)
        _free_pe_buffer(req)
        self.policy.on_prefill_done(req)
        # The DE persists the prompt's new Full Blocks from its buffer (§S10) while the request
        # waits for HBM and is copied in; the buffer is freed when both are done.
        agent = req.agent
        blk = self.block
        new_blocks = req.prompt // blk - req.hit // blk
        stored_after = (req.prompt // blk) * blk
        free_buf = Join(1, _step(self, _S_FREE_DE_BUFFER, req, None, None, 0.0, 0, 0))
        req.stage = _DE_ALLOC
        if new_blocks > 0 and self.persist:
            free_buf.add()
            agent.persist_pending += 1
            self.port.storage_write(_de(req).gpu.node, new_blocks * self.port.full_block_bytes,
                                    _step(self, _S_PERSISTED, None, agent, free_buf, 0.0, stored_after, 0),
                                    "persist", req.rid)
        elif stored_after > agent.stored:
            agent.stored = stored_after
        if self.handoff_s > 0.0:  # the PE tells the DE its KV is complete; the DE acknowledges
            self.clock.timer(self.handoff_s, _step(self, _S_DE_REQUEST_HBM, req, None, free_buf, 0.0, 0, 0))
        else:
            self._de_request_hbm(req, free_buf)

    def _persisted(self, agent, stored_after: int, join: Join | None) -> None:
        agent.stored = max(agent.stored, stored_after)
        agent.persist_pending -= 1
        if agent.persist_pending == 0 and agent.persist_waiters is not None:
            w, agent.persist_waiters = agent.persist_waiters, None
            for r in w:
                self._read(r)
        if join is not None:
            join.part_done()

    def _free_de_buffer(self, req) -> None:
        if req.de_buf > 0:
            _de(req).gpu.node.buffer.free(req.de_buf)
            req.de_buf = 0.0

    # ------------------------------------------------------------------ 5 DE HBM + H2D
    def _de_request_hbm(self, req, free_buf: Join) -> None:
        de = req.de
        need = (req.prompt + req.gen) * self.kvb
        g = de.gpu
        if de.alloc_q or g.hbm_used + need > g.hbm_kv:
            de.alloc_q.append((req, free_buf))
            return
        self._de_h2d(req, need, free_buf)

    def _de_h2d(self, req, need: float, free_buf: Join) -> None:
        g = _de(req).gpu
        g.hbm_used += need
        if g.hbm_used > g.hbm_peak:
            g.hbm_peak = g.hbm_used
        req.stage = _DE_H2D
        self.port.de_h2d(g, req.prompt * self.kvb, _step(self, _S_DE_H2D_DONE, req, None, free_buf, 0.0, 0, 0), req.rid)

    def _de_h2d_done(self, req, free_buf: Join) -> None:
        req.t_h2d = self.clock.time()
        free_buf.part_done()
        _de(req).join(req)

    def _de_hbm_freed(self, de) -> None:
        q = de.alloc_q
        kvb = self.kvb
        g = de.gpu
        while q:
            req, free_buf = q[0]
            need = (req.prompt + req.gen) * kvb
            if g.hbm_used + need > g.hbm_kv * (1 + 1e-12):
                break
            q.popleft()
            self._de_h2d(req, need, free_buf)

    # ------------------------------------------------------------------ 6 end of decode
    def decode_done(self, req, de) -> None:
        """The request's last token is out (DE callback)."""
        now = self.clock.time()
        req.t_end = now
        if req.gen <= 1:
            req.t_second = math.nan
        req.stage = _DONE
        g = de.gpu
        g.hbm_used -= (req.prompt + req.gen) * self.kvb
        if g.hbm_used < 0:
            g.hbm_used = 0.0
        self.ledger.release_de(req)
        agent = req.agent
        blk = self.block
        ctx = req.prompt + req.gen
        gen_blocks = ctx // blk - req.prompt // blk
        stored = (ctx // blk) * blk
        if gen_blocks > 0 and self.persist:
            agent.persist_pending += 1
            b = gen_blocks * self.port.full_block_bytes
            # D2H of the generated KV into the DE buffer (once it has room), then to storage.
            go = _step(self, _S_GEN_D2H, None, agent, g, b, stored, req.rid)
            if g.node.buffer.alloc_or_wait(b, go):
                go()
        elif stored > agent.stored:
            agent.stored = stored
        self._de_hbm_freed(de)
        self._finished(req)

    def _gen_d2h(self, agent, g, b: float, stored: int, rid: int) -> None:
        self.port.d2h(g, b, _step(self, _S_GEN_TO_STORAGE, None, agent, g.node, b, stored, 0), rid)

    def _gen_to_storage(self, agent, node, b: float, stored: int) -> None:
        self.port.storage_write(node, b, _step(self, _S_GEN_PERSISTED, None, agent, node, b, stored, 0),
                                "persist_gen", agent.aid)

    def _gen_persisted(self, agent, node, b: float, stored: int) -> None:
        node.buffer.free(b)
        self._persisted(agent, stored, None)

    def _finished(self, req) -> None:
        self.outstanding -= 1
        self.n_done += 1
        agent = req.agent
        agent.n_done += 1
        self.policy.on_request_done(req)
        self.log.finished(req)
        if self.progress is not None:
            self.progress.update(1)
        if agent.next_round < agent.n_rounds and not agent.failed:
            think = float(agent._rounds[_RC * agent.next_round + 3])
            if think > 0:
                self.clock.timer(think, self._issue_cb, agent)
            else:
                self.issue(agent)
        else:
            agent.t_end = self.clock.time()
            self.on_agent_done(agent)
        if self.on_change is not None:
            self.on_change()

    # ------------------------------------------------------------------ failure
    def fail(self, req, reason: str) -> None:
        """``req`` failed with ``reason``; its agent stops (its context is gone)."""
        now = self.clock.time()
        req.stage = _FAILED
        req.fail = reason
        req.t_end = now
        self.outstanding -= 1
        self.n_failed += 1
        agent = req.agent
        agent.failed = True
        agent.t_end = now
        self.ledger.release_pe(req)
        self.ledger.release_de(req)
        _free_pe_buffer(req)
        self._free_de_buffer(req)
        self.policy.on_request_done(req)  # it leaves the system: policies drop its load
        self.log.finished(req)
        self.on_agent_done(agent)
        if self.on_change is not None:
            self.on_change()


# ---------------------------------------------------------------------- pending transitions
# Which transition a _Step runs (see _Step.__call__ for the fields each one reads).
(_S_ALLOCATED, _S_DE_BUFFER_GRANTED, _S_READ_PART, _S_READ_JOINED, _S_FREE_DE_BUFFER, _S_PERSISTED,
 _S_DE_REQUEST_HBM, _S_DE_H2D_DONE, _S_GEN_D2H, _S_GEN_TO_STORAGE, _S_GEN_PERSISTED) = range(11)


class _Step:
    """A transition waiting for its event (a buffer granted, a transfer or timer done, a join
    complete), with its arguments: calling it, with whatever the event passes, runs it.

    Like a form filled in ahead of time, with a box for each kind of answer (a request, two
    objects, a byte count, two integers), where a generic callback would be an envelope holding
    a list of loose notes: ``Call(fn, (self, req, b, then))`` is a Call, a tuple and a boxed
    float, and on a large cluster each is a cache miss when the event comes, tens of thousands
    of requests later.  In the compiled core the fields are C fields and the transition is a
    direct C call."""

    __slots__ = ("lc", "kind", "req", "o1", "o2", "x", "n", "m")

    def __call__(self, *_ignored) -> None:
        lc, k = self.lc, self.kind
        if k == _S_ALLOCATED:
            lc._allocated(self.req)
        elif k == _S_READ_PART:
            lc._read_part(self.o1, self.n, self.o2)
        elif k == _S_READ_JOINED:
            lc._read_joined(self.req)
        elif k == _S_PERSISTED:
            lc._persisted(self.o1, self.n, self.o2)
        elif k == _S_DE_REQUEST_HBM:
            lc._de_request_hbm(self.req, self.o2)
        elif k == _S_DE_H2D_DONE:
            lc._de_h2d_done(self.req, self.o2)
        elif k == _S_FREE_DE_BUFFER:
            lc._free_de_buffer(self.req)
        elif k == _S_DE_BUFFER_GRANTED:
            lc._de_buffer_granted(self.req, self.x, self.o1)
        elif k == _S_GEN_D2H:
            lc._gen_d2h(self.o1, self.o2, self.x, self.n, self.m)
        elif k == _S_GEN_TO_STORAGE:
            lc._gen_to_storage(self.o1, self.o2, self.x, self.n)
        elif k == _S_GEN_PERSISTED:
            lc._gen_persisted(self.o1, self.o2, self.x, self.n)
        else:
            raise ValueError(f"unknown lifecycle step {k}")


def _step(lc, kind: int, req, o1, o2, x: float, n: int, m: int) -> _Step:
    """A :class:`_Step` (in the compiled core a C call that sets its fields)."""
    s = _Step.__new__(_Step)
    s.lc, s.kind, s.req, s.o1, s.o2, s.x, s.n, s.m = lc, kind, req, o1, o2, x, n, m
    return s
