"""The simulation: builds the cluster, the engines, the policy and the lifecycle from a config,
and runs them.

It is the stage manager, not an actor: it puts every piece in place (network, cluster and
its routes, load ledger, KV port, engines with their narrow collaborators, policy, lifecycle,
metrics), starts the driver and runs the clock.  What happens to a request is in
:mod:`dpsim.lifecycle.transitions`; this module holds no request logic.
"""
from __future__ import annotations

import gc
import math
import time

from .cluster import Cluster
from .engines.decode import DecodeDeps, DecodeEngine
from .engines.prefill import PrefillDeps, PrefillEngine
from .engines.prefill_modes import strategy_for
from .lifecycle import Lifecycle, RequestLog, make_agents
from .lifecycle.costs import LifecycleCosts
from .lifecycle.ports import KVPort
from .lifecycle.stage import FINAL
from .net import HIGH, LOW, Network, as_clock
from .protocols import check_compute
from .scheduling import LoadLedger, SchedContext, make_policy

INF = math.inf


class SimulationStalled(RuntimeError):
    """Work is pending but nothing can progress; the message names the stuck requests."""


class SimulationError(RuntimeError):
    pass


def ep_peers(cluster, g: int, ep_prefill: int, ep_decode: int) -> dict:
    """Each GPU's all-to-all partner on another node of its EP group: groups are runs of
    ceil(ep_size / g) nodes of one role; traffic is modelled as a ring to the same local GPU of
    the next node of the group (symmetric, so every CNIC sends and receives)."""
    peer_of = {}
    for nodes, ep in ((cluster.prefill_nodes, ep_prefill), (cluster.decode_nodes, ep_decode)):
        per = max(1, min(len(nodes), -(-int(ep) // g)))
        for i, n in enumerate(nodes):
            base = (i // per) * per
            size = min(per, len(nodes) - base)
            if size <= 1:
                continue
            peer = nodes[base + (i - base + 1) % size]
            for gpu, pg in zip(n.gpus, peer.gpus):
                peer_of[gpu.gid] = pg
    return peer_of


class Simulation:
    def __init__(self, cfg: dict, agents: list, compute, progress=None, backend=None, env=None):
        """``cfg``: the validated config mapping (see dpsim.config); ``agents``: the list of
        trajectories to replay, one per agent; ``compute``: a compute model
        (dpsim.protocols.ComputeModel); ``backend``: the link backend (default: analytical flow
        sharing); ``env``: a SimPy environment (e.g. a real-time one for hardware-in-the-loop
        replay; the run then goes through :class:`dpsim.net.SimpyClock`), default: the
        simulation's own :class:`dpsim.net.EventLoop` (``sim.env`` is then that loop)."""
        check_compute(compute)
        self.cfg = cfg
        self.sys = sc = cfg["system"]
        self.clock = as_clock(env)
        self.env = env if env is not None else self.clock  # what drivers, tables and HIL read .now of
        ccfg = cfg["cluster"]
        self.net = Network(self.clock, high_share=ccfg["high_priority_share"], backend=backend,
                           check=bool(cfg["check_invariants"]))
        self.compute = compute
        self.kvb = float(compute.kv_bytes_per_token)
        self.block = int(sc["block_size"])
        self.L = compute.n_layers
        self.timeline = bool(cfg["output"]["timeline"])
        self.cluster = Cluster(self.net, ccfg, compute.hbm_kv_bytes, ccfg["dram_buffer_bytes"],
                               compute.hbm_kv_bytes_prefill, transform=sc["route_transform"])
        self.ep_peer = ep_peers(self.cluster, ccfg["gpus_per_node"], compute.ep_size_prefill,
                                compute.ep_size_decode)
        # Model-execution traffic (§S5): expert-parallel all-to-all bytes per token that leave
        # the node, on the CNICs, in the high-priority class (the low class when isolation is off).
        mt = bool(sc["model_traffic"])
        nmoe = compute.n_moe_layers
        ep_prefill_tok = compute.ep_cnic_bytes_per_token_layer_prefill * nmoe if mt else 0.0
        ep_decode_tok = compute.ep_cnic_bytes_per_token_layer_decode * nmoe if mt else 0.0
        costs = LifecycleCosts.from_config(cfg)  # system.costs, cluster.storage_queue_depth
        self.port = KVPort(self.net, self.cluster.routes, self.kvb, self.L, self.block, sc["submission"],
                           HIGH if sc["isolation"] else LOW, self.ep_peer, costs.read_queue_depth)
        self.ledger = LoadLedger()
        self.agents = make_agents(agents)  # (agents replaying one trajectory share its round table)
        self.log = RequestLog()
        self.life = life = Lifecycle(self.clock, self.port, self.ledger, self.log, self.kvb, self.block,
                                     persist=not sc["skip_persist"], track_first=False,
                                     costs=costs)
        self.strategy = strategy_for(sc)
        pdeps = PrefillDeps(self.clock, compute, self.port, None, self.strategy,
                            life.first_token, life.fail, self.kvb, self.L, ep_prefill_tok, self.timeline)
        self.pes = [PrefillEngine(g, i, pdeps) for i, g in
                    enumerate(g for n in self.cluster.prefill_nodes for g in n.gpus)]
        ddeps = DecodeDeps(self.clock, compute, self.port, life.decode_done, ep_decode_tok, self.timeline)
        self.des = [DecodeEngine(g, i, ddeps) for i, g in
                    enumerate(g for n in self.cluster.decode_nodes for g in n.gpus)]
        self.total_requests = int(sum(t.n_rounds for t in agents))
        self.ended = False  # every agent done (offline) or the driver says stop (online)
        snic = ccfg["snic_Bps"] * ccfg["snic_efficiency"]
        self.sched = SchedContext(self.pes, self.des, self.cluster.prefill_nodes, self.cluster.decode_nodes,
                                  self.ledger, self.clock, compute, self.kvb, self.block, self.L,
                                  bool(sc["layerwise"]), snic, self.agents, life.assign)
        self.policy = life.policy = make_policy(self.sched, sc)
        pdeps.batcher = self.policy.form_batch  # the policy's intra-engine rule (bound once)
        life.progress = progress
        life.on_agent_done = self._agent_done
        life.on_change = None  # (see the driver setter)
        from .metrics.collector import Collector
        self.metrics = Collector(self, cfg["metrics"])
        self._driver = None
        self.wall_s = 0.0
        self.events = 0
        self.truncated = False
        self.max_sim_s = float(cfg["experiment"]["max_sim_s"] or INF)  # null: run to completion
        # How many zero-delay hops a stop takes (see end()): SimPy ran the done event, then --
        # when a max_sim_s guard made the target AnyOf(done, guard) -- the condition event.
        self._hops = 2 if self.max_sim_s < INF else 1
        self._check_fit()

    # ------------------------------------------------------------------ wiring
    @property
    def driver(self):
        return self._driver

    @driver.setter
    def driver(self, drv) -> None:
        self._driver = drv
        self.life.track_first = bool(drv is not None and drv.name == "online")
        # Whether the run is over is asked after every request, unless it can only change when
        # an agent finishes (no driver: all agents done; a driver that says so): then after each
        # agent only -- the same answers at the same instants, without a call per request.
        per_agent = drv is None or getattr(drv, "finishes_on_agent_done", False)
        self.life.on_change = None if per_agent else self._maybe_all_done

    def _agent_done(self, agent) -> None:
        if self._driver is not None:
            self._driver.agent_done(agent)
        if self.life.on_change is None:
            self._maybe_all_done()

    def _maybe_all_done(self) -> None:
        if self.ended:
            return
        if self._driver is not None:
            if self._driver.finished():
                self.end()
        elif self.life.outstanding == 0:
            if all(a.next_round >= a.traj.n_rounds or a.failed for a in self.agents):
                self.end()

    def end(self) -> None:
        """Stop the run once what is already due at this instant has run.  The stop itself is a
        timer (``_hops`` zero-delay hops deep), so the events that precede it are exactly those that ran
        before the SimPy-driven core (``env.run(until=AnyOf(done, timeout(max_sim_s)))``) stopped:
        results stay byte-identical."""
        if not self.ended:
            self.ended = True
            self.clock.timer(0.0, self._stop_hop, self._hops - 1)

    def _stop_hop(self, left: int) -> None:
        if left > 0:
            self.clock.timer(0.0, self._stop_hop, left - 1)
        else:
            self.clock.stop()

    # What drivers, metrics and tables read (the lifecycle keeps them).
    progress = property(lambda self: self.life.progress)
    outstanding = property(lambda self: self.life.outstanding)
    n_done = property(lambda self: self.life.n_done)
    n_failed = property(lambda self: self.life.n_failed)
    first_token_times = property(lambda self: self.life.first_token_times)
    first_token_ttft = property(lambda self: self.life.first_token_ttft)
    awaiting_first = property(lambda self: self.life.awaiting_first)

    @property
    def requests(self) -> list:
        """Every request so far as a record (rid order): built from the columnar log on each
        access -- for inspection and tests, not for hot paths."""
        return self.log.records(self.agents, self.pes, self.des)

    def timer(self, dt: float, cb) -> None:
        self.clock.timer(dt, cb)

    def start_agent(self, agent, t: float | None = None) -> None:
        self.life.start_agent(agent, t)

    def _check_fit(self) -> None:
        """Configs that can never work fail before the run (one clear message)."""
        biggest = 0
        for a in self.agents:
            t = a.traj
            if t.n_rounds:
                biggest = max(biggest, int((t.prompt + t.gen).max()))
        need = biggest * self.kvb
        ccfg = self.cfg["cluster"]
        if need > self.cluster.nodes[0].buffer.capacity:  # unbounded under FREE_BUFFERS (Oracle)
            raise SimulationError(
                f"cluster.dram_buffer_bytes={ccfg['dram_buffer_bytes']:.4g} cannot hold the KV of the "
                f"longest request ({biggest} tokens x {self.kvb:.0f} B = {need:.4g} B): raise it or "
                f"truncate the workload (workload.mal)")
        if need > self.compute.hbm_kv_bytes:
            raise SimulationError(
                f"a decode GPU's HBM for KV ({self.compute.hbm_kv_bytes:.4g} B, from the model's "
                f"hbm_reserved_bytes) cannot hold the longest request ({need:.4g} B): use a model "
                f"config with more HBM for KV or truncate the workload (workload.mal)")

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        t0 = time.perf_counter()
        if self._driver is not None:
            self._driver.start()
        else:
            for a in self.agents:
                self.start_agent(a)
        self.metrics.start()  # after the first events exist: the sampler stops on an empty queue
        clock = self.clock
        if self.max_sim_s < INF:
            # The guard: stop at max_sim_s (one hop later, as the first of the two events does).
            clock.timer(self.max_sim_s, self._stop_hop, 1)
        # The cyclic garbage collector: everything built so far (workload, cluster, routes) lives
        # as long as the run, so it is frozen out of collections (a full collection would walk it
        # again and again, more often the larger the cluster), and young collections run every
        # 50,000 allocations instead of 700 -- the hot path makes almost no cycles.  Results do
        # not depend on it; both settings are restored when the run ends.
        gc_threshold = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(max(gc_threshold[0], 50_000), *gc_threshold[1:])
        try:
            if not clock.run():
                self._stalled()
            if self.ended and (self._driver is None or self._driver.name == "offline"):
                # Drain: the last rounds' KV is still being persisted.  Step only while the
                # network has work, so a pending max_sim_s guard (or, in a real-time
                # environment, wall-clock waiting) does not stretch the run.
                net = self.net
                while clock.peek() < INF and net.busy():
                    clock.step()
        finally:
            # The books close however the run ends (done, truncated, stalled, or interrupted by
            # Ctrl-C / SIGTERM raised from inside a callback): what ran so far stays readable.
            gc.set_threshold(*gc_threshold)
            gc.unfreeze()
            self.wall_s = time.perf_counter() - t0
            self.metrics.finish()
            if not self.ended and self._driver is None:
                self.truncated = True
            self.events = clock.events

    def _stalled(self) -> None:
        stuck = [r for r in self.log.live.values() if r.stage not in FINAL]
        by_stage = {}
        for r in stuck:
            by_stage.setdefault(str(r.stage), []).append(r.rid)
        desc = "; ".join(f"{k}: {len(v)} (e.g. request ids {v[:5]})" for k, v in by_stage.items())
        raise SimulationStalled(f"simulation stalled at t={self.clock.now:.6g}s with {len(stuck)} "
                                f"unfinished requests and no pending events -- {desc}")
