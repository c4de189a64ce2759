"""Basic's scheduler (§S9 "no DualPath scheduling"): one global FIFO queue; a request leaves it
only when a PE can take it.

The paper's Basic is "the same framework" without layerwise prefill, dual-path loading or the
§S6 scheduler.  What the framework keeps is the request's way through a PE (§S4 PE read path):
the PE node reads the hit KV from storage into its DRAM buffer *before prefill*, then the
forward.  What bounds how far ahead a PE reads is the scheduler's business; DualPath's bounds it
by beta (5 s of work per PE).  Here a PE can take a request while the requests it holds that
have not started a forward (still allocating, reading, or ready in its queue) fit in
``system.basic.prefetch_batches`` of its forwards -- under the same limits the batcher applies
(:meth:`Policy.form_batch`): ``batching.max_prefill_tokens`` new tokens and the PE HBM for the
whole prompt KV (non-layerwise; layerwise: two layers of it).  With 1 (the default) a PE is
double-buffered at the batch level: the next batch's storage read into DRAM overlaps the current
forward; its copy into HBM does not (the prefill strategy, whole.py).  A PE holding nothing
always takes the head request (a request too big for its HBM then fails there, with a reason).

So a Basic request's TTFT splits like DualPath's: scheduling (this queue) / allocation (DRAM
buffers) / reading (storage) / prefill (the PE queue, H2D, forward, KV out).

Choices (``system.engine_choice``): ``least_tokens`` -- among the PEs that can take the head,
the one with the least tok_e (ties: lowest index), and the DE with the least tok_e; or
``round_robin`` -- the next PE in turn that can take it, and the next DE in turn.  The queue
is strictly FIFO: when no PE can take the head, nobody behind it is placed.

A PE's room depends only on what it holds, not on whether it is computing, so it grows only
when one of its requests starts its first forward or a held request fails; then the PE is
offered the queue one zero-delay event later -- never from inside the engine's own batching
call -- and, while the head stays the one no PE could take, only that PE is checked (no other
PE's room changed).

Choosing costs O(log engines), not a scan of every engine (issue #10 item 5): a tournament tree
per side (:mod:`dpsim.scheduling.engine_tree`) keeps the least ``(tok_e, index)`` -- the load
ledger reports every change of a tok_e -- and, for PEs, the least prefetch room used in new
tokens and in HBM tokens, so the search for the least-loaded PE that can take the head skips
every subtree in which no PE has room.  ``can_take`` still decides at each PE, so the choice is
exactly the scan's (tests/test_engine_tree.py checks it against a scan).
"""
from __future__ import annotations

from collections import deque

from .base import Policy, register
from .engine_tree import MinTree
from .ledger import new_tokens
from .simple import round_robin_choice

_INF = float("inf")


@register("basic")
class BasicQueuePolicy(Policy):
    def __init__(self, ctx, syscfg):
        super().__init__(ctx, syscfg)
        self.rr = round_robin_choice(syscfg)
        k = int(syscfg["basic"]["prefetch_batches"])
        if k < 1:
            raise ValueError(f"system.basic.prefetch_batches={k} must be >= 1")
        self.lookahead = k
        self.queue: deque = deque()
        n = len(ctx.pes)
        # Per PE: requests held that have not started a forward, their new tokens, their prompt
        # KV in tokens (the measure the batcher's HBM limit uses).
        self.pend_n = [0] * n
        self.pend_new = [0] * n
        self.pend_kv = [0.0] * n
        self.held: dict = {}  # rid -> (pe index, new tokens, kv tokens) as charged to pend_*
        self.cap_new = self.lookahead * self.max_tokens
        self.kv_tokens_per_byte = self.lookahead * self._hbm_div / self._kvb  # x the PE's KV HBM (read when used)
        self._blocked = None  # the head request no PE could take at the last full look
        self._pe_i = -1
        self._de_i = -1
        # O(log n) choices: every tok_e change reaches the trees through the ledger
        for side in (ctx.pes, ctx.des):
            for j, e in enumerate(side):
                if e.idx != j:
                    raise AssertionError(f"engine {e!r} has idx {e.idx}, expected {j}")
        self.pe_tree = MinTree(n)
        self.de_tree = MinTree(len(ctx.des))
        for e in ctx.pes:
            self._pe_room(e.idx)
        for e in ctx.des:
            self.de_tree.set_tok(e.idx, e.tok)
        self.ledger.on_pe = self._pe_tok
        self.ledger.on_de = self._de_tok

    def _pe_tok(self, pe) -> None:
        self.pe_tree.set_tok(pe.idx, pe.tok)

    def _de_tok(self, de) -> None:
        self.de_tree.set_tok(de.idx, de.tok)

    def _pe_room(self, i: int) -> None:
        """PE ``i``'s prefetch room changed: its tree keys (what ``can_take`` compares, its HBM
        read now, as ``can_take`` reads it)."""
        pe = self.ctx.pes[i]
        if self.pend_n[i] == 0:
            self.pe_tree.set(i, pe.tok, -_INF, -_INF)  # takes anything
        else:
            cap = pe.gpu.hbm_kv * self.kv_tokens_per_byte
            self.pe_tree.set(i, pe.tok, self.pend_new[i], self.pend_kv[i] - cap)

    def waiting(self) -> int:
        return len(self.queue)

    # ------------------------------------------------------------------ inter-engine
    def submit(self, req) -> None:
        self.queue.append(req)
        if len(self.queue) == 1:
            self._dispatch()

    def can_take(self, pe, req) -> bool:
        i = pe.idx
        if self.pend_n[i] == 0:
            return True
        return (self.pend_new[i] + new_tokens(req) <= self.cap_new
                and self.pend_kv[i] + req.prompt <= pe.gpu.hbm_kv * self.kv_tokens_per_byte)

    def _choose_pe(self, req):
        """Least tok_e (ties: lowest index) among the PEs that can take ``req`` (round robin:
        the next one in turn that can); None if none can."""
        pes = self.ctx.pes
        amax = self.cap_new - new_tokens(req)   # can_take => pend_new <= amax
        bmax = 1.0 - req.prompt                 # can_take => pend_kv - cap <= bmax (+1 token
        #                                         of slack for rounding: can_take decides)

        def ok(i):
            return self.can_take(pes[i], req)

        if self.rr:
            i = self.pe_tree.first_with_room((self._pe_i + 1) % len(pes), amax, bmax, ok)
            if i < 0:
                return None
            self._pe_i = i
            return pes[i]
        i = self.pe_tree.least_with_room(amax, bmax, ok)
        return pes[i] if i >= 0 else None

    def _choose_de(self):
        des = self.ctx.des
        if self.rr:
            self._de_i = (self._de_i + 1) % len(des)
            return des[self._de_i]
        return des[self.de_tree.least()]

    def _dispatch(self, hint=None) -> None:
        """Place queue heads while a PE can take them.  ``hint``: the one PE that gained room
        since the head was last found blocked (then only it is checked for that head)."""
        q = self.queue
        while q:
            req = q[0]
            if req is self._blocked and hint is not None:
                pe = hint if self.can_take(hint, req) else None
                if pe is not None and self.rr:
                    self._pe_i = pe.idx
            else:
                pe = self._choose_pe(req)
            if pe is None:
                self._blocked = req
                return
            q.popleft()
            self._blocked = None
            hint = None
            self._admit(req, pe)

    def _admit(self, req, pe) -> None:
        de = self._choose_de()
        plan = self.plan(req, pe, de)
        i = pe.idx
        t = new_tokens(req)
        self.pend_n[i] += 1
        self.pend_new[i] += t
        self.pend_kv[i] += req.prompt
        self.held[req.rid] = (i, t, req.prompt)
        self._pe_room(i)
        self.ledger.charge_pe(req, pe)
        self.ledger.charge_de(req, de)
        self.ctx.assign(req, pe, de, plan)

    def _release(self, req) -> bool:
        h = self.held.pop(req.rid, None)
        if h is None:
            return False
        i, t, kv = h
        self.pend_n[i] -= 1
        self.pend_new[i] -= t
        self.pend_kv[i] -= kv
        self._pe_room(i)
        return True

    def _offer(self, pe) -> None:
        if self.queue:
            self.ctx.clock.timer(0.0, self._dispatch, pe)

    def on_request_done(self, req) -> None:
        if self._release(req):  # it failed before its first forward
            self._offer(req.pe)

    # ------------------------------------------------------------------ intra-engine
    def form_batch(self, pe, queue) -> list:
        items = super().form_batch(pe, queue)
        freed = False
        for req, _b in items:
            if req.n_chunks == 0 and self._release(req):
                freed = True
        if freed:
            self._offer(pe)
        return items
