"""Policy base class and the registry."""
from __future__ import annotations

POLICIES: dict = {}

# Read-path rules (§S6 "read-path choice"): pe = PE read path only (Basic); de = DE read path
# only; round_robin = alternate (the ablation's "dual-path loading with round-robin choices");
# shorter_queue = the node whose SNIC has the shorter read_q (DualPath); split = one request's
# hit KV through both paths, in the proportion that equalises the two nodes' read queues.
READ_PATHS = ("pe", "de", "round_robin", "shorter_queue", "split")


def register(name: str):
    def deco(cls):
        POLICIES[name] = cls
        cls.name = name
        return cls
    return deco


def make_policy(sim, syscfg: dict):
    name = syscfg["scheduler"]
    if name not in POLICIES:
        raise ValueError(f"system.scheduler={name!r} is not a known policy; choose one of "
                         f"{sorted(POLICIES)}")
    return POLICIES[name](sim, syscfg)


class Policy:
    name = "abstract"

    def __init__(self, sim, syscfg: dict):
        self.sim = sim
        self.cfg = syscfg
        rp = syscfg["read_path"]
        if rp not in READ_PATHS:
            raise ValueError(f"system.read_path={rp!r} is not one of {READ_PATHS}")
        self.read_path = rp
        self._rr_path = 0
        b = syscfg["batching"]
        self.max_tokens = int(b["max_prefill_tokens"])
        self.chunking = bool(b.get("chunked_prefill", True))

    # -- inter-engine
    def submit(self, req) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def choose_path(self, req, pe, de) -> tuple[str, int]:
        """Returns (path, tokens read through the DE path when path == 'split')."""
        rp = self.read_path
        if rp in ("pe", "de"):
            return rp, 0
        if rp == "round_robin":
            self._rr_path ^= 1
            return ("pe" if self._rr_path else "de"), 0
        pn = pe.gpu.node
        dn = de.gpu.node
        if rp == "shorter_queue":
            return ("pe" if pn.read_q <= dn.read_q else "de"), 0
        # split: choose x tokens on the DE side so that the two queues end equal.
        h = max(0, min(req.hit, req.prompt - 1))
        x = (pn.read_q + h - dn.read_q) / 2.0
        x = int(round(min(max(x, 0.0), h)))
        if x <= 0:
            return "pe", 0
        if x >= h:
            return "de", 0
        return "split", x

    def on_prefill_done(self, req) -> None:
        pass

    def on_request_done(self, req) -> None:
        pass

    # -- intra-engine
    def form_batch(self, pe, queue) -> list:
        """FIFO up to ``batching.max_prefill_tokens`` new tokens; the request that overflows is
        chunked (chunked prefill).  Without layerwise prefill the batch's whole KV must fit in
        HBM (§S9 Basic), which bounds it further."""
        sim = self.sim
        budget = self.max_tokens
        items = []
        used = 0
        kvb = sim.kvb
        layerwise = sim.sys["layerwise"]
        hbm = pe.gpu.hbm_kv
        # Layerwise: one layer's KV of the batch (double-buffered) must fit; otherwise all of it.
        hbm_div = (sim.L / 2.0) if layerwise else 1.0
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
