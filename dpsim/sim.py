"""The simulation: one request lifecycle (§S4) over the cluster, with policies plugged in.

Lifecycle of a round (a *request*):

1. arrival -> the policy schedules it (PE, DE, read path)           [scheduling]
2. buffers: the DE node's buffer for the prompt KV, the PE node's
   buffer for the hit KV on the PE path                              [allocation]
3. hit KV: storage -> chosen node's SNIC -> that node's DRAM         [reading]
4. PE prefill (layerwise streaming of hit KV to the PE GPU, the
   prompt KV out to the DE buffer: hit+miss on the PE path, miss
   only on the DE path)                                              [prefill] -> first token
5. DE: HBM for prompt+generation KV, H2D DE buffer -> DE GPU, then
   the buffer is freed; the prompt's new Full Blocks are persisted
   from the DE buffer to storage over the DE node's SNIC (§S10: the
   DE persists)
6. decode of the remaining gen-1 tokens; the generated tokens' new
   Full Blocks go GPU -> DRAM (D2H) -> storage
7. the agent's next round arrives after its think time; its storage
   read waits until the previous round's KV is persisted.
"""
from __future__ import annotations

import math
import time
from collections import deque

import numpy as np
import simpy

from .cluster import Cluster
from .engines.decode import DecodeEngine
from .engines.prefill import PrefillEngine
from .engines.request import Request
from .net import Network

INF = math.inf


class SimulationStalled(RuntimeError):
    """Work is pending but nothing can progress; the message names the stuck requests."""


class SimulationError(RuntimeError):
    pass


class Agent:
    __slots__ = ("aid", "traj", "next_round", "stored", "persist_pending", "persist_waiters",
                 "t_start", "t_end", "failed", "n_done")

    def __init__(self, aid: int, traj):
        self.aid = aid
        self.traj = traj
        self.next_round = 0
        self.stored = 0  # tokens of this trajectory whose Full Blocks are in storage
        self.persist_pending = 0
        self.persist_waiters: list = []
        self.t_start = math.nan
        self.t_end = math.nan
        self.failed = False
        self.n_done = 0


class Simulation:
    def __init__(self, cfg: dict, agents: list, compute, progress=None, backend=None, env=None):
        """``cfg``: the validated config mapping (see dpsim.config); ``agents``: the list of
        trajectories to replay, one per agent; ``compute``: a ComputeModel; ``backend``: the
        link backend (default: analytical flow sharing); ``env``: a SimPy environment (e.g. a
        real-time one for hardware-in-the-loop replay)."""
        self.cfg = cfg
        self.sys = cfg["system"]
        self.env = env if env is not None else simpy.Environment()
        ccfg = cfg["cluster"]
        self.net = Network(self.env, high_share=ccfg["high_priority_share"], backend=backend,
                           check=bool(cfg.get("check_invariants", False)))
        self.compute = compute
        self.kvb = float(compute.kv_bytes_per_token)
        self.block = int(self.sys["block_size"])
        self.L = compute.n_layers
        self.fine_layers = self.sys.get("prefill_mode", "coarse") == "fine"
        self.timeline = bool(cfg.get("output", {}).get("timeline", False))
        self.oracle = bool(self.sys.get("oracle", False))
        self.cluster = Cluster(self.net, ccfg, compute.hbm_kv_bytes, ccfg["dram_buffer_bytes"],
                               oracle=self.oracle,
                               hbm_kv_bytes_prefill=getattr(compute, "hbm_kv_bytes_prefill", None))
        self._ep_peers(compute)
        self.pes = [PrefillEngine(self, g, i) for i, g in
                    enumerate(g for n in self.cluster.prefill_nodes for g in n.gpus)]
        self.des = [DecodeEngine(self, g, i) for i, g in
                    enumerate(g for n in self.cluster.decode_nodes for g in n.gpus)]
        sub = self.sys["submission"]
        # Submission costs (§S4): a stream of blocks cannot go faster than block bytes / cost.
        self._layer_block_bytes = self.block * self.kvb / self.L
        self._full_block_bytes = self.block * self.kvb
        self.cap_layer = (self._layer_block_bytes / sub["layer_block_s"]) if sub["layer_block_s"] > 0 else INF
        self.cap_full = (self._full_block_bytes / sub["full_block_s"]) if sub["full_block_s"] > 0 else INF
        self.cap_storage = (self._full_block_bytes / sub["storage_block_s"]) if sub["storage_block_s"] > 0 else INF
        # Model-execution traffic (§S5): expert-parallel all-to-all bytes per token that leave
        # the node, on the CNICs, in the high-priority class (the low class when isolation is off).
        mt = bool(self.sys.get("model_traffic", True))
        nmoe = getattr(compute, "n_moe_layers", 0)
        self.ep_prefill_tok = (getattr(compute, "ep_cnic_bytes_per_token_layer_prefill", 0.0) * nmoe) if mt else 0.0
        self.ep_decode_tok = (getattr(compute, "ep_cnic_bytes_per_token_layer_decode", 0.0) * nmoe) if mt else 0.0
        from .net import HIGH, LOW
        self.model_prio = HIGH if self.sys.get("isolation", True) else LOW
        self.storage_latency = float(ccfg["storage_latency_s"])
        self.net_latency = float(ccfg["net_latency_s"])
        self.agents = [Agent(i, t) for i, t in enumerate(agents)]
        self.requests: list[Request] = []
        self.awaiting_first: deque = deque()  # requests in arrival order, pruned by drivers
        self.first_token_times: list = []  # t_first, in time order
        self.first_token_ttft: list = []
        self.n_rid = 0
        self.outstanding = 0
        self.n_done = 0
        self.n_failed = 0
        self.total_requests = int(sum(t.n_rounds for t in agents))
        self.progress = progress
        self.done_event = self.env.event()
        from .scheduling import make_policy
        self.policy = make_policy(self, self.sys)
        from .metrics.collector import Collector
        self.metrics = Collector(self, cfg.get("metrics", {}))
        self.driver = None
        self.wall_s = 0.0
        self.events = 0
        self.max_sim_s = float(cfg.get("experiment", {}).get("max_sim_s", INF) or INF)
        self._check_fit()

    # ------------------------------------------------------------------ helpers
    def _ep_peers(self, compute) -> None:
        """Each GPU's all-to-all partner on another node of its EP group: groups are runs of
        ceil(ep_size / g) nodes of one role; traffic is modelled as a ring to the same local
        GPU of the next node of the group (symmetric, so every CNIC sends and receives)."""
        g = self.cfg["cluster"]["gpus_per_node"]
        self.ep_peer = {}
        for nodes, ep in ((self.cluster.prefill_nodes, getattr(compute, "ep_size_prefill", 1)),
                          (self.cluster.decode_nodes, getattr(compute, "ep_size_decode", 1))):
            per = max(1, min(len(nodes), -(-int(ep) // g)))
            for i, n in enumerate(nodes):
                base = (i // per) * per
                size = min(per, len(nodes) - base)
                if size <= 1:
                    continue
                peer = nodes[base + (i - base + 1) % size]
                for gpu, pg in zip(n.gpus, peer.gpus):
                    self.ep_peer[gpu.gid] = pg

    def start_model_traffic(self, eng, nbytes: float, duration: float, cb) -> int:
        """A prefill forward's EP all-to-all bytes leaving the node, paced over the forward."""
        peer = self.ep_peer.get(eng.gpu.gid)
        if peer is None or nbytes <= 0:
            return 0
        self.net.transfer(self.cluster.r_model_traffic(eng.gpu, peer), nbytes, cb, prio=self.model_prio,
                          max_rate=nbytes / duration if duration > 0 else INF, tag=("ep", eng.idx))
        return 1

    def timer(self, dt: float, cb) -> None:
        ev = self.env.timeout(dt if dt > 0.0 else 0.0)
        ev.callbacks.append(cb)

    def _check_fit(self) -> None:
        """Configs that can never work fail before the run (one clear message)."""
        biggest = 0
        for a in self.agents:
            t = a.traj
            if t.n_rounds:
                biggest = max(biggest, int((t.prompt + t.gen).max()))
        need = biggest * self.kvb
        ccfg = self.cfg["cluster"]
        if need > ccfg["dram_buffer_bytes"]:
            raise SimulationError(
                f"cluster.dram_buffer_bytes={ccfg['dram_buffer_bytes']:.4g} cannot hold the KV of the "
                f"longest request ({biggest} tokens x {self.kvb:.0f} B = {need:.4g} B): raise it or "
                f"truncate the workload (workload.mal)")
        if need > self.compute.hbm_kv_bytes:
            raise SimulationError(
                f"a decode GPU's HBM for KV ({self.compute.hbm_kv_bytes:.4g} B, from the model's "
                f"hbm_reserved_bytes) cannot hold the longest request ({need:.4g} B): use a model "
                f"config with more HBM for KV or truncate the workload (workload.mal)")

    # ------------------------------------------------------------------ arrivals
    def start_agent(self, agent: Agent, t: float | None = None) -> None:
        agent.t_start = self.env.now if t is None else t
        self.issue_round(agent)

    def issue_round(self, agent: Agent) -> None:
        tr = agent.traj
        i = agent.next_round
        agent.next_round += 1
        prompt = int(tr.prompt[i])
        hit = int(tr.hit[i])
        self.n_rid += 1
        req = Request(self.n_rid, agent, i, prompt, hit, int(tr.gen[i]), self.env.now)
        self.requests.append(req)
        self.awaiting_first.append(req)
        self.outstanding += 1
        self.policy.submit(req)

    # ------------------------------------------------------------------ 1-2 scheduling, allocation
    def assign(self, req: Request, pe: PrefillEngine, de: DecodeEngine, path: str,
               split_de: int = 0) -> None:
        """Called by the policy: ``req`` goes to ``pe`` and ``de``; hit KV read on ``path``."""
        now = self.env.now
        req.t_sched = now
        req.stage = "scheduled"
        req.pe = pe
        req.de = de
        req.path = path
        # Hit = the longest stored prefix (only Full Blocks are stored); at least one token is
        # computed so the PE produces the first token's logits.
        hit = min(req.hit, req.prompt - 1)
        req.hit = max(0, hit)
        req.new = req.prompt - req.hit
        if path == "split":
            req.split_de = min(req.hit, max(0, split_de))
        if req.sched_note != "counted":  # policies that track loads themselves mark requests
            pe.seq += 1
            pe.tok += req.new
            de.seq += 1
            de.tok += req.prompt + req.gen
        if path == "pe":
            # The DE buffer is needed only once prefill streams KV out: taken after the read.
            self._alloc_pe_buffer(req)
        else:  # the hit KV lands in the DE buffer: take it first
            self._alloc_de_buffer(req, self._alloc_pe_buffer)

    def _alloc_de_buffer(self, req: Request, then) -> None:
        """Reserve the DE node's buffer for the whole prompt KV, then call ``then(req)``."""
        b = req.prompt * self.kvb

        def granted(r=req, b=b):
            r.de_buf = b
            then(r)
        if req.de.gpu.node.buffer.alloc_or_wait(b, granted):
            granted()

    def _alloc_pe_buffer(self, req: Request) -> None:
        pe_hit = req.hit if req.path == "pe" else (req.hit - req.split_de if req.path == "split" else 0)
        if pe_hit > 0:
            b = pe_hit * self.kvb
            req.pe_buf = b
            if not req.pe.gpu.node.buffer.alloc_or_wait(b, lambda r=req: self._allocated(r)):
                return
        self._allocated(req)

    def _allocated(self, req: Request) -> None:
        req.t_alloc = self.env.now
        req.stage = "allocated"
        agent = req.agent
        if agent.persist_pending > 0:
            agent.persist_waiters.append(req)
            return
        self._start_read(req)

    # ------------------------------------------------------------------ 3 storage read
    def _start_read(self, req: Request) -> None:
        now = self.env.now
        req.t_read0 = now
        agent = req.agent
        # Only Full Blocks that are really in storage can hit.
        stored = agent.stored
        if req.hit > stored:
            req.hit = stored
            old_new = req.new
            req.new = req.prompt - req.hit
            req.pe.tok += req.new - old_new
            if req.split_de > req.hit:
                req.split_de = req.hit
        if req.hit <= 0:
            req.t_read1 = now
            self._read_done(req)
            return
        req.stage = "reading"
        parts = []
        if req.path == "pe":
            parts.append((req.pe.gpu.node, req.hit))
        elif req.path == "de":
            parts.append((req.de.gpu.node, req.hit))
        else:  # split
            if req.split_de > 0:
                parts.append((req.de.gpu.node, req.split_de))
            if req.hit - req.split_de > 0:
                parts.append((req.pe.gpu.node, req.hit - req.split_de))
        req.pend = len(parts)
        for node, tokens in parts:
            node.read_q += tokens
            self.net.transfer(self.cluster.r_storage_read(node), tokens * self.kvb,
                              lambda tr, r=req, n=node, k=tokens: self._read_part_done(r, n, k),
                              max_rate=self.cap_storage, latency=self.storage_latency,
                              tag=("read", req.rid))

    def _read_part_done(self, req: Request, node, tokens: int) -> None:
        node.read_q -= tokens
        req.pend -= 1
        if req.pend == 0:
            req.t_read1 = self.env.now
            self._read_done(req)

    def _read_done(self, req: Request) -> None:
        if req.de_buf == 0.0:
            self._alloc_de_buffer(req, self._enqueue_prefill)
        else:
            self._enqueue_prefill(req)

    def _enqueue_prefill(self, req: Request) -> None:
        req.pe.enqueue(req)

    # ------------------------------------------------------------------ 4 prefill transfers
    def start_pe_input(self, req: Request, eng: PrefillEngine, nbytes: float, pace: float, cb) -> int:
        """Cached KV into the PE GPU for one forward (or one layer in fine mode).  Returns the
        number of transfers started (a split read streams from both buffers)."""
        cl = self.cluster
        layerwise = self.sys["layerwise"]
        cap = self.cap_layer if layerwise else self.cap_full
        parts = []
        if req.path == "pe":
            parts.append((cl.r_h2d(eng.gpu), nbytes))
        elif req.path == "de":
            parts.append((cl.r_remote_h2d(req.de.gpu, eng.gpu), nbytes))
        else:
            f = req.split_de / req.hit if req.hit else 0.0
            if f > 0:
                parts.append((cl.r_remote_h2d(req.de.gpu, eng.gpu), nbytes * f))
            if f < 1:
                parts.append((cl.r_h2d(eng.gpu), nbytes * (1 - f)))
        for route, b in parts:
            mr = cap
            if pace > 0:
                p = b / pace
                if p < mr:
                    mr = p
            self.net.transfer(route, b, cb, max_rate=mr, latency=self.net_latency if route else 0.0,
                              tag=("pe_in", req.rid))
        return len(parts)

    def start_pe_output(self, req: Request, eng: PrefillEngine, nbytes: float, pace: float, cb) -> int:
        cap = self.cap_layer if self.sys["layerwise"] else self.cap_full
        if pace > 0:
            p = nbytes / pace
            if p < cap:
                cap = p
        route = self.cluster.r_gpu_to_remote_dram(eng.gpu, req.de.gpu)
        self.net.transfer(route, nbytes, cb, max_rate=cap, latency=self.net_latency if route else 0.0,
                          tag=("pe_out", req.rid))
        return 1

    def prefill_done(self, req: Request) -> None:
        """All of the prompt is computed and its KV is in the DE buffer: first token."""
        now = self.env.now
        req.t_first = now
        self.first_token_times.append(now)
        self.first_token_ttft.append(now - req.arrival)
        pe = req.pe
        pe.seq -= 1
        pe.tok -= req.new
        if req.pe_buf > 0:
            pe.gpu.node.buffer.free(req.pe_buf)
            req.pe_buf = 0.0
        self.policy.on_prefill_done(req)
        # 5. The DE persists the prompt's new Full Blocks from its buffer (§S10) while the
        # request waits for HBM and is copied in.
        de = req.de
        agent = req.agent
        new_blocks = req.prompt // self.block - req.hit // self.block
        req.pend = 1  # the H2D; +1 while persisting
        if new_blocks > 0 and not self.sys.get("skip_persist", False):
            req.pend += 1
            agent.persist_pending += 1
            stored_after = (req.prompt // self.block) * self.block
            self.net.transfer(self.cluster.r_storage_write(de.gpu.node), new_blocks * self._full_block_bytes,
                              lambda tr, r=req, s=stored_after: self._prompt_persisted(r, s),
                              max_rate=self.cap_storage, latency=self.storage_latency,
                              tag=("persist", req.rid))
        else:
            agent.stored = max(agent.stored, (req.prompt // self.block) * self.block)
        req.stage = "de_alloc"
        self._de_request_hbm(req)

    def _prompt_persisted(self, req: Request, stored_after: int) -> None:
        agent = req.agent
        if stored_after > agent.stored:
            agent.stored = stored_after
        self._persist_finished(agent)
        self._de_buffer_part_done(req)

    def _persist_finished(self, agent: Agent) -> None:
        agent.persist_pending -= 1
        if agent.persist_pending == 0 and agent.persist_waiters:
            w, agent.persist_waiters = agent.persist_waiters, []
            for r in w:
                self._start_read(r)

    def _de_buffer_part_done(self, req: Request) -> None:
        req.pend -= 1
        if req.pend == 0 and req.de_buf > 0:
            req.de.gpu.node.buffer.free(req.de_buf)
            req.de_buf = 0.0

    # ------------------------------------------------------------------ 5 DE HBM + H2D
    def _de_request_hbm(self, req: Request) -> None:
        de = req.de
        need = (req.prompt + req.gen) * self.kvb
        if de.alloc_q or de.gpu.hbm_used + need > de.gpu.hbm_kv:
            de.alloc_q.append(req)
            return
        self._de_h2d(req, need)

    def _de_h2d(self, req: Request, need: float) -> None:
        de = req.de
        g = de.gpu
        g.hbm_used += need
        if g.hbm_used > g.hbm_peak:
            g.hbm_peak = g.hbm_used
        req.stage = "de_h2d"
        self.net.transfer(self.cluster.r_h2d(g), req.prompt * self.kvb,
                          lambda tr, r=req: self._de_h2d_done(r), max_rate=self.cap_full,
                          latency=self.net_latency if not self.oracle else 0.0, tag=("de_h2d", req.rid))

    def _de_h2d_done(self, req: Request) -> None:
        req.t_h2d = self.env.now
        self._de_buffer_part_done(req)
        req.de.join(req)

    def _de_hbm_freed(self, de: DecodeEngine) -> None:
        q = de.alloc_q
        while q:
            req = q[0]
            need = (req.prompt + req.gen) * self.kvb
            if de.gpu.hbm_used + need > de.gpu.hbm_kv * (1 + 1e-12):
                break
            q.pop(0)
            self._de_h2d(req, need)

    # ------------------------------------------------------------------ 6 end of decode
    def decode_done(self, req: Request, de: DecodeEngine) -> None:
        now = self.env.now
        req.t_end = now
        if req.gen <= 1:
            req.t_second = math.nan
        req.stage = "done"
        g = de.gpu
        g.hbm_used -= (req.prompt + req.gen) * self.kvb
        if g.hbm_used < 0:
            g.hbm_used = 0.0
        de.seq -= 1
        de.tok -= req.prompt + req.gen
        agent = req.agent
        ctx = req.prompt + req.gen
        gen_blocks = ctx // self.block - req.prompt // self.block
        if gen_blocks > 0 and not self.sys.get("skip_persist", False):
            agent.persist_pending += 1
            b = gen_blocks * self._full_block_bytes
            node = g.node
            # D2H of the generated KV into the DE buffer, then to storage.
            def after_d2h(_tr, agent=agent, b=b, node=node, stored=(ctx // self.block) * self.block):
                self.net.transfer(self.cluster.r_storage_write(node), b,
                                  lambda _t: self._gen_persisted(agent, node, b, stored),
                                  max_rate=self.cap_storage, latency=self.storage_latency,
                                  tag=("persist_gen", agent.aid))

            def go(b=b, node=node, g=g):
                self.net.transfer(self.cluster.r_d2h(g), b, after_d2h, max_rate=self.cap_full,
                                  tag=("d2h", req.rid))
            if node.buffer.alloc_or_wait(b, go):
                go()
        else:
            agent.stored = max(agent.stored, (ctx // self.block) * self.block)
        self._de_hbm_freed(de)
        self._request_finished(req)

    def _gen_persisted(self, agent: Agent, node, b: float, stored: int) -> None:
        node.buffer.free(b)
        if stored > agent.stored:
            agent.stored = stored
        self._persist_finished(agent)

    def _request_finished(self, req: Request) -> None:
        self.outstanding -= 1
        self.n_done += 1
        agent = req.agent
        agent.n_done += 1
        self.policy.on_request_done(req)
        if self.progress is not None:
            self.progress.update(1)
        if agent.next_round < agent.traj.n_rounds and not agent.failed:
            think = float(agent.traj.think_s[agent.next_round])
            if think > 0:
                self.timer(think, lambda _e, a=agent: self.issue_round(a))
            else:
                self.issue_round(agent)
        else:
            agent.t_end = self.env.now
            if self.driver is not None:
                self.driver.agent_done(agent)
        self._maybe_all_done()

    def fail(self, req: Request, reason: str) -> None:
        """Report ``req`` failed with ``reason``; the agent stops (its context is gone)."""
        req.stage = "failed"
        req.fail = reason
        req.t_end = self.env.now
        self.outstanding -= 1
        self.n_failed += 1
        agent = req.agent
        agent.failed = True
        agent.t_end = self.env.now
        if req.pe is not None:
            req.pe.seq -= 1
            req.pe.tok -= req.new
            if req.pe_buf > 0:
                req.pe.gpu.node.buffer.free(req.pe_buf)
                req.pe_buf = 0.0
        if req.de is not None:
            req.de.seq -= 1
            req.de.tok -= req.prompt + req.gen
            if req.de_buf > 0:
                req.de.gpu.node.buffer.free(req.de_buf)
                req.de_buf = 0.0
        self.policy.on_request_done(req)  # it leaves the system: policies drop its load
        if self.driver is not None:
            self.driver.agent_done(agent)
        self._maybe_all_done()

    def _maybe_all_done(self) -> None:
        if self.driver is not None:
            if self.driver.finished() and not self.done_event.triggered:
                self.done_event.succeed()
        elif self.outstanding == 0 and not self.done_event.triggered:
            if all(a.next_round >= a.traj.n_rounds or a.failed for a in self.agents):
                self.done_event.succeed()

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        t0 = time.perf_counter()
        env = self.env
        if self.driver is not None:
            self.driver.start()
        else:
            for a in self.agents:
                self.start_agent(a)
        self.metrics.start()  # after the first events exist: the sampler stops on an empty queue
        until = self.done_event
        stop_at = self.max_sim_s
        try:
            if stop_at < INF:
                guard = env.timeout(stop_at)
                env.run(until=simpy.AnyOf(env, [until, guard]))
            else:
                env.run(until=until)
            if self.done_event.triggered and (self.driver is None or self.driver.name == "offline"):
                # Drain: the last rounds' KV is still being persisted.  Step only while the
                # network has work, so a pending max_sim_s guard (or, in a real-time
                # environment, wall-clock waiting) does not stretch the run.
                net = self.net
                while env._queue and (net.active > 0 or net._heap or net._new or net._dirty):
                    env.step()
        except RuntimeError as e:
            if "No scheduled events left" in str(e) or "until" in str(e):
                self._stalled()
            raise
        self.wall_s = time.perf_counter() - t0
        self.metrics.finish()
        if not self.done_event.triggered and self.driver is None:
            self.truncated = True
        self.events = next(env._eid)

    def _stalled(self) -> None:
        stuck = [r for r in self.requests if r.stage not in ("done", "failed")]
        by_stage = {}
        for r in stuck:
            by_stage.setdefault(r.stage, []).append(r.rid)
        desc = "; ".join(f"{k}: {len(v)} (e.g. request ids {v[:5]})" for k, v in by_stage.items())
        raise SimulationStalled(f"simulation stalled at t={self.env.now:.6g}s with {len(stuck)} "
                                f"unfinished requests and no pending events -- {desc}")
