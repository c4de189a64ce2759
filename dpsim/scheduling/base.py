"""Policy base class, the policy registry, and the narrow context a policy works in.

A policy decides (a) which PE and DE serve a request and which read plan carries its hit KV
(inter-engine) and (b) what goes into a PE's next forward pass (intra-engine).  It sees the
cluster only through :class:`SchedContext` -- engines, nodes, the load ledger, a clock, the
compute model -- and hands each decision to ``ctx.assign(req, pe, de, plan)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .ledger import LoadLedger, new_tokens  # noqa: F401
from .read_paths import READ_PATHS, ReadPlan, make_read_rule  # noqa: F401

POLICIES: dict = {}


def register(name: str):
    def deco(cls):
        if name in POLICIES:
            raise ValueError(f"policy {name!r} registered twice")
        POLICIES[name] = cls
        if cls.__dict__.get("name") != name:
            cls.name = name  # (a compiled policy, an extension type, names itself in its body)
        return cls
    return deco


def make_policy(ctx: "SchedContext", syscfg: dict):
    name = syscfg["scheduler"]
    if name not in POLICIES:
        raise ValueError(f"system.scheduler={name!r} is not a known policy; choose one of "
                         f"{sorted(POLICIES)}")
    return POLICIES[name](ctx, syscfg)


@dataclass
class SchedContext:
    """What a policy may see and do (built by :class:`dpsim.sim.Simulation`)."""

    pes: list                 # PrefillEngine per PE GPU, in index order
    des: list                 # DecodeEngine per DE GPU
    prefill_nodes: list       # cluster Nodes (engine.gpu.node is one of these)
    decode_nodes: list
    ledger: LoadLedger        # the only writer of seq_e / tok_e / read_q
    clock: object             # dpsim.lifecycle.clock.Clock: now, timer(dt, cb)
    compute: object           # the compute model (dpsim.protocols.ComputeModel)
    kvb: float                # KV bytes per token
    block: int                # tokens per block
    n_layers: int
    layerwise: bool           # prefill strategy keeps one layer's KV in HBM (vs the whole batch)
    snic_Bps: float           # one node's effective storage-NIC bandwidth
    agents: list              # the workload (read-only: policies may derive statistics)
    assign: Callable          # assign(req, pe, de, plan): the decision, executed by the lifecycle


class Policy:
    name = "abstract"

    def __init__(self, ctx: SchedContext, syscfg: dict):
        self.ctx = ctx
        self.cfg = syscfg
        self.ledger = ctx.ledger
        self.read_rule = make_read_rule(syscfg["read_path"], ctx)
        b = syscfg["batching"]
        self.max_tokens = int(b["max_prefill_tokens"])
        self.chunking = bool(b["chunked_prefill"])
        # What every batch formation reads of the context, as typed fields (C reads when compiled).
        self._kvb = ctx.kvb
        # Layerwise: one layer's KV of the batch (double-buffered) must fit; otherwise all of it.
        self._hbm_div = (ctx.n_layers / 2.0) if ctx.layerwise else 1.0
        self._block = ctx.block
        self._compute = ctx.compute

    # -- inter-engine
    def submit(self, req) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def waiting(self) -> int:
        """Requests the policy holds that have no engines yet."""
        return 0

    def plan(self, req, pe, de) -> ReadPlan:
        """The read plan of ``req`` once it has ``pe`` and ``de`` (hit clamped first: at least
        one token is computed so the PE produces the first token's logits)."""
        h = req.hit
        if h > req.prompt - 1:
            h = req.prompt - 1
        req.hit = h if h > 0 else 0
        return self.read_rule(req, pe, de)

    def on_prefill_done(self, req) -> None:
        pass

    def on_request_done(self, req) -> None:
        pass

    # -- intra-engine
    def form_batch(self, pe, queue) -> list:
        """FIFO up to ``batching.max_prefill_tokens`` new tokens; the request that overflows is
        chunked (chunked prefill).  Without layerwise prefill the batch's whole KV must fit in
        HBM (§S9 Basic), which bounds it further."""
        budget = self.max_tokens
        items = []
        used = 0
        kvb = self._kvb
        hbm = pe.gpu.hbm_kv
        hbm_div = self._hbm_div
        kv_used = 0.0
        for req in queue:
            rem = req.new - req.computed
            room = budget - used
            if room <= 0:
                break
            bsz = rem if rem <= room else room
            cached = req.hit + req.computed
            kv = (cached + bsz) * kvb / hbm_div
            if kv_used + kv > hbm:
                # Largest bsz that fits in what is left of HBM.
                left = (hbm - kv_used) * hbm_div / kvb - cached
                bsz = int(min(bsz, left))
                if bsz <= 0:
                    break
                kv = (cached + bsz) * kvb / hbm_div
            if bsz < rem and not self.chunking and items:
                break
            items.append((req, bsz))
            used += bsz
            kv_used += kv
            if bsz < rem:
                break
        for _ in items:
            queue.popleft()
        return items
