"""Fit the compute model's free knobs to the C1 Oracle job completion times.

    python -m dpsim.calibration.fit_c1              # fit, print the C1 + C2 residual table, save the report
    python -m dpsim.calibration.fit_c1 --write      # ... and write the values into conf/model/*.yaml
    python -m dpsim.calibration.fit_c1 --quick      # only the 512/128-agent points (a check, ~1 min)
    python -m dpsim.calibration.fit_c1 --check      # no fit: the table for the values in the YAML files

C1 (shared/spec/calibration-points.md): Oracle offline JCTs -- all I/O free, so they fix the
compute model.  Each point is ``dpsim.runner.run`` of ``experiment=offline system=oracle`` with
the model, P/D, MAL and agent count of the paper's Fig. 7.  C2 (motivation curve, DeepSeek's
public V3 rates, low-load TPOT) must stay within ~10%: after every change of the C1 knobs the
C2 knobs are refitted exactly as calibration/fit_compute_c2.py does (its ``fit_prefill`` and
``fit_decode``, shared by the three models), so C2 stays at its own optimum.

Which knobs, and why (what the C1 shapes say, from diagnostic runs of the unfitted model):

* **DS 27B was ~2-3x too fast and is decode-bound.**  Its DEs are always busy and, from 2048
  agents on, HBM-full (~100 sequences per GPU); its PEs are half idle.  The paper's 512-agent
  JCT is the longest agent's chain (~34K generated tokens): it needs ~25-30 ms per decode step
  at ~40 sequences per GPU, where C2 says 10 ms at one sequence.  So a step grows by ~0.4 ms per
  sequence of ~33K context, ~10x the roofline's per-sequence cost (GEMMs, sparse attention
  over the top-k keys, the indexer reading its keys).  A per-sequence cost of that size is
  ruled out for the big DeepSeek models by C2 (V3 decodes ~92 sequences per GPU in a 50 ms
  step: <= ~0.3 ms per sequence all included), but V3 has no DSA.  What grows with the context
  only in DSA models is the lightning indexer: in decode each sequence brings one query row per
  layer whose scores over the whole context are materialised and top-k selected -- long, thin,
  latency-bound reductions, not the bandwidth-bound kernel the roofline assumes.  Knob:
  ``decode_idx_key_layer_s`` (new term in compute.py), a fixed cost per context key per layer
  per decode step for DSA models, shared by DS 660B and DS 27B (same kernels, same hardware).
  It leaves V3 (C2 b2) alone; the 1-sequence TPOTs (C2 c) are held by the decode refit.
* **DS 660B was 10-20% too fast and is prefill-bound at scale** (PEs ~93% busy from 2048
  agents on, TTFT of tens of seconds, DEs at ~9 sequences per GPU).  Its prefill forwards are
  small: the §S6 300 ms attention quota admits ~2-4 requests of 30K context (~700 new tokens),
  below the ~2K-token GEMM floor.  For such forwards the C2 motivation curve pins the cost of a
  forward to ~3x the marginal cost of one request (the curve saturates at 3.01x), and the
  marginal cost is GEMM (pinned by C2 b1) plus DSA attention + indexer.  So the one prefill
  quantity C1 can set without breaking C2 is the DSA attention cost: knob ``a``, a common
  factor on ``attn_prefill_eff`` (FlashMLA sparse prefill, base 0.647 = 640/989 TFLOPS) and
  ``indexer_eff`` (DeepGEMM FP8 MQA logits, base 0.5), shared by the DeepSeek models.  The V3
  variant of C2 b1 has its own dense attention efficiency and no indexer, so b1 is unchanged.
  (A per-layer or per-forward overhead instead breaks the motivation curve: a 2.7 ms/layer
  overhead that fits the 512-agent points lifts its 20-request ratio to 4.0x.)
  DS 660B's 512-agent point is the longest agent's chain (~60% of it decode), which
  ``decode_idx_key_layer_s`` also moves.
* **Qwen 32B** (dense, DP only, 256 KiB/token KV).  With BF16 weights its C1 cannot be met at
  all: ~18 GB of HBM per GPU for KV = 3-4 sequences of the 32K dataset, so decode is HBM-bound
  and even at the 2 GiB reserve floor the JCTs come out +18% / +37% / +98% (with the §S2 320 GB
  host buffers; an earlier version had left Qwen at the DeepSeek 80 GB and was worse).  The
  weight precision is not stated (§S9 gives only the FP16 KV); the framework's GEMM library is
  DeepGEMM (FP8), so Qwen's linear weights are FP8 (a documented assumption in qwen32b.yaml):
  ~49 GB for KV per GPU.  Then Qwen is *too fast* at low load (the longest agent's chain of
  ~60-190 turns: TTFT + ~90 tokens x TPOT) and about right at 512 agents.  Nothing of C2 pins
  a dense model's per-step costs, so two Qwen-only knobs are fitted to its three points:
  ``decode_fwd_overhead_s`` (fixed per decode step) and ``prefill_fwd_overhead_s`` (fixed per
  prefill forward) -- both raise the per-turn latency the low-load chain is made of, and the
  prefill one is amortised by the bigger batches of high load.  Search: a grid, then a finer
  grid around its best, minimising the worst |sim/paper - 1| (the acceptance is "each point
  within 10%"), ties broken by the sum of squared log residuals.  Qwen's prefill floor and system factors are
  the DeepSeek C2 values (tests/engines pins them shared).

Fit: ``a`` (shared) and each DeepSeek model's ``decode_idx_key_layer_s`` (``k_ds660b``,
``k_ds27b``: the two indexers differ, 64 heads x 128 vs 32 x 64, so one constant per key need not
fit both -- with one shared value DS 660B's 512-agent chain came out 13% short) by Gauss-Newton in
log space on the eight DS points, stepping on sum |log residual|^8 (iteratively reweighted) and
accepting a step only if it lowers the worst point ("each within 10%" is the acceptance), finite-difference Jacobian, Broyden
updates, ``--steps`` steps (default 1), starting from the values in the YAML files -- the previous
fit -- or, with ``--fresh`` or none there, from a = 0.86, 0.41 ns; then every C1 point once at the
result; Qwen's two overheads by the grid above on its three cheap points.  ``--jobs N`` runs
independent simulations in N processes.
Simulation results are cached in
``calibration/reports/c1/cache.json`` keyed by the values, the point and a hash of the
simulator's sources, its non-model configs and the point's own model YAML (without the values
this script sets), so a ``--write`` or a change to another model keeps the cache.  The report goes to ``calibration/reports/c1/c1_fit.{md,csv}``.
"""
from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from . import fit_compute_c2 as C2
from dpsim.analysis.validate import C1_POINTS, QUICK_AGENTS, C1Point, c2_compute_rows, run_jct, scenario_cfg

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "dpsim" / "conf"
REPORTS = ROOT / "calibration" / "reports" / "c1"
CACHE = REPORTS / "cache.json"
FIT_COMMENT = "# fitted to C1 by calibration/fit_c1.py"
C2_COMMENT = "# fitted to C2 by calibration/fit_compute_c2.py (refitted by calibration/fit_c1.py with the C1 knobs)"

MODELS = ("ds660b", "ds27b", "qwen32b")
DS_MODELS = ("ds660b", "ds27b")
# DSA prefill attention efficiencies before the C1 factor (documented assumptions, see the YAML):
ATTN_BASE = {"attn_prefill_eff": 0.647, "indexer_eff": 0.5}
# Gauss-Newton start, bounds (see the module docstring).
# k_<model> = that model's decode_idx_key_layer_s (the indexers differ: 64 heads x 128 vs 32 x 64).
DS_START = {"a": 0.86, "k_ds660b": 0.41e-9, "k_ds27b": 0.41e-9}  # used when the YAML has no C1 values yet
DS_BOUNDS = {"a": (0.2, 1.5), "k_ds660b": (1e-12, 5e-9), "k_ds27b": (1e-12, 5e-9)}
# Table mode (model YAMLs set compute_tables; docs/compute_tables.md): a = prefill_attn_level
# (shared by the DeepSeek models: paper's DSA prefill attention + indexer time / the measured
# one), k_<model> = that model's decode_idx_level (paper's decode indexer time / the measured one,
# on top of decode_level; the C1 analogue of decode_idx_key_layer_s, which stays 0).
TABLES = C2.TABLES
if TABLES:
    # per model: the torch kernels' efficiency relative to the paper's differs between DS 660B
    # (128 heads, 64 x 128 indexer) and DS 27B (32 heads, 32 x 64): on the H100 tables the
    # analytic model's C1-fitted DSA attention is 2.9x faster than the measured one for DS 660B
    # but 6.9x for DS 27B, so one shared level cannot reproduce both.
    DS_START = {"a_ds660b": 1.0, "a_ds27b": 1.0, "k_ds660b": 1.0, "k_ds27b": 1.0}
    DS_BOUNDS = {"a_ds660b": (0.02, 50.0), "a_ds27b": (0.02, 50.0), "k_ds660b": (0.01, 500.0), "k_ds27b": (0.01, 500.0)}
A_KEY = "prefill_attn_level" if TABLES else "attn_prefill_eff"
K_KEY = "decode_idx_level" if TABLES else "decode_idx_key_layer_s"
LP_NORM = 8  # the DS fit minimises sum |log residual|^p: p = 8 is close to the worst point (the acceptance)
FIT_AGENTS = (512, 1024, 2048, 4096)  # DS points in the Gauss-Newton loss
QWEN_KNOBS = ("decode_fwd_overhead_s", "prefill_fwd_overhead_s")  # fitted on Qwen's C1 points only
QWEN_GRID = {"decode_fwd_overhead_s": [0.004 * i for i in range(0, 9)],   # 0 .. 32 ms
             "prefill_fwd_overhead_s": [0.05 * i for i in range(0, 9)]}   # 0 .. 400 ms
C2_PREFILL = C2.PREFILL_KNOBS  # shared by all three models
C2_DECODE = C2.DECODE_KNOBS  # (decode_sys_eff | decode_level, decode_ep_layer_latency_s); ep latency: DeepSeek models only
NOTES = {
    "attn_prefill_eff": "DSA sparse prefill attention efficiency = {a:.4g} x 0.647 (FlashMLA 640 TFLOPS / 989.4); C1 factor a on the DSA prefill attention cost",
    "indexer_eff": "DSA lightning-indexer efficiency = {a:.4g} x 0.5 (DeepGEMM FP8 MQA logits at half the FP8 peak); same C1 factor a",
    "decode_idx_key_layer_s": "DSA decode: per context key per layer per step beyond the indexer roofline (score materialisation + top-k select); per model",
    "decode_fwd_overhead_s": "Qwen only: fixed cost per decode step (launch, scheduling, sampling of a dense DP replica); no C2 point covers Qwen",
    "prefill_fwd_overhead_s": "Qwen only: fixed cost per prefill forward; no C2 point covers Qwen",
    "prefill_sys_eff": "system factor on all prefill compute efficiencies (b1)",
    "prefill_sat_tokens": "GEMM floor: new tokens/forward below which a forward costs the same (a)",
    "prefill_sat_sharpness": "p of the smooth max between the floor and the per-token GEMM time (a)",
    "decode_sys_eff": "system factor on decode compute efficiencies (b2)",
    "decode_ep_layer_latency_s": "EP dispatch+combine latency per MoE layer per decode step (c)",
    "prefill_level": "level: paper's prefill GEMM + LM head time / the measured tables' (b1)",
    "decode_level": "level: paper's decode step time / the measured tables' (b2, c)",
    "prefill_attn_level": "level: paper's DSA prefill attention + indexer time / the measured tables' (C1 factor a; per model)",
    "decode_idx_level": "level: paper's DSA decode indexer time / the measured tables', on top of decode_level; per model",
}


# ====================================================================== the knob sets
def load_models() -> dict:
    return {n: yaml.safe_load((CONF / "model" / f"{n}.yaml").read_text()) for n in MODELS}


_DERIVED: dict = {}


def _as(v: dict):
    """The prefill attention factor(s) of a knob vector: {model: a} in table mode, else the shared a."""
    return {n: v[f"a_{n}"] for n in DS_MODELS} if TABLES else v["a"]


def derive(a: float | dict, k: float | dict, qwen: dict | None = None) -> dict:
    """Per-model overrides for C1 factor ``a`` and indexer cost ``k``, with the C2 knobs refitted
    (fit_compute_c2.fit_prefill / fit_decode on the models carrying a and k).  Returns
    {model: {"knobs.<name>" or top-level key: value}}.  ``k``: one value for both DeepSeek models
    or {model: value}."""
    ks = {n: float(k[n] if isinstance(k, dict) else k) for n in DS_MODELS}
    as_ = {n: float(a[n] if isinstance(a, dict) else a) for n in DS_MODELS}
    key = tuple(round(as_[n], 12) for n in DS_MODELS) + tuple(float(f"{ks[n]:.12g}") for n in DS_MODELS)
    if key not in _DERIVED:
        models = load_models()
        gpu = C2.load("gpu", "h800")
        for n in DS_MODELS:
            if TABLES:
                models[n]["knobs"].update(prefill_attn_level=as_[n], decode_idx_level=ks[n])
            else:
                models[n]["knobs"].update(attn_prefill_eff=ATTN_BASE["attn_prefill_eff"] * as_[n],
                                          indexer_eff=ATTN_BASE["indexer_eff"] * as_[n], decode_idx_key_layer_s=ks[n])
        models["v3"] = C2.v3_variant(models["ds660b"])
        pk, _ = C2.fit_prefill(models, gpu, "ds660b", 4096.0)
        dk, _ = C2.fit_decode(models, gpu, 4096.0)
        out = {}
        for n in MODELS:
            s = {f"knobs.{kk}": float(v) for kk, v in pk.items()}
            s[f"knobs.{C2_DECODE[0]}"] = float(dk[C2_DECODE[0]])
            if TABLES and n == "qwen32b":
                # table mode: Qwen keeps its own levels (YAML: 1.0, its GEMM and flash-attention
                # tables at face value).  DeepSeek's levels absorb torch's per-expert MoE loop vs
                # DeepGEMM's grouped GEMMs (decode_level < 1 prices Qwen's memory-bound decode
                # faster than HBM allows); only the floor (in tokens) is shared
                s.pop("knobs.prefill_level")
                s.pop("knobs.decode_level")
            if n in DS_MODELS:
                s["knobs.decode_ep_layer_latency_s"] = float(dk["decode_ep_layer_latency_s"])
                if TABLES:
                    s["knobs.prefill_attn_level"] = as_[n]
                    s["knobs.decode_idx_level"] = ks[n]
                else:
                    s["knobs.attn_prefill_eff"] = ATTN_BASE["attn_prefill_eff"] * as_[n]
                    s["knobs.indexer_eff"] = ATTN_BASE["indexer_eff"] * as_[n]
                    s["knobs.decode_idx_key_layer_s"] = ks[n]
            out[n] = s
        _DERIVED[key] = out
    out = copy.deepcopy(_DERIVED[key])
    for kk, v in (qwen or {}).items():
        out["qwen32b"][f"knobs.{kk}"] = float(v)
    return out


def apply_sets(models: dict, sets: dict) -> dict:
    ms = copy.deepcopy(models)
    for n, s in sets.items():
        for k, v in s.items():
            if k.startswith("knobs."):
                ms[n]["knobs"][k[6:]] = v
            else:
                ms[n][k] = v
    return ms


# ====================================================================== simulation cache
FITTED_KEYS = set(C2_PREFILL + C2_DECODE) | {"attn_prefill_eff", "indexer_eff", "decode_idx_key_layer_s",
                                              "prefill_attn_level", "decode_idx_level"}


def _source_hash(model: str) -> str:
    """Hash of the simulator's sources, its non-model configs and ``model``'s YAML.  The model
    YAML is hashed as parsed data without the values this script sets (every simulation passes
    them explicitly), so writing the fit -- or editing another model -- keeps the cache."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "dpsim").rglob("*")):
        if not (p.is_file() and p.suffix in (".py", ".yaml")) or "analysis" in p.parts:
            continue
        if p.parent == CONF / "model":
            if p.stem != model:
                continue
            h.update(str(p.relative_to(ROOT)).encode())
            d = yaml.safe_load(p.read_text())
            fitted = FITTED_KEYS | (set(QWEN_KNOBS) if model == "qwen32b" else set())
            d["knobs"] = {k: v for k, v in d["knobs"].items() if k not in fitted}
            h.update(json.dumps(d, sort_keys=True).encode())
            if d.get("compute_tables"):  # table mode: the measured tables are inputs too
                from dpsim.engines.compute_tables import resolve_dir
                td = resolve_dir(d["compute_tables"])
                for f in sorted(td.iterdir()):
                    if f.suffix in (".csv", ".json"):
                        h.update(f.name.encode())
                        h.update(f.read_bytes())
        else:
            h.update(str(p.relative_to(ROOT)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _run_point(p: C1Point, mset: dict, extra: Sequence[str]) -> tuple[float, float]:
    return run_jct(scenario_cfg(p.model, p.P, p.D, p.mal, p.agents, extra=list(extra), model_set=mset))


class Sims:
    """Runs C1 points with model overrides; caches JCTs on disk."""

    def __init__(self, use_cache: bool = True, extra: Sequence[str] = (), verbose: bool = True, jobs: int = 1):
        self.jobs = jobs
        self.src = {m: _source_hash(m) for m in MODELS}
        self.extra = list(extra)
        self.verbose = verbose
        self.use_cache = use_cache
        self.db = {}
        if use_cache and CACHE.exists():
            try:
                self.db = json.loads(CACHE.read_text())
            except ValueError:
                self.db = {}
        self.n_runs = 0
        self.wall = 0.0

    def _key(self, p: C1Point, mset: dict) -> str:
        return json.dumps([self.src[p.model], p.key, self.extra, sorted((k, float(f"{v:.10g}")) for k, v in mset.items())])

    def prefetch(self, items: list[tuple[C1Point, dict]]) -> None:
        """Run the uncached (point, overrides) pairs in parallel (``self.jobs`` processes)."""
        todo = [(p, m) for p, m in items if self._key(p, m) not in self.db]
        if self.jobs <= 1 or len(todo) < 2:
            return
        from joblib import Parallel, delayed
        res = Parallel(n_jobs=self.jobs)(delayed(_run_point)(p, m, self.extra) for p, m in todo)
        for (p, m), (j, wall) in zip(todo, res):
            self._store(p, m, j, wall, "(parallel)")

    def _store(self, p: C1Point, mset: dict, j: float, wall: float, label: str) -> None:
        self.n_runs += 1
        self.wall += wall
        if self.verbose:
            print(f"    sim {p.name:<34} {label:<34} JCT {j:8.1f} s (paper {p.paper_jct_s:.0f}, "
                  f"{100 * (j / p.paper_jct_s - 1):+6.1f}%)  [{wall:.0f} s wall]", flush=True)
        self.db[self._key(p, mset)] = {"jct": j, "wall": wall}
        if self.use_cache:
            CACHE.parent.mkdir(parents=True, exist_ok=True)
            CACHE.write_text(json.dumps(self.db, indent=0))

    def jct(self, p: C1Point, mset: dict, label: str = "") -> float:
        k = self._key(p, mset)
        if k in self.db:
            return self.db[k]["jct"]
        j, wall = _run_point(p, mset, self.extra)
        self._store(p, mset, j, wall, label)
        return j


# ====================================================================== fits
def _ks(v: dict) -> dict:
    return {n: v[f"k_{n}"] for n in DS_MODELS}


JACOBIAN = REPORTS / "jacobian.json"  # the last fit's (Broyden-updated) Jacobian, for --reuse-jacobian


def fit_ds(sims: Sims, points: list[C1Point], start: dict, steps: int = 2, p_norm: int = LP_NORM,
           reuse_jacobian: bool = False) -> dict:
    """Gauss-Newton in log space of the knobs on r = log(sim/paper) over ``points``, minimising
    sum |r|^p (iteratively reweighted: row weights |r|^((p-2)/2)); Broyden Jacobian updates."""
    names = list(start)
    x = np.log([start[n] for n in names])
    lo = np.log([DS_BOUNDS[n][0] for n in names])
    hi = np.log([DS_BOUNDS[n][1] for n in names])

    def resid(xv):
        v = {n: float(math.exp(val)) for n, val in zip(names, xv)}
        sets = derive(_as(v), _ks(v))
        lab = " ".join(f"{n}={val:.4g}" for n, val in v.items())
        sims.prefetch([(p, sets[p.model]) for p in points])
        return np.array([math.log(sims.jct(p, sets[p.model], lab) / p.paper_jct_s) for p in points])

    def loss(r):  # a step must lower the worst relative error (the acceptance); the L_p sum breaks ties
        return (round(float(np.max(np.abs(np.expm1(r)))), 4), float(np.sum(np.abs(r) ** p_norm)))

    def show(tag, xv, r):
        vals = " ".join(f"{n}={math.exp(val):.5g}" for n, val in zip(names, xv))
        print(f"  {tag}: {vals}: rms log-residual {np.sqrt(np.mean(r ** 2)):.4f}, "
              f"worst {100 * np.max(np.abs(np.expm1(r))):.1f}%", flush=True)

    r = resid(x)
    show("start", x, r)
    J = None
    if reuse_jacobian and JACOBIAN.exists():
        d = json.loads(JACOBIAN.read_text())
        if d.get("names") == names and d.get("points") == [p.key for p in points]:
            J = np.array(d["J"])
            print("  Jacobian: reused from the last fit (calibration/reports/c1/jacobian.json)", flush=True)
    for it in range(steps):
        if np.max(np.abs(r)) < 0.02:
            break
        if J is None:
            J = np.zeros((len(points), len(names)))
            h = 0.15
            # per-model knobs (<kind>_<model>) are perturbed together with their kind's other
            # models' and credited to their own model's points only (block-diagonal Jacobian:
            # half the simulations; the coupling through the shared C2 refit is left to Broyden)
            groups: dict = {}
            for j, n in enumerate(names):
                kind, _, mod = n.partition("_")
                groups.setdefault(kind if mod in DS_MODELS else n, []).append(j)
            cols = []
            for g in groups.values():
                xp = x.copy()
                xp[g] += h
                cols.append((g, xp))
            for _, xp in cols:  # fetch every column's runs at once (parallel), then read them
                vv = {n: float(math.exp(val)) for n, val in zip(names, xp)}
                st = derive(_as(vv), _ks(vv))
                sims.prefetch([(p, st[p.model]) for p in points])
            for g, xp in cols:
                d = (resid(xp) - r) / h
                for j in g:
                    mod = names[j].partition("_")[2]
                    J[:, j] = d if len(g) == 1 else [d[i] if p.model == mod else 0.0 for i, p in enumerate(points)]
        w = np.sqrt(np.maximum(np.abs(r), 1e-3) ** (p_norm - 2))
        dx, *_ = np.linalg.lstsq(J * w[:, None], -r * w, rcond=None)
        dx = np.clip(dx, -0.3, 0.3)  # trust region: at most a factor 1.35 per knob per step
        accepted = False
        for damp in (1.0, 0.5, 0.25):
            xn = np.clip(x + damp * dx, lo, hi)
            rn = resid(xn)
            if loss(rn) < loss(r):
                s = xn - x
                J = J + np.outer((rn - r) - J @ s, s) / float(np.dot(s, s))  # Broyden
                x, r = xn, rn
                accepted = True
                break
        show(f"step {it + 1}" + ("" if accepted else " (no improvement: stop)"), x, r)
        if J is not None:
            JACOBIAN.parent.mkdir(parents=True, exist_ok=True)
            JACOBIAN.write_text(json.dumps({"names": names, "points": [p.key for p in points], "J": J.tolist()}))
        if not accepted:
            break
    return {n: float(math.exp(v)) for n, v in zip(names, x)}


def analytic_equivalent_start() -> dict:
    """Table mode: a start for (a, k_<model>) at which the tables reproduce the *analytic* model's
    C1-fitted costs (the analytic knobs stay in the YAML as the reference): ``a`` = the analytic
    DSA prefill attention time / the tables' (level 1), geometric mean over contexts 16K-64K x new
    tokens 256-4K, both DeepSeek models; ``k_<model>`` = the analytic decode cost per context key
    (t_tok: indexer + decode_idx_key_layer_s) / the tables' at decode_idx_level 1 with
    decode_level refitted to C2.  One Gauss-Newton step moves a knob by at most 1.35x, so a start
    near the answer saves simulations."""
    from dpsim.engines.compute import ComputeModel
    models = load_models()
    gpu = C2.load("gpu", "h800")
    a = {}
    for n in DS_MODELS:
        logs = []
        ma = copy.deepcopy(models[n])
        ma["compute_tables"] = None
        ca = ComputeModel(ma, gpu)
        ct = ComputeModel(models[n], gpu, dict(models[n]["knobs"], prefill_attn_level=1.0))
        for c in (16384, 32768, 65536):
            for nn in (256, 1024, 4096):
                logs.append(math.log(ca.attention_time_forward(nn, ca.attn_work(c, nn), 1)
                                     / ct.attention_time_forward(nn, ct.attn_work(c, nn), 1)))
        a[n] = float(math.exp(sum(logs) / len(logs)))
    sets = derive(a, {n: 1.0 for n in DS_MODELS})
    out = {f"a_{n}": a[n] for n in DS_MODELS}
    for n in DS_MODELS:
        ma = copy.deepcopy(models[n])
        ma["compute_tables"] = None
        ca = ComputeModel(ma, gpu)
        mt = apply_sets(models, sets)[n]
        ct = ComputeModel(mt, gpu)
        out[f"k_{n}"] = float(ca.decode_coeffs()[2] / ct.decode_coeffs()[2])
    return out


def fit_qwen(sims: Sims, points: list[C1Point], a: float, k: float, around: dict | None = None) -> dict:
    """Qwen's two overheads: a grid, then a grid of half the step around its best; minimise the
    worst |log residual| over ``points``, ties broken by the sum of squares.  ``around``: start
    from the 3 x 3 part of the grid around these values instead of the whole grid (cheaper)."""
    def loss(vals: dict) -> tuple[float, float]:
        ms = derive(a, k, qwen=vals)["qwen32b"]
        lab = " ".join(f"{n[:7]}={v * 1e3:.1f}ms" for n, v in vals.items())
        r = [math.log(sims.jct(p, ms, lab) / p.paper_jct_s) for p in points]
        return max(abs(math.expm1(x)) for x in r), sum(x * x for x in r)

    def search(grid: dict) -> tuple[tuple, dict]:
        combos = [{QWEN_KNOBS[0]: d, QWEN_KNOBS[1]: pf} for d in grid[QWEN_KNOBS[0]] for pf in grid[QWEN_KNOBS[1]]]
        sims.prefetch([(p, derive(a, k, qwen=c)["qwen32b"]) for c in combos for p in points])
        best = None
        for d in grid[QWEN_KNOBS[0]]:
            for pf in grid[QWEN_KNOBS[1]]:
                vals = {QWEN_KNOBS[0]: d, QWEN_KNOBS[1]: pf}
                lv = loss(vals)
                if best is None or lv < best[0]:
                    best = (lv, vals)
        return best

    grid = QWEN_GRID
    if around:
        grid = {}
        for n in QWEN_KNOBS:
            g = QWEN_GRID[n]
            i = min(range(len(g)), key=lambda j: abs(g[j] - around[n]))
            grid[n] = g[max(0, i - 1):i + 2]
    (lv, vals) = search(grid)
    fine = {}
    for n in QWEN_KNOBS:
        step = QWEN_GRID[n][1] - QWEN_GRID[n][0]
        fine[n] = [max(0.0, vals[n] + step * f) for f in (-0.5, -0.25, 0.0, 0.25, 0.5)]
    (lv, vals) = search(fine)
    print(f"  best: " + ", ".join(f"{n} = {v:.4g} s" for n, v in vals.items())
          + f": worst |residual| {100 * lv[0]:.1f}%", flush=True)
    return {n: float(f"{v:.6g}") for n, v in vals.items()}


# ====================================================================== table
def residual_rows(sims: Sims, points: list[C1Point], sets: dict) -> list[dict]:
    rows = []
    sims.prefetch([(p, sets[p.model]) for p in points])
    for p in points:
        j = sims.jct(p, sets[p.model], "final")
        rows.append({"group": "C1", "point": f"Oracle JCT {p.name}", "sim": j, "paper": p.paper_jct_s,
                     "unit": "s", "rel_err": j / p.paper_jct_s - 1})
    for r in c2_compute_rows(apply_sets(load_models(), sets)):
        rows.append({k: r[k] for k in ("group", "point", "sim", "paper", "unit", "rel_err")})
    return rows


def format_table(rows: list[dict]) -> str:
    out = [f"{'grp':<4}{'point':<66}{'simulated':>12}{'paper':>10}{'resid':>9}"]
    for r in rows:
        ok = "" if abs(r["rel_err"]) <= 0.10 else "  > 10%"
        out.append(f"{r['group']:<4}{r['point']:<66}{r['sim']:>12.5g}{r['paper']:>10.5g}"
                   f"{100 * r['rel_err']:>+8.1f}%{ok}")
    c1 = [abs(r["rel_err"]) for r in rows if r["group"] == "C1"]
    c2 = [abs(r["rel_err"]) for r in rows if r["group"] == "C2"]
    out.append(f"worst |C1 residual| = {100 * max(c1):.1f}%; worst |C2 residual| = {100 * max(c2):.1f}%")
    return "\n".join(out)


def save_report(rows: list[dict], values: dict, sets: dict, meta: dict, table: str, tag: str = "") -> Path:
    REPORTS.mkdir(parents=True, exist_ok=True)
    stem = "c1_fit" + (f"_{tag}" if tag else "")
    with (REPORTS / f"{stem}.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "point", "sim", "paper", "unit", "rel_err"])
        for r in rows:
            w.writerow([r["group"], r["point"], f"{r['sim']:.6g}", f"{r['paper']:.6g}", r["unit"],
                        f"{r['rel_err']:.5f}"])
    md = ["# C1 fit (calibration/fit_c1.py)" + (f" -- what-if `{tag}`" if tag else ""), "",
          f"Extra overrides: `{' '.join(meta['extra'])}`." if meta.get("extra") else "Simulator as configured.", "",
          f"Run: {meta['when']}, mode `{meta['mode']}`, {meta['runs']} new simulations "
          f"({meta['sim_wall']:.0f} s of simulation, {meta['total']:.0f} s in all).", "",
          "## Fitted values", "",
          (f"* Compute tables: `{load_models()['ds660b'].get('compute_tables')}` (levels; docs/compute_tables.md)."
           if TABLES else "* Compute model: analytic (roofline knobs)."),
          (f"* DeepSeek models: prefill_attn_level = {values.get('a_ds660b', 0):.5g} (ds660b), "
           f"{values.get('a_ds27b', 0):.5g} (ds27b); "
           f"decode_idx_level = {values['k_ds660b']:.5g} (ds660b), {values['k_ds27b']:.5g} (ds27b)" if TABLES else
           f"* DeepSeek models (ds660b, ds27b): DSA prefill attention factor a = {values['a']:.5g} "
           f"(attn_prefill_eff = {ATTN_BASE['attn_prefill_eff'] * values['a']:.5g}, "
           f"indexer_eff = {ATTN_BASE['indexer_eff'] * values['a']:.5g}); "
           f"decode_idx_key_layer_s = {values['k_ds660b']:.5g} s (ds660b), {values['k_ds27b']:.5g} s (ds27b)"),
          "* qwen32b (FP8 weights, 320 GB host buffers; its own knobs): " + ", ".join(
              f"{n} = {values[n] * 1e3:.4g} ms" for n in QWEN_KNOBS),
          "* C2 knobs refitted with them (shared): " + ", ".join(
              f"{k[6:]} = {v:.6g}" for k, v in sets["ds660b"].items()
              if k[6:] in C2_PREFILL + C2_DECODE), "",
          "## Residuals (C1 and C2 together)", "", "| group | point | simulated | paper | residual |",
          "|---|---|---|---|---|"]
    for r in rows:
        flag = "" if abs(r["rel_err"]) <= 0.10 else " **(>10%)**"
        md.append(f"| {r['group']} | {r['point']} | {r['sim']:.5g} | {r['paper']:.5g} | "
                  f"{100 * r['rel_err']:+.1f}%{flag} |")
    md += ["", "```", table, "```", "",
           "Why these knobs (and Qwen's FP8 weights): see the module docstring of "
           "calibration/fit_c1.py.", ""]
    (REPORTS / f"{stem}.md").write_text("\n".join(md))
    return REPORTS / f"{stem}.md"


# ====================================================================== YAML
def _fmt(v: float) -> str:
    if v == 0:
        return "0.0"
    if 1e-3 <= abs(v) < 1e5:
        s = f"{v:.6g}"
        return s if ("." in s or "e" in s) else s + ".0"
    return f"{v:.6e}".replace("e-0", "e-").replace("e+0", "e+")


def write_values(model: str, sets: dict, a: float) -> None:
    path = CONF / "model" / f"{model}.yaml"
    text = path.read_text()
    for key, val in sets.items():
        name, indent = (key[6:], "  ") if key.startswith("knobs.") else (key, "")
        sval = _fmt(val)
        head = C2_COMMENT if name in C2_PREFILL + C2_DECODE else FIT_COMMENT
        if model == "qwen32b" and name in C2_PREFILL + C2_DECODE:
            head = C2_COMMENT.replace("(refitted", "(DeepSeek fit, transferred; refitted")
        note = NOTES[name].format(a=a)
        pat = re.compile(rf"^({indent}{re.escape(name)}:[ \t]*)([^#\n]*?)([ \t]*#[^\n]*)?$", re.M)
        if not pat.search(text):
            raise SystemExit(f"{path}: key '{key}' not found")
        text = pat.sub(lambda mo: f"{mo.group(1)}{sval}  {head}: {note}", text, count=1)
    path.write_text(text)
    got = yaml.safe_load(path.read_text())
    for key, val in sets.items():
        v = got["knobs"][key[6:]] if key.startswith("knobs.") else got[key]
        if not math.isclose(float(v), val, rel_tol=1e-5, abs_tol=1e-15):
            raise SystemExit(f"{path}: '{key}' did not round-trip ({v!r} vs {val!r})")


def current_values() -> dict:
    m = load_models()
    if TABLES:
        return {**{f"a_{n}": float(m[n]["knobs"].get("prefill_attn_level", 1.0)) for n in DS_MODELS},
                **{f"k_{n}": float(m[n]["knobs"].get("decode_idx_level", 1.0)) for n in DS_MODELS},
                **{n: float(m["qwen32b"]["knobs"][n]) for n in QWEN_KNOBS}}
    return {"a": float(m["ds660b"]["knobs"]["attn_prefill_eff"]) / ATTN_BASE["attn_prefill_eff"],
            **{f"k_{n}": float(m[n]["knobs"]["decode_idx_key_layer_s"]) for n in DS_MODELS},
            **{n: float(m["qwen32b"]["knobs"][n]) for n in QWEN_KNOBS}}


def current_sets() -> dict:
    """The values in the YAML files, as override sets (for --check)."""
    m = load_models()
    keys = set(C2_PREFILL + C2_DECODE) | ({"prefill_attn_level", "decode_idx_level"} if TABLES else
                                          {"attn_prefill_eff", "indexer_eff", "decode_idx_key_layer_s"})
    out = {}
    for n in MODELS:
        out[n] = {f"knobs.{k}": float(v) for k, v in m[n]["knobs"].items() if k in keys
                  and not (TABLES and n == "qwen32b" and k in ("prefill_level", "decode_level"))}
    for n in QWEN_KNOBS:
        out["qwen32b"][f"knobs.{n}"] = float(m["qwen32b"]["knobs"][n])
    return out


# ====================================================================== main
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="write the fitted values into conf/model/*.yaml")
    ap.add_argument("--quick", action="store_true", help="only the 512/128-agent points (a check)")
    ap.add_argument("--check", action="store_true", help="no fit: evaluate the values in the YAML files")
    ap.add_argument("--steps", type=int, default=1, help="Gauss-Newton steps for the DS knobs (default 1)")
    ap.add_argument("--no-cache", action="store_true", help="ignore and do not write the simulation cache")
    ap.add_argument("--fresh", action="store_true", help="start from the built-in start, not the YAML values")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="extra Hydra override for every simulation (e.g. cluster.dram_buffer_bytes=1e15)")
    ap.add_argument("--jobs", type=int, default=1, help="simulations in parallel (processes)")
    ap.add_argument("--qwen-local", action="store_true",
                    help="Qwen's grid: only the 3 x 3 cells around the YAML values (then the fine grid)")
    ap.add_argument("--no-qwen", action="store_true", help="keep Qwen's overheads at the YAML values")
    ap.add_argument("--reuse-jacobian", action="store_true",
                    help="start Gauss-Newton with the last fit's Jacobian (calibration/reports/c1/jacobian.json) "
                         "instead of finite differences (e.g. refitting after a simulator change)")
    ap.add_argument("--start-analytic", action="store_true",
                    help="table mode: start from the levels at which the tables reproduce the analytic C1 fit")
    ap.add_argument("--tag", default="", help="report as c1_fit_TAG.{md,csv} (for what-if fits with --set)")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.quick and args.write:
        ap.error("--write needs the full fit (drop --quick)")
    if args.check and args.write:
        ap.error("--check does not fit: nothing to write")
    if args.sets and args.write:
        ap.error("--write with --set would write values fitted to another configuration")
    t0 = time.perf_counter()
    sims = Sims(use_cache=not args.no_cache, extra=args.sets, jobs=args.jobs)
    pts = [p for p in C1_POINTS if not args.quick or p.agents == QUICK_AGENTS[p.model]]
    mode = "check" if args.check else ("quick" if args.quick else "full")
    if args.check:
        values, sets = current_values(), current_sets()
    else:
        ds_pts = [p for p in pts if p.model in DS_MODELS and (args.quick or p.agents in FIT_AGENTS)]
        print(f"DeepSeek knobs (a shared; {K_KEY} per model; C2 refitted at "
              f"every point), Gauss-Newton on {len(ds_pts)} points:", flush=True)
        cur = current_values()
        start = ({n: cur[n] for n in DS_START} if min(cur[n] for n in DS_START) > 0 and not args.fresh
                 else DS_START)
        if TABLES and args.start_analytic:
            start = {kk: min(max(v, DS_BOUNDS[kk][0]), DS_BOUNDS[kk][1]) for kk, v in analytic_equivalent_start().items()}
            print("  start (table levels equivalent to the analytic model's C1 fit): "
                  + ", ".join(f"{kk}={v:.4g}" for kk, v in start.items()), flush=True)
        v = fit_ds(sims, ds_pts, start, steps=args.steps, reuse_jacobian=args.reuse_jacobian)
        q_pts = [p for p in pts if p.model == "qwen32b"]
        if args.no_qwen:
            qv = {n: cur[n] for n in QWEN_KNOBS}
        else:
            print(f"Qwen 32B {' and '.join(QWEN_KNOBS)}: grid search on {len(q_pts)} point(s):", flush=True)
            qv = fit_qwen(sims, q_pts, _as(v), _ks(v),
                          around=({n: cur[n] for n in QWEN_KNOBS} if args.qwen_local else None))
        values = {**v, **qv}
        sets = derive(_as(v), _ks(v), qwen=qv)
    print(f"\nvalues ({mode}):")
    for k, val in values.items():
        print(f"  {k:28s} {val:.6g}")
    for k, val in sets["ds660b"].items():
        print(f"  {k[6:]:28s} {val:.6g}  (ds660b, ds27b{'' if k[6:] not in C2_PREFILL + (C2_DECODE[0],) else ', qwen32b'})")
    print("\nresiduals, C1 and C2:", flush=True)
    rows = residual_rows(sims, pts, sets)
    table = format_table(rows)
    print(table)
    total = time.perf_counter() - t0
    print(f"\n{sims.n_runs} new simulations ({sims.wall:.0f} s), {total:.0f} s in all")
    if not args.quick:
        f = save_report(rows, values, sets, {"when": time.strftime("%Y-%m-%d %H:%M"), "mode": mode,
                                             "runs": sims.n_runs, "sim_wall": sims.wall, "total": total,
                                             "extra": args.sets}, table, tag=args.tag)
        print(f"wrote {f} and .csv")
    if args.write:
        for m in MODELS:
            write_values(m, sets[m], values.get("a", 0.0))
        print("wrote the values into dpsim/conf/model/{ds660b,ds27b,qwen32b}.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
