"""``dpsim validate``: the public calibration points (C1, C2) and the paper's qualitative claims,
simulated beside the paper's numbers.

    python -m dpsim.analysis.validate [--quick] [--seeds N] [--out DIR] [--set KEY=VALUE ...] [--sensitivity]

What it runs (shared/spec/calibration-points.md; §S7 for the bound):

* **C1** -- the 11 Oracle offline JCTs (DS 660B 2P4D 64K 512..4096 agents, DS 27B 1P1D 64K
  512..4096, Qwen 32B 1P2D 32K 128..512).  ``--quick``: only the 512/128-agent points.
* **C2** -- the motivation curve (PE throughput vs batch size for 30K + 300-token requests,
  from the compute model of DS 660B), DeepSeek's public V3 prefill/decode rates per H800 node
  (compute model, V3 variant of ds660b: see dpsim/analysis/c2.py for the
  assumptions), the low-load TPOT from a 1-agent offline simulation (DualPath, DS 660B 2P4D and
  DS 27B 1P1D, 64K), and the headline 1.87x DualPath/Basic offline throughput (DS 660B 2P4D,
  64K, 4096 agents; throughput ratio = JCT_basic / JCT_dualpath).
* **Qualitative** (pass/fail, no paper number): (a) the DualPath/Basic gain grows with the
  number of agents and with the MAL (DS 660B); (b) DualPath is within 15% of Oracle for DS
  660B at the largest agent count; (c) the §S7 closed form gives 1/7 <= P/D <= 7/2 for
  g=8, s=1, M=500 GB/s, B=50 GB/s, and a storage-bound simulation at a P/D inside the range
  reads at (P+D) x SNIC.

Every simulated point is run at ``--seeds N`` seeds (0..N-1; default 3, ``--quick`` 2): its row
has the mean over the seeds, the **95% confidence interval of that mean (Student t over the
seeds: mean +- t(0.975, N-1) s / sqrt(N); dpsim.analysis.stats)**, the paper's value, the
relative error of the mean and a pass/fail at 10% on the mean.  Ratios (DualPath/Basic, the
DualPath-Oracle gap) are computed per seed -- both systems replay the seed's workload -- then
averaged.  Rows from the compute model alone have no random input and no interval.  Every
quantitative row has the simulated value, the paper's value, the relative error and a
pass/fail at 10%.  ``--quick`` shrinks agent counts so the whole run takes a few minutes; its
rows are marked ``quick`` (they are not the paper's conditions, so their errors are only a smoke
test).  ``--out DIR`` writes ``report.md``, ``report.csv`` and
``report.png`` (simulated / paper, one bar per point).  Exit status: 0 when every point is within
10% and every claim holds, 1 when one fails (named on stderr), 2 on a bad argument.

The point tables (:mod:`dpsim.analysis.points`, re-exported here) and the simulation helpers
here are shared with ``calibration/fit_c1.py`` and ``calibration/fit_snic.py``.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

TOL = 0.10  # pass/fail threshold on |relative error|
SEEDS = 3        # replicates per simulated point (#11: 3 at paper scale, the fewest with a usable t interval)
QUICK_SEEDS = 2  # --quick: the fewest seeds that give an interval at all (t = 12.7: wide, honestly)


# ====================================================================== calibration points
# The C1/C2 tables (with their sources) are in .points; re-exported here for fit_c1/fit_snic.
from .points import (C1_POINTS, HEADLINE, HEADLINE_RATIO, QUICK_AGENTS,  # noqa: E402,F401
                     TPOT_LOW_LOAD_CLUSTER, TPOT_LOW_LOAD_S, C1Point)

TPOT_LOW_LOAD = {m: (*TPOT_LOW_LOAD_CLUSTER[m], t) for m, t in TPOT_LOW_LOAD_S.items()}  # model -> (P, D, TPOT s)
QUICK_HEADLINE_AGENTS = 128  # --quick: DualPath/Basic and the qualitative claims at small scale
QUICK_SMALL_AGENTS = 32


# ====================================================================== config and runs
def make_cfg(*overrides: str) -> dict:
    """The resolved config dict that ``dpsim <overrides>`` would run (Hydra compose)."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="dpsim.conf", version_base=None):
        cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def scenario_cfg(model: str, P: int, D: int, mal: str, agents: int, system: str = "oracle",
                 extra: Sequence[str] = (), model_set: dict | None = None, seed: int | None = None) -> dict:
    """An offline scenario's config.  ``model_set``: values put into ``cfg['model']`` after
    composition (``knobs.<name>`` or a top-level model key such as ``hbm_reserved_bytes``).
    ``seed``: the top-level seed (None: the config's; ``extra`` may set it too)."""
    cfg = make_cfg("experiment=offline", f"system={system}", f"model={model}",
                   f"cluster.prefill_nodes={P}", f"cluster.decode_nodes={D}",
                   f"workload.mal={mal}", f"workload.agents={agents}",
                   *([] if seed is None else [f"seed={int(seed)}"]), *extra)
    cfg.setdefault("output", {})["progress"] = False
    for k, v in (model_set or {}).items():
        if k.startswith("knobs."):
            cfg["model"]["knobs"][k[len("knobs."):]] = v
        else:
            cfg["model"][k] = v
    return cfg


def run_summary(cfg: dict) -> tuple[dict, float]:
    """Run ``cfg`` (no outputs written); returns (summary, wall seconds)."""
    from ..runner import run

    t = time.perf_counter()
    summ, _sim = run(cfg)
    return summ, time.perf_counter() - t


def run_jct(cfg: dict) -> tuple[float, float]:
    """(JCT seconds, wall seconds) of an offline run; raises if the run did not finish."""
    summ, wall = run_summary(cfg)
    if summ.get("truncated") or summ["requests_completed"] != summ["requests_total"]:
        raise RuntimeError(f"run did not complete ({summ['requests_completed']}/"
                           f"{summ['requests_total']} requests)")
    return float(summ["jct_s"]), wall


def rel_err(sim: float, paper: float) -> float:
    return sim / paper - 1.0 if paper and math.isfinite(sim) else math.nan


# ====================================================================== C2 (compute model)
def c2_compute_rows(model_cfgs: dict | None = None, gpu: str = "h800") -> list[dict]:
    """C2 points that come from the compute model alone: motivation curve (DS 660B), DeepSeek's
    public V3 prefill/decode rates per node.  ``model_cfgs``: {name: model dict} (default: the
    YAML files).  Assumptions in :mod:`dpsim.analysis.c2`."""
    from ..engines.compute import ComputeModel
    from . import c2 as F
    from . import points as Pt

    g = F.load("gpu", gpu)
    ms = dict(model_cfgs or {})
    for n in ("ds660b", "ds27b", "qwen32b"):
        ms.setdefault(n, F.load("model", n))
    cm = ComputeModel(ms["ds660b"], g, ms["ds660b"]["knobs"])
    v3m = F.v3_variant(ms["ds660b"])
    v3 = ComputeModel(v3m, g, v3m["knobs"])
    rows = []
    for b, want in Pt.MOTIVATION.items():
        rows.append(_row("C2", f"motivation: PE throughput @{b} reqs / @1 (30K+300, ds660b)",
                         F.motivation_ratios(cm)[b], want, "x"))
    rows.append(_row("C2", "DeepSeek V3 prefill input tok/s per H800 node (incl. hits)",
                     F.prod_prefill_node(v3, 4096.0), Pt.DS_PREFILL_INPUT_TOK_S_NODE, "tok/s"))
    rows.append(_row("C2", "DeepSeek V3 decode output tok/s per H800 node",
                     F.prod_decode_node(v3, 4096.0), Pt.DS_DECODE_TOK_S_NODE, "tok/s"))
    for n, want in Pt.TPOT_LOW_LOAD_S.items():
        c = ComputeModel(ms[n], g, ms[n]["knobs"])
        rows.append(_row("C2", f"low-load TPOT, compute model (1 seq, 32.7K ctx) [{n}]",
                         F.tpot_low_load(c), want, "s"))
    return rows


def _row(group: str, name: str, sim, paper: float | None, unit: str, note: str = "",
         wall: float = 0.0) -> dict:
    """A report row.  ``sim``: one value (no random input: no interval) or an
    :class:`~dpsim.analysis.stats.Interval` over seeds (the row's value is its mean)."""
    from .stats import Interval
    iv = sim if isinstance(sim, Interval) else None
    sim = iv.mean if iv is not None else float(sim)
    err = rel_err(sim, paper) if paper is not None else math.nan
    ok = (abs(err) <= TOL) if paper is not None and math.isfinite(err) else None
    return {"group": group, "point": name, "sim": float(sim), "paper": paper, "unit": unit,
            "rel_err": err, "pass": ok, "note": note, "wall_s": wall,
            "ci_lo": iv.lo if iv is not None else math.nan, "ci_hi": iv.hi if iv is not None else math.nan,
            "n_seeds": iv.n if iv is not None else 0}


# ====================================================================== simulations
def tpot_low_load_sim(model: str, P: int, D: int, system: str = "dualpath",
                      extra: Sequence[str] = (), seed: int | None = None) -> tuple[float, float]:
    """Mean TPOT (s) of a 1-agent offline run (64K dataset): decode at the lowest load."""
    cfg = scenario_cfg(model, P, D, "64k", 1, system=system, extra=extra, seed=seed)
    summ, wall = run_summary(cfg)
    return float(summ["tpot_s"]["mean"]), wall


def ratio_basic_dualpath(agents: int, mal: str = "64k", model: str = "ds660b", P: int = 2, D: int = 4,
                         extra: Sequence[str] = (), runner: Callable | None = None,
                         seed: int | None = None) -> dict:
    """JCT of Basic and DualPath at one seed (and their ratio, = DualPath's throughput gain)."""
    rj = runner or (lambda cfg: run_jct(cfg))
    out = {}
    for s in ("basic", "dualpath"):
        out[s], out[f"wall_{s}"] = rj(scenario_cfg(model, P, D, mal, agents, system=s, extra=extra, seed=seed))
    out["ratio"] = out["basic"] / out["dualpath"]
    return out


def over_seeds(fn: Callable[[int], tuple[float, float]], seeds: Sequence[int]):
    """(:class:`~dpsim.analysis.stats.Interval` of ``fn(seed)[0]`` over ``seeds``, total wall s)."""
    from .stats import mean_ci
    vals, wall = [], 0.0
    for sd in seeds:
        v, w = fn(sd)
        vals.append(v)
        wall += w
    return mean_ci(vals), wall


def ratios_over_seeds(agents: int, seeds: Sequence[int], mal: str = "64k", extra: Sequence[str] = (),
                      **kw) -> dict:
    """:func:`ratio_basic_dualpath` at each seed: ``ratio`` (Basic/DualPath JCT, per seed, then
    its mean and interval), ``basic``/``dualpath`` (JCT intervals), ``runs`` (the per-seed
    dicts), ``wall``."""
    from .stats import mean_ci
    runs = [ratio_basic_dualpath(agents, mal=mal, extra=extra, seed=sd, **kw) for sd in seeds]
    return {"ratio": mean_ci(r["ratio"] for r in runs), "basic": mean_ci(r["basic"] for r in runs),
            "dualpath": mean_ci(r["dualpath"] for r in runs), "runs": runs,
            "wall": sum(r["wall_basic"] + r["wall_dualpath"] for r in runs)}


# ---------------------------------------------------------------- §S7 storage-bound check
class _FastCompute:
    """A compute model so fast that storage is the bottleneck (for the §S7 read check)."""

    def __init__(self, n_layers=30, kvb=20000, hbm=40e9):
        self.n_layers = n_layers
        self.kv_bytes_per_token = kvb
        self.hbm_kv_bytes = hbm
        self.hbm_kv_bytes_prefill = hbm
        self.ep_bytes_per_token_layer = 0.0
        self.decode_ctx_cap = None
        # A dense model with no expert parallelism: no all-to-all traffic.
        self.n_moe_layers = 0
        self.ep_size_prefill = self.ep_size_decode = 1
        self.ep_cnic_bytes_per_token_layer_prefill = self.ep_cnic_bytes_per_token_layer_decode = 0.0

    def attn_work(self, c, n):
        return n * (c + n / 2)

    def prefill_time(self, n, w, r):
        return 1e-4 + n * 1e-7

    def attention_time_forward(self, n, w, r):
        return n * 1e-8

    def attention_time_layer(self, n, w, r):
        return n * 1e-8 / self.n_layers

    def decode_coeffs(self):
        return (1e-3, 1e-6, 0.0)


def storage_bound_read(P: int, D: int, agents: int = 384, rounds: int = 10, seed: int = 0) -> tuple[float, float, float]:
    """Aggregate steady-state SNIC read rate of a storage-bound DualPath run (tiny compute,
    30K-token contexts, short appends and outputs).  Returns (measured B/s, (P+D) x SNIC B/s,
    wall s)."""
    import numpy as np

    from ..drivers import OfflineDriver
    from ..sim import Simulation
    from ..workload.trajectory import Trajectory

    t0w = time.perf_counter()
    cfg = make_cfg("system=dualpath", f"cluster.prefill_nodes={P}", f"cluster.decode_nodes={D}",
                   "metrics.sample_dt=0.05")
    cfg.setdefault("output", {})["progress"] = False
    rng = np.random.default_rng(seed)
    trajs = []
    for i in range(agents):
        rs = [[int(rng.integers(50, 200)), int(rng.integers(2, 8)), 0] for _ in range(rounds)]
        rs[0][0] = 30000
        trajs.append(Trajectory.from_rounds(f"t{i}", rs))
    sim = Simulation(cfg, trajs, _FastCompute())
    sim.driver = OfflineDriver(sim, {})
    sim.run()
    from .bound import steady_read_throughput
    got, _n = steady_read_throughput(sim)
    snic = cfg["cluster"]["snic_Bps"] * cfg["cluster"]["snic_efficiency"]
    from .bound import aggregate_read_bw
    return float(got), aggregate_read_bw(P, D, snic, "dualpath"), time.perf_counter() - t0w


# ====================================================================== the report
@dataclass
class Report:
    rows: list = field(default_factory=list)
    claims: list = field(default_factory=list)  # {"claim", "detail", "pass"}
    log: Callable = print

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.log(_fmt_row(row))

    def claim(self, name: str, ok: bool, detail: str) -> None:
        self.claims.append({"claim": name, "detail": detail, "pass": bool(ok)})
        self.log(f"  [{'PASS' if ok else 'FAIL'}] {name}: {detail}")


def _fmt_num(v: float | None, unit: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if unit == "s" and abs(v) < 1:
        return f"{v * 1e3:.2f} ms"
    if unit == "x":
        return f"{v:.3f}x"
    if abs(v) >= 1000:
        return f"{v:,.0f}" + (f" {unit}" if unit not in ("", "x") else "")
    return f"{v:.4g}" + (f" {unit}" if unit else "")


def _fmt_ci(r: dict) -> str:
    """``[lo, hi] n=N`` (the 95% interval over seeds), ``n=1`` or ``""`` (no random input)."""
    n = r.get("n_seeds", 0)
    if not n:
        return ""
    if n < 2 or not math.isfinite(r.get("ci_lo", math.nan)):
        return f"n={n}"
    return f"[{_fmt_num(r['ci_lo'], r['unit'])}, {_fmt_num(r['ci_hi'], r['unit'])}] n={n}"


def _fmt_row(r: dict) -> str:
    ok = "-" if r["pass"] is None else ("pass" if r["pass"] else "FAIL")
    err = "-" if not math.isfinite(r["rel_err"]) else f"{100 * r['rel_err']:+.1f}%"
    note = f"  ({r['note']})" if r["note"] else ""
    return (f"  {r['group']:<3} {r['point']:<62} sim {_fmt_num(r['sim'], r['unit']):>14} {_fmt_ci(r):<30} "
            f"paper {_fmt_num(r['paper'], r['unit']):>14}  {err:>7}  {ok}{note}")


def write_outputs(rep: Report, out: Path, title: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    # CSV
    p = out / "report.csv"
    with p.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "point", "sim", "paper", "unit", "rel_err", "pass", "note", "wall_s",
                    "ci_lo", "ci_hi", "n_seeds"])
        for r in rep.rows:
            ci = [f"{r[k]:.6g}" if math.isfinite(r.get(k, math.nan)) else "" for k in ("ci_lo", "ci_hi")]
            w.writerow([r["group"], r["point"], f"{r['sim']:.6g}",
                        "" if r["paper"] is None else f"{r['paper']:.6g}", r["unit"],
                        "" if not math.isfinite(r["rel_err"]) else f"{r['rel_err']:.5f}",
                        "" if r["pass"] is None else ("pass" if r["pass"] else "fail"), r["note"],
                        f"{r['wall_s']:.1f}", *ci, r.get("n_seeds", 0)])
        for c in rep.claims:
            w.writerow(["claim", c["claim"], "", "", "", "", "pass" if c["pass"] else "fail",
                        c["detail"], "", "", "", ""])
    files.append(p)
    # Markdown
    p = out / "report.md"
    from .stats import INTERVAL
    ns = sorted({r.get("n_seeds", 0) for r in rep.rows} - {0})
    lines = [f"# {title}", "",
             f"Simulated points: the mean over {'/'.join(map(str, ns)) or 'no'} seeds and its {INTERVAL}: "
             f"mean +- t(0.975, n-1) s / sqrt(n).  Compute-model rows have no random input (no interval).  "
             f"Pass/fail: the mean within {TOL:.0%} of the paper.", "",
             "| group | point | simulated (mean) | 95% CI | seeds | paper | rel. error | 10% |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rep.rows:
        err = "-" if not math.isfinite(r["rel_err"]) else f"{100 * r['rel_err']:+.1f}%"
        ok = "-" if r["pass"] is None else ("pass" if r["pass"] else "**fail**")
        note = f" ({r['note']})" if r["note"] else ""
        ci = (f"[{_fmt_num(r['ci_lo'], r['unit'])}, {_fmt_num(r['ci_hi'], r['unit'])}]"
              if math.isfinite(r.get("ci_lo", math.nan)) else "-")
        lines.append(f"| {r['group']} | {r['point']}{note} | {_fmt_num(r['sim'], r['unit'])} | {ci} | "
                     f"{r.get('n_seeds', 0) or '-'} | {_fmt_num(r['paper'], r['unit'])} | {err} | {ok} |")
    lines += ["", "## Qualitative claims", "", "| claim | result | detail |", "|---|---|---|"]
    for c in rep.claims:
        lines.append(f"| {c['claim']} | {'pass' if c['pass'] else '**fail**'} | {c['detail']} |")
    n_ok = sum(1 for r in rep.rows if r["pass"])
    n_q = sum(1 for r in rep.rows if r["pass"] is not None)
    lines += ["", f"{n_ok}/{n_q} calibration points within {TOL:.0%}; "
              f"{sum(c['pass'] for c in rep.claims)}/{len(rep.claims)} claims hold.", ""]
    p.write_text("\n".join(lines))
    files.append(p)
    # Figure: simulated / paper per point, one horizontal bar each (full labels on the left)
    try:
        from ..metrics.outputs import new_figure
        rows = [r for r in rep.rows if r["paper"] is not None and math.isfinite(r["sim"])]
        fig = new_figure(figsize=(10, 1.2 + 0.32 * len(rows)), layout="constrained")
        ax = fig.subplots()
        ys = list(range(len(rows)))[::-1]
        ratio = [r["sim"] / r["paper"] for r in rows]
        colors = ["tab:blue" if r["pass"] else "tab:red" for r in rows]
        xerr = [[max(0.0, (r["sim"] - r["ci_lo"]) / r["paper"]) if math.isfinite(r.get("ci_lo", math.nan)) else 0.0
                 for r in rows],
                [max(0.0, (r["ci_hi"] - r["sim"]) / r["paper"]) if math.isfinite(r.get("ci_hi", math.nan)) else 0.0
                 for r in rows]]
        ax.barh(ys, ratio, 0.6, color=colors, xerr=xerr, capsize=2)
        ax.axvspan(1 - TOL, 1 + TOL, color="tab:green", alpha=0.15)
        ax.axvline(1.0, color="0.3", lw=1)
        ax.set_yticks(ys)
        ax.set_yticklabels([f"{r['group']}: {r['point']}" for r in rows], fontsize=7)
        ax.set_xlabel(f"simulated / paper (1 = the paper; green band = within {TOL:.0%}; red bar = outside)\n"
                      f"error bars: {INTERVAL}")
        ax.set_title(title)
        p = out / "report.png"
        fig.savefig(p, dpi=110)
        files.append(p)
    except Exception as e:  # pragma: no cover - plotting is optional
        print(f"validate: figure skipped ({type(e).__name__}: {e})", file=sys.stderr)
    return files


def _ivs(iv, unit: str = "x", nd: int = 3) -> str:
    """``1.234x [1.2x, 1.3x]`` (the 95% interval over seeds; none with one seed)."""
    f = (lambda v: f"{v:.{nd}f}x") if unit == "x" else (lambda v: f"{v:.0f} s")
    return f(iv.mean) + (f" [{f(iv.lo)}, {f(iv.hi)}]" if iv.n >= 2 else "")


def validate(quick: bool = False, extra: Sequence[str] = (), log: Callable = print,
             seeds: int | None = None) -> Report:
    """Every point over ``seeds`` seeds (0..seeds-1; None: :data:`SEEDS`, quick :data:`QUICK_SEEDS`)."""
    from .stats import INTERVAL, mean_ci

    rep = Report(log=log)
    tq = " [quick]" if quick else ""
    n_seeds = int(seeds if seeds is not None else (QUICK_SEEDS if quick else SEEDS))
    if n_seeds < 1:
        raise ValueError(f"seeds: expected an integer >= 1, got {seeds!r}")
    sds = list(range(n_seeds))
    log(f"every simulated point: mean over seeds {sds} and its {INTERVAL}"
        + ("" if n_seeds >= 2 else " -- one seed: no interval"))

    # ---------------------------------------------------------------- C1
    log(f"C1: Oracle offline JCT{tq}")
    for p in C1_POINTS:
        if quick and p.agents != QUICK_AGENTS[p.model]:
            continue
        iv, wall = over_seeds(lambda sd: run_jct(scenario_cfg(p.model, p.P, p.D, p.mal, p.agents, extra=extra,
                                                              seed=sd)), sds)
        rep.add(_row("C1", f"Oracle JCT {p.name}", iv, p.paper_jct_s, "s", wall=wall))

    # ---------------------------------------------------------------- C2
    log("C2: compute model vs published rates (no random input: no interval)")
    for r in c2_compute_rows():
        rep.add(r)
    log("C2: low-load TPOT, 1-agent offline simulation (DualPath, 64K)")
    for m, (P, D, want) in TPOT_LOW_LOAD.items():
        iv, wall = over_seeds(lambda sd: tpot_low_load_sim(m, P, D, extra=extra, seed=sd), sds)
        rep.add(_row("C2", f"low-load TPOT, 1-agent sim [{m} {P}P{D}D]", iv, want, "s", wall=wall))

    # ---------------------------------------------------------------- fixed costs (#11 item 4)
    from .fixed_costs import decompose
    log("Fixed costs: one agent on an idle cluster, its TTFT/TTST/TPOT in closed-form parts (docs/fixed_costs.md)")
    for m in ("ds27b", "ds660b"):
        d = decompose(m, extra=extra)
        for line in d.table().splitlines()[1:]:
            log("    " + line)
        for w in ("ttft", "ttst", "tpot"):
            rep.add(_row("FC", f"single-agent {w.upper()}, sum of parts [{m} {d.P}P{d.D}D]", d.total(w), None, "s",
                         note=f"simulated {1e3 * d.sim[w + '_s']:.4f} ms, residual {d.residual(w):+.1e} s"))
        rep.claim(f"fixed costs: the parts add up to the simulated TTFT/TTST/TPOT [{m}]", d.ok(),
                  ", ".join(f"{w.upper()} residual {d.residual(w):+.1e} s" for w in ("ttft", "ttst", "tpot")))

    h = dict(HEADLINE)
    n_head = QUICK_HEADLINE_AGENTS if quick else h["agents"]
    log(f"C2: DualPath/Basic offline throughput, ds660b 2P4D 64K, {n_head} agents{tq}")
    big = ratios_over_seeds(n_head, sds, extra=extra)
    rep.add(_row("C2", f"DualPath/Basic throughput ds660b 2P4D 64K {n_head} agents", big["ratio"],
                 HEADLINE_RATIO, "x", note="quick: not the paper's 4096 agents" if quick else
                 f"JCT basic {_ivs(big['basic'], 's')}, dualpath {_ivs(big['dualpath'], 's')}",
                 wall=big["wall"]))

    # ---------------------------------------------------------------- qualitative
    log("Qualitative claims (on the means over seeds; 95% intervals in brackets)")
    n_small = QUICK_SMALL_AGENTS if quick else 512
    n_mid = n_head if quick else 2048
    small = ratios_over_seeds(n_small, sds, extra=extra)
    mid = big if n_mid == n_head else ratios_over_seeds(n_mid, sds, extra=extra)
    seq = [(n_small, small["ratio"]), (n_mid, mid["ratio"])]
    if n_mid != n_head:
        seq.append((n_head, big["ratio"]))
    grows = all(b[1].mean > a[1].mean for a, b in zip(seq, seq[1:]))
    rep.claim("(a) DualPath/Basic gain grows with the number of agents (ds660b 2P4D 64K)", grows,
              ", ".join(f"{n} agents: {_ivs(r)}" for n, r in seq))
    mal_lo = ratios_over_seeds(n_mid, sds, mal="32k", extra=extra)
    rep.claim("(a) DualPath/Basic gain grows with the MAL (ds660b 2P4D)", mid["ratio"].mean > mal_lo["ratio"].mean,
              f"{n_mid} agents: 32K {_ivs(mal_lo['ratio'])} vs 64K {_ivs(mid['ratio'])}")
    orc = [run_jct(scenario_cfg("ds660b", 2, 4, "64k", n_head, system="oracle", extra=extra, seed=sd))[0]
           for sd in sds]
    gaps = mean_ci(r["dualpath"] / o - 1.0 for r, o in zip(big["runs"], orc))  # paired per seed
    gap = gaps.mean
    rep.claim(f"(b) DualPath within 15% of Oracle (ds660b 2P4D 64K {n_head} agents)", abs(gap) <= 0.15,
              f"DualPath {big['dualpath'].mean:.0f} s vs Oracle {mean_ci(orc).mean:.0f} s ({100 * gap:+.1f}%)"
              + (f"; gap per seed, 95% CI [{100 * gaps.lo:+.1f}%, {100 * gaps.hi:+.1f}%]" if gaps.n >= 2 else "")
              + ("; note: DualPath is faster than Oracle, which should be an upper bound" if gap < -0.01 else ""))
    from .bound import pd_range
    b = pd_range(8, 1, 500e9, 50e9)
    rep.claim("(c) §S7 closed form: g=8, s=1, M=500 GB/s, B=50 GB/s gives 1/7 <= P/D <= 7/2",
              math.isclose(b.lo, 1 / 7, rel_tol=1e-9) and math.isclose(b.hi, 7 / 2, rel_tol=1e-9),
              f"lo={b.lo:.4f} (1/7={1 / 7:.4f}), hi={b.hi:.4f} (7/2=3.5)")
    P, D = 1, 2
    reads = [storage_bound_read(P, D, agents=128 if quick else 384, seed=sd) for sd in sds]
    want = reads[0][1]
    got = mean_ci(r[0] for r in reads)
    inside = b.contains(P / D)
    err = got.mean / want - 1.0
    rep.claim(f"(c) storage-bound DualPath sim at P/D={P}/{D} (inside the range) reads at (P+D) x SNIC",
              inside and abs(err) <= 0.05,
              f"{got.mean / 1e9:.1f} GB/s vs (P+D) x SNIC = {want / 1e9:.1f} GB/s ({100 * err:+.1f}%)"
              + (f"; 95% CI [{got.lo / 1e9:.1f}, {got.hi / 1e9:.1f}] GB/s" if got.n >= 2 else ""))
    return rep


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dpsim validate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"small agent counts and {QUICK_SEEDS} seeds (a smoke test, a few minutes)")
    ap.add_argument("--seeds", type=int, default=None, metavar="N",
                    help=f"replicates per simulated point: seeds 0..N-1 (default {SEEDS}; --quick {QUICK_SEEDS}); "
                         "each row shows the mean and its 95%% Student t interval over the seeds")
    ap.add_argument("--out", type=Path, default=None, help="write report.md, report.csv, report.png here")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="extra Hydra override for every simulation (repeatable)")
    ap.add_argument("--sensitivity", action="store_true",
                    help="after the report, the §S10 sensitivity tornado (dpsim sensitivity, same --quick/--seeds; "
                         "its files under OUT/sensitivity with --out)")
    from .sensitivity import add_arguments as _sens_args
    _sens_args(ap.add_argument_group("with --sensitivity"), standalone=False)
    args = ap.parse_args(list(argv) if argv is not None else None)
    bad = check_sets(args.sets)
    if args.seeds is not None and args.seeds < 1:
        bad = f"--seeds {args.seeds}: expected an integer >= 1 (replicates per point)"
    if not args.sensitivity and not bad and (args.agents, args.qwen_agents, args.only) != (None, None, None):
        bad = "--agents / --qwen-agents / --only set the sensitivity sweep: add --sensitivity"
    if args.sensitivity and not bad:  # a bad --only / --agents fails now, not after the report
        from .sensitivity import pick
        try:
            pick(args.only)
            for what, v in (("--agents", args.agents), ("--qwen-agents", args.qwen_agents)):
                if v is not None and v < 1:
                    raise ValueError(f"{what} {v}: expected an integer >= 1")
        except ValueError as e:
            bad = str(e)
    if bad:
        print(f"dpsim validate: error: {bad}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    title = "dpsim validation" + (" (quick)" if args.quick else "")
    print(title)
    rep = validate(quick=args.quick, extra=args.sets, seeds=args.seeds)
    n_ok = sum(1 for r in rep.rows if r["pass"])
    n_q = sum(1 for r in rep.rows if r["pass"] is not None)
    print(f"\n{n_ok}/{n_q} calibration points within {TOL:.0%}; "
          f"{sum(c['pass'] for c in rep.claims)}/{len(rep.claims)} qualitative claims hold "
          f"({time.perf_counter() - t0:.0f} s)")
    if args.out is not None:
        try:
            for f in write_outputs(rep, args.out, title):
                print(f"  wrote {f}")
        except OSError as e:
            print(f"dpsim validate: error: --out {args.out}: cannot write ({e.strerror or e}); "
                  f"choose another directory", file=sys.stderr)
            return 2
    if args.sensitivity:  # opt-in: the tornado costs ~15x the simulations of one point (docs/sensitivity.md)
        from .sensitivity import run as sensitivity_run
        print("\n§S10 sensitivity (dpsim sensitivity)")
        rc = sensitivity_run(args.quick, args.seeds, args.agents, args.qwen_agents, args.only,
                             None if args.out is None else args.out / "sensitivity", jobs=args.jobs)
        if rc:
            return rc
    failed = [r["point"] for r in rep.rows if r["pass"] is False] + \
        [c["claim"] for c in rep.claims if not c["pass"]]
    if failed:
        print(f"dpsim validate: {len(failed)} failing: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


def check_sets(sets: Sequence[str]) -> str | None:
    """One line naming a bad ``--set`` and the fix, or None (each composes with the config)."""
    for s in sets:
        k, eq, _v = s.partition("=")
        if not eq or not k.strip():
            return f"--set {s!r}: expected KEY=VALUE (e.g. --set cluster.snic_efficiency=0.7)"
        if k.strip().lstrip("+~") in ("seed", "workload.seed"):
            return (f"--set {s!r}: the replicates set the seed (seeds 0..N-1); choose how many with --seeds N "
                    f"(a fixed {k.strip()} would make every replicate the same run)")
    if not sets:
        return None
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from ..cli import _one_line
    try:
        make_cfg(*sets)
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        return f"--set: {_one_line(e)}"
    return None


if __name__ == "__main__":
    sys.exit(main())
