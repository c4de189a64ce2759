"""Run one simulation from a resolved config: validate, build, run, write outputs.

A run stopped by Ctrl-C (SIGINT) or SIGTERM writes what was simulated so far, with
``"status": "interrupted"`` in its summary, and then raises :class:`Interrupted` (a
``KeyboardInterrupt``) carrying that summary; ``dpsim`` exits 130 / 143 without a traceback.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from pathlib import Path

from .config import ConfigError, validate

log = logging.getLogger("dpsim")


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; ``summary`` is what was simulated until then (written to
    the output directory if there was one), ``signum`` the signal (SIGINT or SIGTERM)."""

    def __init__(self, signum: int, summary: dict | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.summary = summary

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


class _Stop(KeyboardInterrupt):
    """Raised by the SIGTERM handler (SIGINT raises a plain KeyboardInterrupt)."""


def _on_sigterm(signum, frame):
    raise _Stop()


class LogProgress:
    """Progress as log lines (for runs without a terminal: batch jobs, sweeps, notebooks' logs):
    the interface of the tqdm bar the simulation updates (``update``, ``close``), one line per
    ``every_s`` seconds of wall time."""

    def __init__(self, total: int | None, every_s: float, desc: str):
        self.total, self.every_s, self.desc = total, float(every_s), desc
        self.n = 0
        self.sim = None  # set by build(): for the simulated time in the line
        self._t0 = self._last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n & 63:  # look at the clock every 64 requests only
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            log.info(self.line(now))

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        t = getattr(getattr(self.sim, "env", None), "now", None)
        st = f", simulated {t:.1f} s" if isinstance(t, (int, float)) else ""
        return f"{self.desc}: {done} requests done{st}, wall {now - self._t0:.0f} s"

    def close(self) -> None:
        pass


def meminfo_available_bytes() -> int | None:
    """Linux MemAvailable from /proc/meminfo in bytes, or None where it cannot be read (also
    what dpsim.hw.base.available_memory_bytes sizes its buffers by)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _available_memory() -> float | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable, else the free
    physical pages), or None if unknown."""
    m = meminfo_available_bytes()
    if m is not None:
        return float(m)
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(cfg: dict, *, agents: int | None = None, requests: int | None = None) -> None:
    """Refuse a run whose estimated memory exceeds ``limits.memory_bytes`` (null: what the machine
    has available), from ``limits.bytes_per_agent`` / ``limits.bytes_per_request`` (measured)."""
    lim = cfg["limits"]
    have = lim["memory_bytes"]
    source = "limits.memory_bytes"
    if have is None:
        have, source = _available_memory(), "available memory (set limits.memory_bytes to override)"
    if have is None:
        return
    for n, per, what, knob in ((agents, lim["bytes_per_agent"], "agent", "workload.agents"),
                               (requests, lim["bytes_per_request"], "request", "workload.agents")):
        if n is None:
            continue
        need = n * float(per)
        if need > have:
            raise ConfigError(
                f"{knob}: the run needs about {need / 1e9:.3g} GB ({n:,} {what}s x {float(per) / 1e3:.3g} KB, "
                f"limits.bytes_per_{what}) but {source} is {have / 1e9:.3g} GB: lower {knob} "
                f"(or workload.n_trajectories / workload.mal), or raise limits.memory_bytes if it fits")


def effective_seeds(cfg: dict) -> dict:
    """The seeds a run of ``cfg`` actually uses besides the top-level ``seed`` (summary.json's
    ``seeds``).  A sub-seed that is null in the YAML derives from the top-level seed -- it *is* the
    top-level seed (different streams draw from different generators, so sharing the integer does
    not correlate them) -- and an integer pins it:

    * ``workload``: the workload's random choices (the §S8 synthetic generator, the sampled extra
      agents and their prefix rounds): ``workload.seed``, or ``seed`` where that is null
      (:func:`dpsim.workload.source.workload_seed`);
    * ``arrivals`` (online runs only): the Poisson agent arrivals, ``seed`` (the online driver
      draws from ``numpy.random.default_rng(seed + 7919)``; no sub-seed).

    The schedulers' tie-breaks are deterministic (lowest index first), not random, so they need no
    seed.  Same config and seed => byte-identical outputs."""
    from .workload.source import workload_seed

    top = cfg["seed"]
    out = {"workload": workload_seed(cfg["workload"].get("seed"), top)}
    if cfg["experiment"]["mode"] == "online":
        out["arrivals"] = top
    return out


def build(cfg: dict, progress: bool = False, backend=None, env=None, agents=None):
    """Validate ``cfg`` and return a ready :class:`~dpsim.sim.Simulation` (not yet run);
    ``backend``/``env``: see :class:`~dpsim.sim.Simulation`.  ``agents``: the trajectories to
    run instead of ``cfg``'s workload (a sequence), or a function of the workload's trajectories
    returning those to run (e.g. a truncation); None: ``cfg``'s workload as it is."""
    from .drivers import DRIVERS
    from .engines.compute import ComputeModel
    from .sim import Simulation
    from .workload.source import load_workload

    lp = cfg.get("cluster", {}).get("link_profile")
    if lp:
        from .cluster.profile import link_profile
        try:
            cfg = link_profile(cfg)  # cluster.link_mapping picks which profile link prices which route
        except FileNotFoundError:
            raise ConfigError(f"cluster.link_profile={lp!r}: no such file; give a calibration profile "
                              f"(e.g. calibration/profiles/h100_measured.yaml) or cluster.link_profile=null") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"cluster.link_profile={lp!r} could not be applied ({type(e).__name__}: {e}); "
                              f"give a profile written by `python -m dpsim.calibration` or cluster.link_profile=null") from None
    validate(cfg)
    compute = ComputeModel(cfg["model"], cfg["gpu"], cfg["model"].get("knobs", {}) or {})
    n_agents = cfg["workload"].get("agents")
    if agents is None and isinstance(n_agents, int) and not isinstance(n_agents, bool):
        check_memory(cfg, agents=n_agents)  # before the agents are built
    if agents is None or callable(agents):
        loaded = load_workload(cfg["workload"], seed=cfg["seed"])  # workload.seed, or seed where it is null
        agents = loaded if agents is None else agents(loaded)
    agents = list(agents)
    if not agents:
        raise ConfigError("the workload yielded no agents: check workload.agents and workload.path")
    n_req = sum(t.n_rounds for t in agents)
    check_memory(cfg, requests=n_req)
    bar = None
    total = n_req if cfg["experiment"]["mode"] == "offline" else None
    desc = f"dpsim {cfg['system']['name']}"
    if progress == "log":
        bar = LogProgress(total, cfg["output"]["progress_log_s"], desc)
    elif progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="req", file=sys.stderr, delay=2.0, mininterval=0.5,
                   desc=desc, leave=False)
    sim = Simulation(cfg, agents, compute, progress=bar, backend=backend, env=env)
    if lp and backend is None:
        # A profile whose storage suite measured writes costing more than their bytes on the
        # shared device (dpsim.calibration.mixed) prices them so here too; 1 (or absent) changes nothing.
        from .cluster.profile import link_profile_write_weight, weight_storage_writes
        try:
            weight_storage_writes(sim, link_profile_write_weight(cfg))
        except ValueError as e:
            raise ConfigError(f"cluster.link_profile={lp!r}: {e}") from None
    if isinstance(bar, LogProgress):
        bar.sim = sim
    mode = cfg["experiment"]["mode"]
    ecfg = dict(cfg["experiment"])
    ecfg["aps"] = cfg["workload"].get("aps")
    ecfg["seed"] = cfg["seed"]
    sim.driver = DRIVERS[mode](sim, ecfg)
    return sim


def run(cfg: dict, out_dir: str | Path | None = None, cfg_yaml: str | None = None,
        progress: bool | str = False, extra: dict | None = None, backend=None, env=None) -> tuple[dict, object]:
    """Run ``cfg``; write outputs to ``out_dir`` (if given).  Returns (summary, sim).
    ``progress``: False, True (a tqdm bar on stderr) or ``"log"`` (periodic log lines).
    Ctrl-C / SIGTERM: the partial results are written and :class:`Interrupted` is raised."""
    sim = build(cfg, progress=progress, backend=backend, env=env)
    interrupted = None
    prev = None
    try:
        prev = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (e.g. a launcher's worker thread): no handler
        prev = None
    try:
        sim.run()
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM through _on_sigterm
        interrupted = signal.SIGTERM if isinstance(e, _Stop) else signal.SIGINT  # sim.run closed its books
    finally:
        if prev is not None:
            signal.signal(signal.SIGTERM, prev)
        if sim.progress is not None:
            sim.progress.close()
    try:
        summ = _summarise(cfg, sim, out_dir, cfg_yaml, extra, interrupted)
    except KeyboardInterrupt:  # a second Ctrl-C while writing: stop now, nothing more to save
        raise Interrupted(interrupted or signal.SIGINT, None) from None
    if interrupted is not None:
        raise Interrupted(interrupted, summ)
    return summ, sim


def _summarise(cfg, sim, out_dir, cfg_yaml, extra, interrupted) -> dict:
    from .metrics.tables import request_table, summary, trajectory_table

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
        "seeds": effective_seeds(cfg),  # the sub-seeds actually used (a null one derives from seed)
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
    summ["truncated"] = not sim.ended
    if summ["truncated"]:
        summ["max_sim_s"] = cfg["experiment"]["max_sim_s"]
    summ["status"] = ("interrupted" if interrupted is not None else
                      "truncated" if summ["truncated"] else "complete")
    if interrupted is not None:
        summ["interrupted_by"] = signal.Signals(interrupted).name
    if extra:
        summ.update(extra)
    if out_dir is not None:
        from .metrics.outputs import write_outputs
        if cfg_yaml is not None and sim.cfg is not cfg:  # e.g. a link profile was applied
            from omegaconf import OmegaConf
            cfg_yaml = OmegaConf.to_yaml(OmegaConf.create(sim.cfg))
        files = write_outputs(Path(out_dir), sim, summ, req, traj, cfg_yaml, cfg.get("output", {}))
        summ["_files"] = files
    return summ


def _cut(s: dict) -> str:
    st = s.get("status", "complete")
    return "" if st == "complete" else f"  ({st}: time of the cut-off, not of completion)"


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
        ("JCT (s)", f(s["jct_s"], nd=5) + _cut(s)),
        ("prompt tokens/s", f(s["prompt_tokens_per_s"], nd=4)),
        ("TTFT mean / p90 (s)", f"{f(s['ttft_s']['mean'])} / {f(s['ttft_s']['p90'])}"),
        ("TPOT mean / p90 (ms)", f"{f(s['tpot_s']['mean'], scale=1e3)} / {f(s['tpot_s']['p90'], scale=1e3)}"),
        ("TTST mean (s)", f(s["ttst_s"]["mean"])),
        ("SNIC read GB (P / D nodes)", f"{s['snic_read_bytes_prefill_nodes'] / 1e9:.4g} / "
                                       f"{s['snic_read_bytes_decode_nodes'] / 1e9:.4g}"),
        ("SNIC balance max/avg", f(s["snic_balance_max_over_avg"])),
        ("events / wall (s)", f"{s['events']} / {s['sim_wall_s']:.2f}"),
    ]
    st = s.get("status", "complete")
    if st == "truncated":
        rows.insert(0, ("status", f"TRUNCATED: stopped at experiment.max_sim_s={s.get('max_sim_s', '?')} s of "
                                  f"simulated time with {s['requests_completed']} / {s['requests_total']} "
                                  f"requests done; the figures below cover only that part"))
    elif st == "interrupted":
        rows.insert(0, ("status", f"INTERRUPTED by {s.get('interrupted_by', 'a signal')}: "
                                  f"{s['requests_completed']} / {s['requests_total']} requests done; "
                                  f"the figures below cover only that part"))
    if "slo_met" in s:
        rows.insert(6 + (st != "complete"), ("online: APS / SLO met", f"{s['aps']} / {s['slo_met']} ({s.get('stop_reason')})"))
    if "seed" in s:  # one run is one draw: say how to get the interval
        rows.append(("seed", f"{s['seed']} (one replicate, no interval: `dpsim -m ... seed=0,1,2` then "
                             f"`dpsim report SWEEP_DIR` gives mean and 95% interval)"))
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"  {k:<{w}}  {v}" for k, v in rows)
