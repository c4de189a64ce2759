"""Run one simulation from a resolved config: validate, build, run, write outputs."""
from __future__ import annotations

import math
import sys
from pathlib import Path

from .config import ConfigError, validate


def build(cfg: dict, progress: bool = False, backend=None, env=None, agents=None):
    """Validate ``cfg`` and return a ready :class:`~dpsim.sim.Simulation` (not yet run);
    ``backend``/``env``: see :class:`~dpsim.sim.Simulation`.  ``agents``: the trajectories to
    run instead of ``cfg``'s workload (a sequence), or a function of the workload's trajectories
    returning those to run (e.g. a truncation); None: ``cfg``'s workload as it is."""
    from .drivers import DRIVERS
    from .engines.compute import ComputeModel
    from .sim import Simulation
    from .workload.source import load_workload

    if cfg.get("cluster", {}).get("link_profile"):
        from .cluster.profile import link_profile
        cfg = link_profile(cfg)  # cluster.link_mapping picks which profile link prices which route
    validate(cfg)
    compute = ComputeModel(cfg["model"], cfg["gpu"], cfg["model"].get("knobs", {}) or {})
    if agents is None or callable(agents):
        wl = dict(cfg["workload"])
        wl.setdefault("seed", cfg["seed"])
        loaded = load_workload(wl)
        agents = loaded if agents is None else agents(loaded)
    agents = list(agents)
    if not agents:
        raise ConfigError("the workload yielded no agents: check workload.agents and workload.path")
    bar = None
    if progress:
        from tqdm import tqdm
        total = sum(t.n_rounds for t in agents) if cfg["experiment"]["mode"] == "offline" else None
        bar = tqdm(total=total, unit="req", file=sys.stderr, delay=2.0, mininterval=0.5,
                   desc=f"dpsim {cfg['system']['name']}", leave=False)
    sim = Simulation(cfg, agents, compute, progress=bar, backend=backend, env=env)
    mode = cfg["experiment"]["mode"]
    ecfg = dict(cfg["experiment"])
    ecfg["aps"] = cfg["workload"].get("aps")
    ecfg["seed"] = cfg["seed"]
    sim.driver = DRIVERS[mode](sim, ecfg)
    return sim


def run(cfg: dict, out_dir: str | Path | None = None, cfg_yaml: str | None = None,
        progress: bool = False, extra: dict | None = None, backend=None, env=None) -> tuple[dict, object]:
    """Run ``cfg``; write outputs to ``out_dir`` (if given).  Returns (summary, sim)."""
    from .metrics.tables import request_table, summary, trajectory_table

    sim = build(cfg, progress=progress, backend=backend, env=env)
    try:
        sim.run()
    finally:
        if sim.progress is not None:
            sim.progress.close()
    mode = cfg["experiment"]["mode"]
    req = request_table(sim)
    traj = trajectory_table(sim)
    summ = summary(sim, req, traj, mode)
    summ.update({
        "system": cfg["system"]["name"],
        "model": cfg["model"]["name"],
        "prefill_nodes": cfg["cluster"]["prefill_nodes"],
        "decode_nodes": cfg["cluster"]["decode_nodes"],
        "gpus_per_node": cfg["cluster"]["gpus_per_node"],
        "agents": len(sim.agents),
        "seed": cfg["seed"],
    })
    summ.update(sim.driver.summary())
    if mode == "online":
        slo_t = cfg["experiment"]["slo_ttft_s"]
        slo_p = cfg["experiment"]["slo_tpot_s"]
        drv = sim.driver
        last = drv.history[-1][1] if drv.history else math.nan
        tpot = summ["tpot_s"]["mean"]
        summ["aps"] = cfg["workload"]["aps"]
        summ["window_ttft_s"] = last
        summ["slo_met"] = bool(drv.stop_reason.startswith("steady state") or
                               drv.stop_reason.startswith("agents exhausted")) and \
            (last == last and last <= slo_t) and (tpot is not None and tpot <= slo_p)
    summ["truncated"] = bool(not sim.done_event.triggered)
    if extra:
        summ.update(extra)
    if out_dir is not None:
        from .metrics.outputs import write_outputs
        if cfg_yaml is not None and sim.cfg is not cfg:  # e.g. a link profile was applied
            from omegaconf import OmegaConf
            cfg_yaml = OmegaConf.to_yaml(OmegaConf.create(sim.cfg))
        files = write_outputs(Path(out_dir), sim, summ, req, traj, cfg_yaml, cfg.get("output", {}))
        summ["_files"] = files
    return summ, sim


def format_summary(s: dict) -> str:
    def f(v, unit="", scale=1.0, nd=3):
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "-"
        return f"{v * scale:.{nd}g}{unit}"
    rows = [
        ("system / model", f"{s.get('system')} / {s.get('model')}"),
        ("cluster", f"{s.get('prefill_nodes')}P{s.get('decode_nodes')}D x {s.get('gpus_per_node')} GPUs"),
        ("mode", s.get("mode")),
        ("agents", s.get("agents")),
        ("requests done / total", f"{s['requests_completed']} / {s['requests_total']}"
                                  + (f"  ({s['requests_failed']} failed)" if s["requests_failed"] else "")),
        ("JCT (s)", f(s["jct_s"], nd=5)),
        ("prompt tokens/s", f(s["prompt_tokens_per_s"], nd=4)),
        ("TTFT mean / p90 (s)", f"{f(s['ttft_s']['mean'])} / {f(s['ttft_s']['p90'])}"),
        ("TPOT mean / p90 (ms)", f"{f(s['tpot_s']['mean'], scale=1e3)} / {f(s['tpot_s']['p90'], scale=1e3)}"),
        ("TTST mean (s)", f(s["ttst_s"]["mean"])),
        ("SNIC read GB (P / D nodes)", f"{s['snic_read_bytes_prefill_nodes'] / 1e9:.4g} / "
                                       f"{s['snic_read_bytes_decode_nodes'] / 1e9:.4g}"),
        ("SNIC balance max/avg", f(s["snic_balance_max_over_avg"])),
        ("events / wall (s)", f"{s['events']} / {s['sim_wall_s']:.2f}"),
    ]
    if "slo_met" in s:
        rows.insert(6, ("online: APS / SLO met", f"{s['aps']} / {s['slo_met']} ({s.get('stop_reason')})"))
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"  {k:<{w}}  {v}" for k, v in rows)
