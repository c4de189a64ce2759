"""The paper's central scheduler (§S6), as the ``dualpath`` policy.

Engines form groups (all engines of a node, §S2); a group's leader fetches from the central
scheduler every ``fetch_period_s`` while work is waiting.  On each fetch an engine reports
seq_e (its unfinished requests), tok_e (their tokens) and read_q of its node.

PE side (global FIFO queue), on a PE group's fetch:
  * alpha = tokens a node's SNIC reads in ``alpha_s`` (3 s), beta = tokens one GPU prefills in
    ``beta_s`` (5 s); both derived from the configured hardware and compute model;
  * overloaded: tok_e > beta; short-queue: read_q <= alpha and tok_e <= beta; long-queue:
    read_q > alpha and tok_e <= beta;
  * repeatedly give the head request to the short-queue engine with the least tok_e, else the
    long-queue engine with the least tok_e; update tok_e; stop when both classes are empty.

DE side (two levels), on a DE group's fetch:
  * drain the global DE queue, giving each request to the DE group with the least total tok_e
    (into that group's private queue);
  * within the fetching group: R = the longest head prefix of its private queue that fits the
    group's total free HBM; Z = ``z_factor`` x (sum_{r in R} len_r + sum_e tok_e) / |E|; pop
    the head; among DEs with enough free HBM prefer those with tok_e + len_r <= Z and take the
    least seq_e, otherwise the least tok_e; if no DE has the HBM, end the fetch.

Once a request has its PE and DE, its hit KV is read on the side whose node has the shorter
read_q (``read_path: shorter_queue``; ``split`` splits it).

Token accounting (§S6 uses tokens as the one load proxy): a PE's tok_e counts the tokens it
must prefill (prompt - hit); a DE's tok_e counts prompt + generated tokens (the KV it will hold
in HBM).  A DE's free HBM is what is not allocated now (§S4: a DE allocates a request's HBM only
once its prompt KV is in the DE buffer), so a DE may be assigned more than fits at once; the
excess waits for HBM after prefill.

Intra-engine (PE): requests join a forward FIFO while the predicted attention time stays within
``quota_s`` (300 ms); the request that would overflow is chunk-prefilled with the largest new-
token count that fits (binary search).  ``quota_scope`` says whether the quota bounds one layer's
attention or the forward's (§S10 leaves it open).
"""
from __future__ import annotations

from heapq import heapify, heappop, heappush
import math
from collections import deque

from .base import Policy, register
from .ledger import new_tokens


def _groups(nodes, engines) -> list:
    """Groups: all engines of a node, in node order; each engine learns its group's index."""
    groups = []
    for n in nodes:
        g = [e for e in engines if e.gpu.node is n]
        for e in g:
            e.group = len(groups)
        groups.append(g)
    return groups


class DualPathPolicy(Policy):
    # Registered below the class (not decorated): the compiled core makes it an extension type,
    # which takes no Python decorator.
    name = "dualpath"

    def __init__(self, ctx, syscfg):
        super().__init__(ctx, syscfg)
        sc = syscfg["dualpath"]
        self.period = float(sc["fetch_period_s"])
        if not self.period > 0:
            raise ValueError(f"system.dualpath.fetch_period_s must be > 0 (got {self.period})")
        self.alpha_s = float(sc["alpha_s"])
        self.beta_s = float(sc["beta_s"])
        self.z = float(sc["z_factor"])
        b = syscfg["batching"]
        self.quota = float(b["quota_s"])
        self.quota_scope = b["quota_scope"]
        if self.quota_scope not in ("forward", "layer"):
            raise ValueError(f"system.batching.quota_scope={self.quota_scope!r} must be 'forward' or 'layer'")
        self.use_quota = bool(b["use_quota"])
        self.alpha = self.alpha_s * ctx.snic_Bps / ctx.kvb  # tokens a node reads in alpha_s
        self.beta = self.beta_s * self._prefill_tokens_per_s()
        self.pe_queue: deque = deque()
        self.de_queue: deque = deque()
        self.pe_groups = _groups(ctx.prefill_nodes, ctx.pes)
        self.de_groups = _groups(ctx.decode_nodes, ctx.des)
        self.de_private = [deque() for _ in self.de_groups]
        # A PE group whose last fetch found every engine overloaded (tok_e > beta) stays so until
        # one of its engines' tok_e drops to beta or below, which only the ledger does: the
        # ledger reports each change (``_pe_tok``), and a tick skips a full group without
        # reading its engines -- on a saturated large cluster most groups, most ticks.
        self._pe_full = [False] * len(self.pe_groups)
        self.ledger.on_pe = self._pe_tok
        self._n_private = 0  # requests in all private queues
        self._busy_groups: set = set()  # DE groups whose private queue is not empty
        # A DE group's total tok_e: its engines' tok_e plus its private queue (level 1 picks the
        # least), with a lazy min-heap so the choice is O(log groups); rebuilt when stale
        # entries outnumber live ones, so it stays O(groups) in size.
        self.de_group_tok = [0 for _ in self.de_groups]
        self._gheap = [(0, j) for j in range(len(self.de_groups))]
        self._ticking = False
        self.fetches = 0

    def _prefill_tokens_per_s(self) -> float:
        """Profiled prefill throughput of one GPU on a full token-budget batch at a typical
        agentic context (the mean hit of the workload's rounds)."""
        ctx = self.ctx
        hits = [float(a.traj.hit.mean()) for a in ctx.agents[:256] if a.traj.n_rounds]
        c = sum(hits) / len(hits) if hits else 0.0
        n = self.max_tokens
        per = max(1, int(n // 512))  # requests of 512 new tokens each (assumption for the profile)
        work = per * ctx.compute.attn_work(c, n / per)
        t = ctx.compute.prefill_time(n, work, per)
        return n / t if t > 0 else math.inf

    def waiting(self) -> int:
        return len(self.pe_queue) + len(self.de_queue) + self._n_private

    # ------------------------------------------------------------------ arrivals and fetches
    def submit(self, req) -> None:
        self.pe_queue.append(req)
        self.de_queue.append(req)
        if not self._ticking:
            self._ticking = True
            # Fetches happen on the period grid, as a leader's periodic fetch would.
            clock = self.ctx.clock
            now = clock.now
            nxt = (math.floor(now / self.period) + 1) * self.period
            clock.timer(nxt - now, self._tick)

    def _tick(self, _ev=None) -> None:
        # Group leaders fetch asynchronously, each at its own phase of the period; one tick per
        # period with the fetch order rotated emulates that without an event per group (the
        # group that fetches first after an arrival gets it).  Groups with nothing to do are
        # skipped (a fetch on an empty queue changes nothing), so a tick costs what it places.
        self.fetches += 1
        k = self.fetches
        npg = len(self.pe_groups)
        q = self.pe_queue
        full = self._pe_full
        for j in range(npg):
            if not q:
                break
            gi = (k + j) % npg
            if not full[gi]:
                self._pe_fetch(gi)
        ndg = len(self.de_groups)
        self._de_level1()
        busy = self._busy_groups
        if busy:
            # Rotated fetch order: by (g - k) mod groups (distinct keys, so the order is total).
            order = []
            for g in busy:
                order.append(((g - k) % ndg, g))
            order.sort()
            for _key, gi in order:
                self._de_level2(gi)
        if self.waiting():
            self.ctx.clock.timer(self.period, self._tick)
        else:
            self._ticking = False

    def _pe_fetch(self, gi: int) -> None:
        q = self.pe_queue
        if not q:
            return
        engs = self.pe_groups[gi]
        beta = self.beta
        alpha = self.alpha
        ledger = self.ledger
        while q:
            best_s = best_l = None
            for e in engs:
                if e.tok > beta:
                    continue  # overloaded
                g = e.gpu
                if g.node.read_q <= alpha:
                    if best_s is None or e.tok < best_s.tok:
                        best_s = e
                elif best_l is None or e.tok < best_l.tok:
                    best_l = e
            best = best_s if best_s is not None else best_l
            if best is None:
                self._pe_full[gi] = True  # until an engine's tok_e drops to beta (_pe_tok)
                return  # both classes empty: the fetch stops
            req = q.popleft()
            ledger.charge_pe(req, best)
            self._maybe_assign(req)

    def _pe_tok(self, pe) -> None:
        """The ledger changed ``pe``'s tok_e: its group may take work again."""
        if pe.tok <= self.beta:
            self._pe_full[pe.group] = False

    def _de_fetch(self, gi: int) -> None:
        """One DE group's fetch: level 1 (drain the global queue), then level 2 for the group."""
        self._de_level1()
        self._de_level2(gi)

    def _de_level1(self) -> None:
        """Drain the global DE queue to groups by least total tok_e."""
        q = self.de_queue
        while q:
            req = q.popleft()
            j = self._least_loaded_group()
            self._group_add(j, req.prompt + req.gen)
            self.de_private[j].append(req)
            self._n_private += 1
            self._busy_groups.add(j)

    def _de_level2(self, gi: int) -> None:
        """Place the group's private queue on its engines."""
        pq = self.de_private[gi]
        if not pq:
            return
        kvb = self.ctx.kvb
        engs = self.de_groups[gi]
        total_free = 0.0
        tok_sum = 0
        for e in engs:
            g = e.gpu
            f = g.hbm_kv - g.hbm_used
            if f > 0:
                total_free += f
            tok_sum += e.tok
        acc = 0.0
        lens = 0
        for r in pq:
            need = (r.prompt + r.gen) * kvb
            if acc + need > total_free:
                break
            acc += need
            lens += r.prompt + r.gen
        Z = self.z * (lens + tok_sum) / len(engs)
        ledger = self.ledger
        try:
            while pq:
                req = pq[0]
                ln = req.prompt + req.gen
                need = ln * kvb
                best_u = best_f = None
                for e in engs:
                    g = e.gpu
                    if g.hbm_kv - g.hbm_used >= need:
                        if e.tok + ln <= Z:
                            if best_u is None or e.seq < best_u.seq:
                                best_u = e
                        elif best_f is None or e.tok < best_f.tok:
                            best_f = e
                if best_u is not None:
                    de = best_u
                elif best_f is not None:
                    # No DE under Z: the least tok_e among those that fit.
                    de = best_f
                else:
                    return
                pq.popleft()
                self._n_private -= 1
                ledger.charge_de(req, de)
                self._maybe_assign(req)
        finally:
            if not pq:
                self._busy_groups.discard(gi)

    def _least_loaded_group(self) -> int:
        h = self._gheap
        tok = self.de_group_tok
        while True:
            t, j = h[0]
            if t == tok[j]:
                return j
            heappop(h)  # stale entry

    def _group_add(self, j: int, tokens: int) -> None:
        tok = self.de_group_tok
        tok[j] += tokens
        h = self._gheap
        heappush(h, (tok[j], j))
        if len(h) > 4 * len(tok) + 64:  # too many stale entries: rebuild (amortised O(1))
            h[:] = [(t, j2) for j2, t in enumerate(tok)]
            heapify(h)

    def on_request_done(self, req) -> None:
        de = req.de
        if de is not None and de.group is not None:
            self._group_add(de.group, -(req.prompt + req.gen))

    def _maybe_assign(self, req) -> None:
        if req.pe is None or req.de is None:
            return
        self.ctx.assign(req, req.pe, req.de, self.plan(req, req.pe, req.de))

    # ------------------------------------------------------------------ intra-engine
    def form_batch(self, pe, queue) -> list:
        if not self.use_quota:
            return super().form_batch(pe, queue)
        cm = self._compute
        attn = cm.attention_time_forward if self.quota_scope == "forward" else cm.attention_time_layer
        attn_work = cm.attn_work
        budget = self.max_tokens
        quota = self.quota
        items = []
        used = 0
        work = 0.0
        hbm = pe.gpu.hbm_kv
        hbm_div = self._hbm_div
        kv_used = 0.0
        kvb = self._kvb
        for req in queue:
            rem = req.new - req.computed
            cached = req.hit + req.computed
            room = budget - used
            if room <= 0:
                break
            bsz = min(rem, room)
            # HBM (non-layerwise: whole KV; layerwise: two layers' worth).
            left = (hbm - kv_used) * hbm_div / kvb - cached
            if left < bsz:
                bsz = int(left)
            if bsz <= 0:
                break
            w = attn_work(cached, bsz)
            if attn(used + bsz, work + w, len(items) + 1) > quota:
                # Largest chunk that keeps the forward within the quota.
                lo, hi = 0, bsz
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if attn(used + mid, work + attn_work(cached, mid), len(items) + 1) <= quota:
                        lo = mid
                    else:
                        hi = mid - 1
                bsz = lo
                if bsz <= 0:
                    if items:
                        break
                    bsz = min(rem, max(1, self._block))  # a lone request always progresses
                w = attn_work(cached, bsz)
            if bsz < rem and not self.chunking and items:
                break
            items.append((req, bsz))
            used += bsz
            work += w
            kv_used += (cached + bsz) * kvb / hbm_div
            if bsz < rem:
                break
        for _ in items:
            queue.popleft()
        return items


register("dualpath")(DualPathPolicy)
