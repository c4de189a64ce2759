"""Where a single agent's latency goes on an idle cluster (#11 item 4).

One agent, two rounds, on an otherwise idle cluster: the second round reads its first round's KV
from storage.  :func:`decompose` runs it and splits that request's TTFT, TTST (time to the
second token) and TPOT into the fixed costs and the work it pays, each part computed in closed
form from the config, the cluster's routes and the compute model -- not read back from the run.
The check: the parts add up to the simulated TTFT / TTST / TPOT (``residual`` ~ 0; the tests and
``dpsim validate`` assert it).  Like a taxi receipt: the total on the meter must equal the sum of
the lines printed under it.

TTFT = fetch-period wait + scheduler decision + scheduler RPC + buffer allocation
       + storage latency rounds + storage transfer
       + prefill compute (forward launch, per-layer, request + LM head, GEMMs, attention,
         exposed EP) + KV transfer beyond compute (layerwise H2D in / PE -> DE out tail)
TTST = TTFT + PE -> DE hand-off + DE H2D (latency + transfer) + the first decode step
TPOT = (hand-off + DE H2D + all gen-1 decode steps) / (gen - 1)   (dpsim's TPOT, metrics.tables)
decode step = launch + per-layer + EP dispatch/combine latency + weight read + GEMMs (+ LM head,
              per-sequence) + attention (+ DSA indexer)

Valid for the layerwise (coarse) prefill of the DualPath-style systems (the default) with one
prefill chunk; the round's new tokens must fit one forward.  docs/fixed_costs.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

#: The cluster a model's decomposition runs on (P, D): its smallest C1 cluster.
DEFAULT_PD = {"ds27b": (1, 1), "ds660b": (2, 4), "qwen32b": (1, 1)}

#: The agent: round 0 builds a context (no hit), round 1 appends to it and reads it back.
FIRST_TOKENS = 8192
APPEND_TOKENS = 1024
GEN_TOKENS = 64
THINK_S = 5.0  # long enough for round 0's KV to be persisted before round 1 (no persist wait)


@dataclass
class Decomposition:
    model: str
    system: str
    P: int
    D: int
    request: dict                       # prompt, hit, new, gen, path of the decomposed request
    ttft: dict = field(default_factory=dict)   # part -> seconds
    ttst: dict = field(default_factory=dict)
    tpot: dict = field(default_factory=dict)
    step: dict = field(default_factory=dict)   # one mean decode step, part -> seconds
    sim: dict = field(default_factory=dict)    # simulated ttft_s, ttst_s, tpot_s
    notes: list = field(default_factory=list)

    def total(self, which: str) -> float:
        return math.fsum(getattr(self, which).values())

    def residual(self, which: str) -> float:
        """sum of parts - simulated (seconds)."""
        return self.total(which) - self.sim[f"{which}_s"]

    def ok(self, rel: float = 1e-9, abs_s: float = 1e-9) -> bool:
        return all(abs(self.residual(w)) <= max(abs_s, rel * abs(self.sim[f"{w}_s"]))
                   for w in ("ttft", "ttst", "tpot"))

    def table(self) -> str:
        """The parts as text, one line each (ms)."""
        lines = [f"single agent, idle cluster: {self.model} {self.P}P{self.D}D {self.system}; request: "
                 + ", ".join(f"{k} {v}" for k, v in self.request.items())]
        for w in ("ttft", "ttst", "tpot", "step"):
            parts = getattr(self, w)
            lines.append(f"  {w.upper():<5} sum {1e3 * math.fsum(parts.values()):10.4f} ms"
                         + (f"  sim {1e3 * self.sim[f'{w}_s']:10.4f} ms  residual {self.residual(w):+.2e} s"
                            if f"{w}_s" in self.sim else "  (mean decode step)"))
            for k, v in parts.items():
                if v:
                    lines.append(f"      {k:<34} {1e3 * v:10.4f} ms")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def single_agent_cfg(model: str = "ds27b", P: int | None = None, D: int | None = None,
                     system: str = "dualpath", extra: Sequence[str] = ()) -> dict:
    from .validate import make_cfg

    P0, D0 = DEFAULT_PD.get(model, (1, 1))
    cfg = make_cfg("experiment=offline", f"system={system}", f"model={model}",
                   f"cluster.prefill_nodes={P if P is not None else P0}",
                   f"cluster.decode_nodes={D if D is not None else D0}", *extra)
    cfg["output"]["progress"] = False
    return cfg


def agent_trajectory(first: int = FIRST_TOKENS, append: int = APPEND_TOKENS, gen: int = GEN_TOKENS,
                     think: float = THINK_S):
    from ..workload.trajectory import Trajectory

    return Trajectory.from_rounds("fixed-costs", [[first, gen, 0.0], [append, gen, think]])


def run_single_agent(cfg: dict, traj=None):
    """Build and run ``cfg`` with one agent (``traj``, default :func:`agent_trajectory`)."""
    from ..runner import build

    sim = build(cfg, agents=[traj if traj is not None else agent_trajectory()])
    sim.run()
    return sim


def _route_rate(route, cap: float) -> float:
    """A lone flow's rate on ``route``: its slowest link, or the submission cap."""
    r = cap
    for link in route:
        if link.capacity < r:
            r = link.capacity
    return r


def decompose(model: str = "ds27b", P: int | None = None, D: int | None = None, system: str = "dualpath",
              extra: Sequence[str] = (), traj=None, cfg: dict | None = None) -> Decomposition:
    """Run one agent on an idle cluster and split its second round into closed-form parts."""
    from ..lifecycle.costs import LifecycleCosts

    cfg = cfg if cfg is not None else single_agent_cfg(model, P, D, system, extra)
    sc = cfg["system"]
    if not sc["layerwise"] or sc["prefill_mode"] != "coarse":
        raise ValueError(f"system {sc['name']!r}: the closed form covers layerwise coarse prefill only "
                         f"(system.layerwise=true, system.prefill_mode=coarse)")
    sim = run_single_agent(cfg, traj)
    reqs = sim.requests
    if len(reqs) < 2 or any(r.stage != "done" for r in reqs):
        raise RuntimeError("the single agent's run did not finish both rounds")
    r = reqs[1]
    if r.n_chunks != 1:
        raise ValueError(f"the request was prefilled in {r.n_chunks} chunks: use fewer new tokens")
    cm = sim.compute
    kn = cm.knobs
    port = sim.port
    routes = sim.cluster.routes
    costs = LifecycleCosts.from_config(cfg)
    c = sc["costs"]
    pe_gpu, de_gpu = r.pe.gpu, r.de.gpu
    kvb = sim.kvb
    L = cm.n_layers
    out = Decomposition(model=cfg["model"]["name"], system=sc["name"], P=cfg["cluster"]["prefill_nodes"],
                        D=cfg["cluster"]["decode_nodes"],
                        request={"prompt": r.prompt, "hit": r.hit, "new": r.new, "gen": r.gen, "path": r.path})

    # ------------------------------------------------------------------ to the scheduler and back
    if sc["scheduler"] == "dualpath":
        per = float(sc["dualpath"]["fetch_period_s"])
        fetch = (math.floor(r.arrival / per) + 1) * per - r.arrival
    else:
        fetch = 0.0
    t = out.ttft
    t["fetch-period wait"] = fetch
    # (LifecycleCosts.sched_s is decision + RPC; Oracle pays both)
    t["scheduler decision"] = float(c["sched_decision_s"]) if costs.sched_s else 0.0
    t["scheduler RPC"] = float(c["sched_rpc_s"]) if costs.sched_s else 0.0
    t["buffer allocation"] = costs.alloc_s

    # ------------------------------------------------------------------ storage read
    from ..lifecycle.costs import read_rounds
    best = (0.0, 0.0, 0.0)  # (total, latency part, transfer part) of the slower side
    for node, tokens in ((de_gpu.node, r.de_hit), (pe_gpu.node, r.hit - r.de_hit)):
        if tokens <= 0:
            continue
        route = routes.storage_read(node)
        lat = route.latency * read_rounds(tokens, sim.block, costs.read_queue_depth)
        b = tokens * kvb
        xfer = b / _route_rate(route, port.cap_storage) if route else 0.0
        if lat + xfer > best[0]:
            best = (lat + xfer, lat, xfer)
    t["storage latency (rounds x per-read)"] = best[1]
    t["storage transfer"] = best[2]

    # ------------------------------------------------------------------ prefill forward
    new, hit = r.new, r.hit
    work = cm.attn_work(hit, new)
    T = cm.prefill_time(new, work, 1)
    gemm = ((cm._c_lin * new) ** cm._p + cm._g_floor_p) ** cm._inv_p
    parts = {
        "prefill: forward launch": kn["prefill_fwd_overhead_s"],
        "prefill: per-layer overheads": L * kn["prefill_layer_overhead_s"],
        "prefill: exposed EP all-to-all": cm._ep_prefill_tok * new,
    }
    if getattr(cm, "tables", None) is None:  # analytic model: its own terms
        parts.update({"prefill: per-request + LM head": cm._p_req, "prefill: GEMMs": gemm,
                      "prefill: attention": cm._c_pair * work})
    else:  # table mode: GEMMs, attention and LM head come from the measured tables x levels
        parts["prefill: GEMMs + attention + LM head (measured tables x levels)"] = T - sum(parts.values())
    t.update(parts)
    # Layerwise coarse: inputs paced over T(L-1)/L then the last layer (T/L); outputs from T/L.
    pace = T * (L - 1) / L if L > 1 else 0.0
    in_end = -math.inf
    f = 0.0 if r.path == "pe" else (1.0 if r.path == "de" else (r.de_hit / r.hit if r.hit else 0.0))
    inb = hit * kvb
    lat_in = 0.0
    for frac, route in ((f, routes.remote_h2d(de_gpu, pe_gpu)), (1.0 - f, routes.h2d(pe_gpu))):
        b = inb * frac
        if b <= 0:
            continue
        rate = min(_route_rate(route, port.cap_layer), b / pace if pace > 0 else math.inf)
        if route:
            e = route.latency + b / rate
        else:
            e = 0.0
        if e > in_end:
            in_end, lat_in = e, route.latency
    outb = new * kvb + (r.hit - r.de_hit) * kvb if r.path != "de" else new * kvb
    route = routes.gpu_to_remote(pe_gpu, de_gpu)
    out_end = T / L
    lat_out = 0.0
    if outb > 0 and route:
        rate = min(_route_rate(route, port.cap_layer), outb / pace if pace > 0 else math.inf)
        out_end = T / L + route.latency + outb / rate
        lat_out = route.latency
    end = max(T, (in_end if in_end > -math.inf else 0.0) + T / L, out_end)
    tail = end - T
    lat_tail = min(tail, max(lat_in if in_end + T / L >= out_end else lat_out, 0.0))
    t["KV transfer beyond compute: latency"] = lat_tail
    t["KV transfer beyond compute: bandwidth"] = tail - lat_tail
    if inb / max(_route_rate(routes.h2d(pe_gpu), port.cap_layer), 1e-300) > pace:
        out.notes.append("the layerwise input is bandwidth-bound (not paced by compute)")

    # ------------------------------------------------------------------ hand-off, DE H2D, decode
    route = routes.h2d(de_gpu)
    b = r.prompt * kvb
    h2d_lat = route.latency if route else 0.0
    h2d_x = b / _route_rate(route, port.cap_full) if route else 0.0
    t0, ts, tt = cm.decode_coeffs()
    _t0, ts_base, t_tok, t_cap, cap = cm.decode_coeffs_split()
    ctx0 = r.prompt + 1
    k = r.gen - 1  # decode steps (the first token came from prefill)
    ep_lat = cm.n_moe_layers * kn["decode_ep_layer_latency_s"] if cm.ep_size_decode > 1 else 0.0
    step_fixed = {
        "decode: launch (fwd overhead)": kn["decode_fwd_overhead_s"],
        "decode: per-layer overheads": L * kn["decode_layer_overhead_s"],
        "decode: EP dispatch/combine latency": ep_lat,
        "decode: weight read + other fixed per step": t0 - (kn["decode_fwd_overhead_s"] + L * kn["decode_layer_overhead_s"] + ep_lat),
        "decode: GEMMs + LM head + per-seq": ts_base,
    }
    attn_first = tt * ctx0 + (ts - ts_base)
    first_step = dict(step_fixed, **{"decode: attention (+indexer)": attn_first})
    out.ttst = dict(out.ttft)
    out.ttst["PE->DE hand-off"] = costs.handoff_s
    out.ttst["DE H2D latency"] = h2d_lat
    out.ttst["DE H2D transfer"] = h2d_x
    out.ttst.update({f"first step: {n[8:]}": v for n, v in first_step.items()})
    mean_ctx = ctx0 + (k - 1) / 2.0
    out.step = dict(step_fixed, **{"decode: attention (+indexer)": tt * mean_ctx + (ts - ts_base)})
    # TPOT = (t_end - t_first) / (gen - 1)
    out.tpot = {"PE->DE hand-off (per token)": costs.handoff_s / k,
                "DE H2D (per token)": (h2d_lat + h2d_x) / k}
    out.tpot.update(out.step)
    # (table mode: t0/t_seq/t_tok are the affine fit of the measured tables x levels, docs/compute_tables.md,
    # so 'weight read + other fixed' is t0 less launch, layers and EP)
    if getattr(cm, "tables", None) is None and abs(t0 - (kn["decode_fwd_overhead_s"] + L * kn["decode_layer_overhead_s"] + ep_lat + cm._w_decode)) > 1e-12:
        out.notes.append("decode t0 is not launch + layers + EP + weights: the compute model changed")

    out.sim = {"ttft_s": r.t_first - r.arrival, "ttst_s": r.t_second - r.arrival,
               "tpot_s": (r.t_end - r.t_first) / k}
    if not r.t_read0 == r.t_alloc:
        out.notes.append(f"the read waited {r.t_read0 - r.t_alloc:.3g} s for persistence (raise THINK_S)")
    return out


def decompose_all(models: Sequence[str] = ("ds27b", "ds660b"), extra: Sequence[str] = ()) -> list:
    return [decompose(m, extra=extra) for m in models]


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m dpsim.analysis.fixed_costs",
                                 description="Decompose a single agent's TTFT/TTST/TPOT on an idle cluster.")
    ap.add_argument("--model", action="append", help="model config (repeatable; default ds27b and ds660b)")
    ap.add_argument("--system", default="dualpath")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. system.costs.sched_rpc_s=0")
    a = ap.parse_args(argv)
    ok = True
    for m in a.model or ["ds27b", "ds660b"]:
        d = decompose(m, system=a.system, extra=a.overrides)
        print(d.table())
        ok &= d.ok()
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
