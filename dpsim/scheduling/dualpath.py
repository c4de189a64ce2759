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

import heapq
import math
from collections import deque

from .base import Policy, register


@register("dualpath")
class DualPathPolicy(Policy):
    def __init__(self, sim, syscfg):
        super().__init__(sim, syscfg)
        sc = syscfg.get("dualpath", {}) or {}
        self.period = float(sc.get("fetch_period_s", 0.02))
        if not self.period > 0:
            raise ValueError(f"system.dualpath.fetch_period_s must be > 0 (got {self.period})")
        self.alpha_s = float(sc.get("alpha_s", 3.0))
        self.beta_s = float(sc.get("beta_s", 5.0))
        self.z = float(sc.get("z_factor", 1.05))
        b = syscfg["batching"]
        self.quota = float(b.get("quota_s", 0.3))
        self.quota_scope = b.get("quota_scope", "forward")
        if self.quota_scope not in ("forward", "layer"):
            raise ValueError(f"system.batching.quota_scope={self.quota_scope!r} must be 'forward' or 'layer'")
        self.use_quota = bool(b.get("use_quota", True))
        cl = sim.cfg["cluster"]
        snic = cl["snic_Bps"] * cl["snic_efficiency"]
        self.alpha = self.alpha_s * snic / sim.kvb  # tokens a node reads in alpha_s
        self.beta = self.beta_s * self._prefill_tokens_per_s()
        self.pe_queue: deque = deque()
        self.de_queue: deque = deque()
        # Groups: all engines of a node.
        self.pe_groups = []
        for n in sim.cluster.prefill_nodes:
            g = [e for e in sim.pes if e.gpu.node is n]
            for e in g:
                e.group = len(self.pe_groups)
            self.pe_groups.append(g)
        self.de_groups = []
        for n in sim.cluster.decode_nodes:
            g = [e for e in sim.des if e.gpu.node is n]
            for e in g:
                e.group = len(self.de_groups)
            self.de_groups.append(g)
        self.de_private = [deque() for _ in self.de_groups]
        # A DE group's total tok_e: its engines' tok_e plus its private queue (level 1 picks the
        # least), with a lazy min-heap so the choice is O(log groups).
        self.de_group_tok = [0 for _ in self.de_groups]
        self._gheap = [(0, j) for j in range(len(self.de_groups))]
        self._ticking = False
        self.fetches = 0

    def _prefill_tokens_per_s(self) -> float:
        """Profiled prefill throughput of one GPU on a full token-budget batch at a typical
        agentic context (the mean hit of the workload's rounds)."""
        sim = self.sim
        hits = [float(a.traj.hit.mean()) for a in sim.agents[:256] if a.traj.n_rounds]
        ctx = sum(hits) / len(hits) if hits else 0.0
        n = self.max_tokens
        per = max(1, int(n // 512))  # requests of 512 new tokens each (assumption for the profile)
        work = per * sim.compute.attn_work(ctx, n / per)
        t = sim.compute.prefill_time(n, work, per)
        return n / t if t > 0 else math.inf

    def waiting(self) -> int:
        return len(self.pe_queue) + len(self.de_queue) + sum(len(q) for q in self.de_private)

    # ------------------------------------------------------------------ arrivals and fetches
    def submit(self, req) -> None:
        req.sched_note = "counted"
        self.pe_queue.append(req)
        self.de_queue.append(req)
        if not self._ticking:
            self._ticking = True
            # Fetches happen on the period grid, as a leader's periodic fetch would.
            now = self.sim.env.now
            nxt = (math.floor(now / self.period) + 1) * self.period
            self.sim.timer(nxt - now, self._tick)

    def _tick(self, _ev=None) -> None:
        # Group leaders fetch asynchronously, each at its own phase of the period; one tick per
        # period with the fetch order rotated emulates that without an event per group (the
        # group that fetches first after an arrival gets it).
        self.fetches += 1
        k = self.fetches
        npg = len(self.pe_groups)
        for j in range(npg):
            self._pe_fetch((k + j) % npg)
        ndg = len(self.de_groups)
        for j in range(ndg):
            self._de_fetch((k + j) % ndg)
        if self.waiting():
            self.sim.timer(self.period, self._tick)
        else:
            self._ticking = False

    def _pe_fetch(self, gi: int) -> None:
        q = self.pe_queue
        if not q:
            return
        engs = self.pe_groups[gi]
        beta = self.beta
        alpha = self.alpha
        while q:
            best_s = best_l = None
            for e in engs:
                if e.tok > beta:
                    continue  # overloaded
                if e.gpu.node.read_q <= alpha:
                    if best_s is None or e.tok < best_s.tok:
                        best_s = e
                elif best_l is None or e.tok < best_l.tok:
                    best_l = e
            best = best_s if best_s is not None else best_l
            if best is None:
                return  # both classes empty: the fetch stops
            req = q.popleft()
            best.seq += 1
            best.tok += max(1, req.prompt - min(req.hit, req.prompt - 1))
            req.pe = best
            self._maybe_assign(req)

    def _de_fetch(self, gi: int) -> None:
        kvb = self.sim.kvb
        # Level 1: drain the global DE queue to groups by least total tok_e.
        q = self.de_queue
        while q:
            req = q.popleft()
            j = self._least_loaded_group()
            self._group_add(j, req.prompt + req.gen)
            self.de_private[j].append(req)
        # Level 2: place the group's private queue on its engines.
        pq = self.de_private[gi]
        if not pq:
            return
        engs = self.de_groups[gi]
        free = [e.gpu.hbm_kv - e.gpu.hbm_used for e in engs]
        total_free = sum(f for f in free if f > 0)
        acc = 0.0
        lens = 0
        for r in pq:
            need = (r.prompt + r.gen) * kvb
            if acc + need > total_free:
                break
            acc += need
            lens += r.prompt + r.gen
        Z = self.z * (lens + sum(e.tok for e in engs)) / len(engs)
        while pq:
            req = pq[0]
            ln = req.prompt + req.gen
            need = ln * kvb
            fits = [e for e in engs if e.gpu.hbm_kv - e.gpu.hbm_used >= need]
            if not fits:
                return
            under = [e for e in fits if e.tok + ln <= Z]
            if under:
                de = min(under, key=lambda e: (e.seq, e.idx))
            else:
                de = min(fits, key=lambda e: (e.tok, e.idx))
            pq.popleft()
            de.seq += 1
            de.tok += ln
            req.de = de
            self._maybe_assign(req)

    def _least_loaded_group(self) -> int:
        h = self._gheap
        tok = self.de_group_tok
        while True:
            t, j = h[0]
            if t == tok[j]:
                return j
            heapq.heappop(h)  # stale entry

    def _group_add(self, j: int, tokens: int) -> None:
        self.de_group_tok[j] += tokens
        heapq.heappush(self._gheap, (self.de_group_tok[j], j))

    def on_request_done(self, req) -> None:
        if req.de is not None and req.de.group is not None:
            self._group_add(req.de.group, -(req.prompt + req.gen))

    def _maybe_assign(self, req) -> None:
        if req.pe is None or req.de is None:
            return
        path, x = self.choose_path(req, req.pe, req.de)
        self.sim.assign(req, req.pe, req.de, path, x)

    # ------------------------------------------------------------------ intra-engine
    def form_batch(self, pe, queue) -> list:
        if not self.use_quota:
            return super().form_batch(pe, queue)
        sim = self.sim
        cm = sim.compute
        attn = cm.attention_time_forward if self.quota_scope == "forward" else cm.attention_time_layer
        budget = self.max_tokens
        quota = self.quota
        items = []
        used = 0
        work = 0.0
        hbm = pe.gpu.hbm_kv
        hbm_div = (sim.L / 2.0) if sim.sys["layerwise"] else 1.0
        kv_used = 0.0
        kvb = sim.kvb
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
            w = cm.attn_work(cached, bsz)
            if attn(used + bsz, work + w, len(items) + 1) > quota:
                # Largest chunk that keeps the forward within the quota.
                lo, hi = 0, bsz
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if attn(used + mid, work + cm.attn_work(cached, mid), len(items) + 1) <= quota:
                        lo = mid
                    else:
                        hi = mid - 1
                bsz = lo
                if bsz <= 0:
                    if items:
                        break
                    bsz = min(rem, max(1, sim.block))  # a lone request always progresses
                w = cm.attn_work(cached, bsz)
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
