"""``dpsim sensitivity``: one-at-a-time sweeps of the §S10 assumptions and a tornado of how each
moves the Basic/DualPath and DualPath/Oracle JCT ratios of the paper's default cells.

    dpsim sensitivity [--quick] [--seeds N] [--agents N] [--qwen-agents N] [--only NAME,...] [--out DIR]
    dpsim validate [--quick] --sensitivity        (the same, after the calibration report)

For each assumption in :data:`ASSUMPTIONS` (its plausible range and the reasoning behind it are in
the table below and in docs/sensitivity.md) every other config value stays at the YAML's, and
the assumption's key is set to its ``low`` and ``high`` end.  At each setting (and at the base =
the YAML's value) Basic, DualPath and Oracle run at the same seeds; per seed
``Basic/DualPath = JCT_basic / JCT_dualpath`` (DualPath's throughput gain) and
``DualPath/Oracle = JCT_dualpath / JCT_oracle`` (how far DualPath is from the bound) are computed
from that seed's three runs, then summarised over the seeds by their mean and Student-t 95%
interval (:func:`dpsim.analysis.stats.mean_ci`).  Different settings are never pooled.

A tornado row spans the lowest to the highest mean ratio among {low, base, high} (so it always
brackets the base); its width is that span (0 when the assumption does not move the ratio).
One-sided ranges (the YAML value is an end: EP group size, quota scope, Qwen weight precision)
have an empty ``low`` or ``high`` (the base stands in for it).

Cells (§S9 defaults): DeepSeek 660B 2P4D 64K (``--agents``; the paper's default agent count
1024 -- Fig. 7's middle, C1 -- unless ``--quick``: 128) for every assumption except the Qwen
weight precision, which only exists on Qwen 32B 1P2D 32K (``--qwen-agents``; 256, quick 64).
Seeds 0..N-1 (default 3; ``--quick`` 2).  Runs are sequential (one simulation at a time) unless
``--jobs N``: then every distinct config runs first on N processes (a pool of workers, like N
cooks sharing one order list), and the rows read their JCTs; the numbers are the same either way.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

SYSTEMS = ("basic", "dualpath", "oracle")
METRICS = {"Basic/DualPath": ("basic", "dualpath"), "DualPath/Oracle": ("dualpath", "oracle")}
SEEDS, QUICK_SEEDS = 3, 2  # as dpsim validate (#11: 3 at paper scale; 2 = the fewest with an interval)


@dataclass(frozen=True)
class Cell:
    """An offline scenario: model, P/D nodes, MAL, agents."""
    model: str
    P: int
    D: int
    mal: str
    agents: int

    @property
    def name(self) -> str:
        return f"{self.model} {self.P}P{self.D}D {self.mal.upper()} {self.agents} agents"


def cells(quick: bool = False, agents: int | None = None, qwen_agents: int | None = None) -> dict[str, Cell]:
    """The §S9 default cells: ``ds`` (DS 660B 2P4D 64K) and ``qwen`` (Qwen 32B 1P2D 32K)."""
    return {"ds": Cell("ds660b", 2, 4, "64k", agents or (128 if quick else 1024)),
            "qwen": Cell("qwen32b", 1, 2, "32k", qwen_agents or (64 if quick else 256))}


def _kv_layout(v, cfg) -> dict:
    """KV bytes/token must agree with the per-layer layout (engines/models.py checks it): keep the
    YAML's indexer key bytes per layer and give the rest to the attention (latent) KV."""
    L, idx = cfg["model"]["n_layers"], cfg["model"]["kv_cache"]["indexer_bytes_per_layer"]
    main = v / L - idx
    if main <= 0 or main != int(main):
        raise ValueError(f"sensitivity: kv_bytes: {v} B/token is not n_layers ({L}) x (an integer latent size "
                         f"+ the indexer's {idx} B)")
    return {"model.kv_cache.main_bytes_per_layer": int(main), "model.kv_bytes_per_token": int(v)}


@lru_cache(maxsize=None)
def _calibrated(mal: str, spread: float) -> dict:
    """Synthetic knobs recalibrated to the §S8 means at ``spread`` (the same search and seed that
    made dpsim.workload.synthetic.CALIBRATED), so the sweep changes the shape, not the means."""
    from ..workload.synthetic import calibrate, parse_mal
    k = calibrate(parse_mal(mal), spread=spread)
    return {f: float(getattr(k, f)) for f in k.__dataclass_fields__}


def _shape(v, cfg) -> dict:
    return {"workload.spread": float(v), "workload.knobs": _calibrated(str(cfg["workload"]["mal"]), float(v))}


def _qwen_bf16(v, cfg) -> dict:
    return {"model.gemm_dtype": v, "model.weight_bytes": 2}


@dataclass(frozen=True)
class Assumption:
    """One §S10 assumption: its config ``key`` (the base is the YAML's value there), the ``low`` and
    ``high`` ends of its plausible range (None: the base is that end), the cell it is swept on,
    ``why`` (the range's source or reasoning) and ``expand`` (value, cfg -> {dotted key: value}
    for assumptions that set more than one key; None: just ``key``)."""
    name: str
    label: str
    key: str
    low: Any
    high: Any
    why: str
    cell: str = "ds"
    expand: Callable[[Any, dict], dict] | None = field(default=None, compare=False)

    def sets(self, value, cfg: dict) -> dict:
        return self.expand(value, cfg) if self.expand is not None else {self.key: value}

    def at(self, end: str):
        """The value set at ``end`` (low/base/high); None: the YAML's (the base, or a one-sided
        range's missing end)."""
        return {"low": self.low, "base": None, "high": self.high}[end]

    def check(self, base) -> None:
        """ValueError (one line) unless the range brackets ``base`` (numbers: low <= base <= high;
        otherwise each given end differs from the base)."""
        ends = [v for v in (self.low, self.high) if v is not None]
        if not ends:
            raise ValueError(f"sensitivity: {self.name}: give a low or a high end (both are empty)")
        num = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (*ends, base))
        if num:
            lo = base if self.low is None else self.low
            hi = base if self.high is None else self.high
            if not lo <= base <= hi or lo == hi:
                raise ValueError(f"sensitivity: {self.name}: range [{lo}, {hi}] does not bracket the config's "
                                 f"{self.key}={base} (need low <= base <= high, low < high)")
        elif any(v == base for v in ends):
            raise ValueError(f"sensitivity: {self.name}: an end equals the config's {self.key}={base!r}; "
                             f"leave that end empty (None) instead")


# The plausible ranges.  Each `why` is the range's source or reasoning; the base is always the
# YAML's value (read from the composed config, not repeated here).
ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption("kv_bytes", "KV bytes/token (DS 660B)", "model.kv_bytes_per_token", 43188, 78324,
               "the base 61 x (656 + 132) = 48,068 B is derived (FlashMLA FP8 layout + FP8 indexer key), not "
               "stated by the paper (§S9); low: all-FP8 latent and rope without scale bytes, 61 x (576 + 132); "
               "high: MLA's BF16 latent cache (pre-V3.2 layout), 61 x (576 x 2 + 132)",
               expand=_kv_layout),
    Assumption("snic_efficiency", "storage (SNIC) efficiency", "cluster.snic_efficiency", 0.32, 0.86,
               "high: a 400 Gbps 3FS client peaks near 40 GiB/s = 0.86 of 50 GB/s (C3); low: the C2 fit (the base, "
               "0.5226) as far below the fit as the peak is above it (0.5226^2 / 0.86 = 0.318), since the fit absorbs "
               "whatever else the model gets wrong"),
    Assumption("block_size", "block size (tokens)", "system.block_size", 16, 256,
               "low: vLLM's default KV block (16 tokens); high: LMCache's default chunk (256 tokens); "
               "§S10 suggests 64 (FlashMLA's page size)"),
    Assumption("quota_scope", "300 ms quota per forward vs per layer", "system.batching.quota_scope", None,
               "layer", "§S10 open: the base bounds a forward's attention; the other reading bounds one layer's "
               "(a batch ~n_layers times larger)"),
    Assumption("fetch_period", "group fetch period (s)", "system.dualpath.fetch_period_s", 0.005, 0.1,
               "low: a few scheduler RPC round trips (~1 ms each); high: about one prefill forward under the "
               "300 ms quota (§S6) / a few decode steps of ~30 ms (C2 TPOT)"),
    Assumption("length_shape", "synthetic length distribution shape (spread)", "workload.spread", 0.5, 1.5,
               "the paper gives means only (§S8); every fixed log-normal spread x0.5 / x1.5, the five calibrated "
               "knobs refitted to the §S8 means at each end (same search and seed as CALIBRATED)",
               expand=_shape),
    Assumption("ep_size", "EP group size (DS 660B decode)", "model.parallel.ep_size_decode", 16, None,
               "base: one EP group per role (prefill 16, decode 32 GPUs of 2P4D); EP8 cannot hold the 654 GB of "
               "experts on 80 GB GPUs, so the only other 2P4D choice is decode EP16 (two groups of 2 nodes)"),
    Assumption("qwen_precision", "Qwen 32B weight precision", "model.gemm_dtype", None, "bf16",
               "base FP8 (DeepGEMM, chosen with C1); BF16 weights (2 B/param, BF16 GEMMs) as the public checkpoint",
               cell="qwen", expand=_qwen_bf16),
)


# ====================================================================== runs
def get(cfg: dict, dotted: str):
    d = cfg
    for k in dotted.split("."):
        if not isinstance(d, dict) or k not in d:
            raise ValueError(f"sensitivity: config has no key {dotted!r} (dpsim --cfg job lists them)")
        d = d[k]
    return d


def put(cfg: dict, dotted: str, value) -> None:
    *path, last = dotted.split(".")
    d = cfg
    for k in path:
        d = d[k]
    if last not in d:
        raise ValueError(f"sensitivity: config has no key {dotted!r} (dpsim --cfg job lists them)")
    d[last] = value


def _parse(v: str):
    """A runs.csv value back to int / float where it is one."""
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return v


def default_runner(cfg: dict) -> float:
    """JCT (s) of the offline run ``cfg`` (raises if it did not complete)."""
    from .validate import run_jct
    return run_jct(cfg)[0]


class Sweep:
    """Runs the settings of :data:`ASSUMPTIONS` on their cells, one simulation at a time.
    ``base_cfg(cell, system, seed)`` composes a config (default: the YAML's, via
    :func:`dpsim.analysis.validate.scenario_cfg`); ``runner(cfg) -> JCT``.  Identical configs run
    once (a base shared by every assumption of a cell)."""

    def __init__(self, cells: dict[str, Cell], seeds: Sequence[int], runner: Callable[[dict], float] | None = None,
                 base_cfg: Callable[[Cell, str, int], dict] | None = None, log: Callable = print):
        self.cells, self.seeds = cells, list(seeds)
        self.runner = runner or default_runner
        self.base_cfg = base_cfg or _scenario
        self.log = log
        self._cache: dict[str, float] = {}
        self.runs: list[dict] = []  # one per (assumption, end, system, seed): the per-seed JCT table
        self.replay: dict | None = None  # {(assumption, end, system, seed): JCT} from a runs.csv: no runs

    def jct(self, cfg: dict) -> float:
        k = _key(cfg)
        if k not in self._cache:
            self._cache[k] = float(self.runner(cfg))
        return self._cache[k]

    def setting(self, a: Assumption, end: str) -> dict:
        """{metric: Interval over seeds} of ``a`` at ``end`` (low/base/high), and the JCTs."""
        from .stats import mean_ci
        cell = self.cells[a.cell]
        value = a.at(end)
        per_seed = []
        for sd in self.seeds:
            jcts = {}
            for s in SYSTEMS:
                # (replaying, the config is only read for the YAML's value: no setting applied)
                cfg = self.base_cfg(cell, s, sd) if self.replay is not None else self.config(a, end, s, sd)
                # the YAML's value at the base (and a one-sided range's missing end)
                shown = value if value is not None else get(cfg, a.key)
                jcts[s] = self.jct(cfg) if self.replay is None else self._replayed(a, end, s, sd)
                if self.replay is not None:  # the value the runs had (the YAML may have changed since)
                    shown = self.replay_values[(a.name, end)]
                self.runs.append({"assumption": a.name, "end": end, "value": shown, "cell": cell.name,
                                  "system": s, "seed": sd, "jct_s": jcts[s]})
            per_seed.append(jcts)
        out = {m: mean_ci(j[n] / j[d] for j in per_seed) for m, (n, d) in METRICS.items()}
        out["seeds"] = {m: [j[n] / j[d] for j in per_seed] for m, (n, d) in METRICS.items()}
        out["value"] = shown
        return out

    def config(self, a: Assumption, end: str, system: str, seed: int) -> dict:
        """The config ``a`` runs at ``end`` (low/base/high) for ``system`` and ``seed``: the
        YAML's, with ``a``'s value set unless that end is the base (or a one-sided range's
        missing end)."""
        cfg = self.base_cfg(self.cells[a.cell], system, seed)
        value = a.at(end)
        if value is not None:
            for k, v in a.sets(value, cfg).items():
                put(cfg, k, v)
        return cfg

    def configs(self, assumptions: Sequence[Assumption]) -> list[dict]:
        """Every distinct config the rows of ``assumptions`` run (a shared base once), in order."""
        seen, out = set(), []
        for a in assumptions:
            for end in ("base", "low", "high"):
                for sd in self.seeds:
                    for s in SYSTEMS:
                        cfg = self.config(a, end, s, sd)
                        k = _key(cfg)
                        if k not in seen:
                            seen.add(k)
                            out.append(cfg)
        return out

    def prefetch(self, assumptions: Sequence[Assumption], jobs: int) -> int:
        """Run the configs of ``assumptions`` not run yet on ``jobs`` processes at once, filling
        the cache the rows then read (results do not depend on ``jobs``: each run is its own
        seeded simulation).  Returns how many ran."""
        if jobs <= 1 or self.replay is not None:
            return 0
        todo = [c for c in self.configs(assumptions) if _key(c) not in self._cache]
        if len(todo) <= 1:
            return 0
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=mp.get_context("forkserver")) as ex:
            futs = {ex.submit(self.runner, c): c for c in todo}
            for i, f in enumerate(as_completed(futs), 1):
                self._cache[_key(futs[f])] = float(f.result())
                if i % max(1, len(todo) // 20) == 0 or i == len(todo):
                    self.log(f"  {i}/{len(todo)} simulations done ({time.perf_counter() - t0:.0f} s, {jobs} at once)")
        return len(todo)

    def load_runs(self, path: Path) -> None:
        """Take every JCT from ``path`` (a runs.csv this tool wrote) instead of running."""
        try:
            with Path(path).open(newline="") as f:
                rs = list(csv.DictReader(f))
            self.replay = {(r["assumption"], r["end"], r["system"], int(r["seed"])): float(r["jct_s"]) for r in rs}
            self.replay_values = {(r["assumption"], r["end"]): _parse(r["value"]) for r in rs}
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"--from-runs {path}: not a runs.csv of dpsim sensitivity ({e})") from None

    def _replayed(self, a: Assumption, end: str, system: str, seed: int) -> float:
        k = (a.name, end, system, seed)
        if k not in self.replay:
            raise ValueError(f"--from-runs: no run for {a.name} {end} {system} seed {seed}; rerun without "
                             f"--from-runs, or with the --quick/--seeds/--agents/--only it was made with")
        return self.replay[k]

    def row(self, a: Assumption) -> dict:
        cfg = self.base_cfg(self.cells[a.cell], SYSTEMS[0], self.seeds[0])
        a.check(get(cfg, a.key))
        t = time.perf_counter()
        r = {"assumption": a, "cell": self.cells[a.cell]}
        for end in ("base", "low", "high"):
            r[end] = self.setting(a, end)
        r["wall_s"] = time.perf_counter() - t
        self.log(format_row(r))
        return r

    def check(self, assumptions: Sequence[Assumption]) -> None:
        """Every range against the YAML's value, before anything runs (ValueError: one line)."""
        for a in assumptions:
            a.check(get(self.base_cfg(self.cells[a.cell], SYSTEMS[0], self.seeds[0]), a.key))

    def rows(self, assumptions: Sequence[Assumption] = ASSUMPTIONS,
             on_row: Callable[[list[dict]], None] | None = None) -> list[dict]:
        """Every assumption's row; ``on_row(rows so far)`` after each (partial outputs)."""
        self.check(assumptions)
        done: list[dict] = []
        for a in assumptions:
            done.append(self.row(a))
            if on_row is not None:
                on_row(done)
        return done


def _key(cfg: dict) -> str:
    import json
    return json.dumps(cfg, sort_keys=True, default=str)


def _scenario(cell: Cell, system: str, seed: int) -> dict:
    from .validate import scenario_cfg
    return scenario_cfg(cell.model, cell.P, cell.D, cell.mal, cell.agents, system=system, seed=seed)


# ====================================================================== tornado
def bar(r: dict, metric: str) -> tuple[float, float]:
    """(lowest, highest) mean ratio among the row's base, low and high: the tornado bar."""
    v = [r[e][metric].mean for e in ("base", "low", "high")]
    return min(v), max(v)


def delta(r: dict, end: str, metric: str):
    """The change of the ratio from the base at ``end``: per seed (paired: the same seed's workload
    at both settings), then mean and 95% interval."""
    from .stats import mean_ci
    return mean_ci(x - b for x, b in zip(r[end]["seeds"][metric], r["base"]["seeds"][metric]))


def width(r: dict, metric: str) -> float:
    lo, hi = bar(r, metric)
    return hi - lo


def _iv(iv, sign: str = "") -> str:
    return f"{iv.mean:{sign}.3f}" + (f" [{iv.lo:{sign}.3f}, {iv.hi:{sign}.3f}]" if iv.n >= 2 else "")


def _val(v) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def format_row(r: dict) -> str:
    a = r["assumption"]
    parts = [f"  {a.label} ({a.cell}): low {_val(r['low']['value'])} / base {_val(r['base']['value'])} / "
             f"high {_val(r['high']['value'])}"]
    for m in METRICS:
        parts.append(f"    {m:<16} low {_iv(r['low'][m]):<26} base {_iv(r['base'][m]):<26} "
                     f"high {_iv(r['high'][m]):<26} width {width(r, m):.3f}")
    return "\n".join(parts)


def table_md(rows: list[dict], title: str) -> str:
    from .stats import INTERVAL
    lines = [f"# {title}", "", f"Ratios per seed from that seed's Basic, DualPath and Oracle runs; mean and {INTERVAL}. "
             "Δ: the change from the base, per seed (same seed at both settings), then mean and interval. "
             "Width: highest minus lowest mean ratio among low/base/high.", ""]
    for m in METRICS:
        lines += [f"## {m} (JCT ratio)", "", "| assumption | cell | low | base | high | ratio @low | ratio @base | "
                  "ratio @high | Δ @low | Δ @high | width |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(rows, key=lambda r: -width(r, m)):
            a = r["assumption"]
            lines.append(f"| {a.label} | {r['cell'].name} | {_val(r['low']['value'])} | {_val(r['base']['value'])} | "
                         f"{_val(r['high']['value'])} | {_iv(r['low'][m])} | {_iv(r['base'][m])} | "
                         f"{_iv(r['high'][m])} | {_iv(delta(r, 'low', m), '+')} | {_iv(delta(r, 'high', m), '+')} | "
                         f"{width(r, m):.3f} |")
        lines.append("")
    lines += ["## Ranges", "", "| assumption | key | range: source / reasoning |", "|---|---|---|"]
    for r in rows:
        a = r["assumption"]
        lines.append(f"| {a.label} | `{a.key}` | {a.why} |")
    return "\n".join(lines + [""])


def write_outputs(sw: Sweep, rows: list[dict], out: Path, title: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "tornado.md", out / "tornado.csv", out / "runs.csv"]
    files[0].write_text(table_md(rows, title))
    with files[1].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["assumption", "key", "cell", "metric", "end", "value", "mean", "ci_lo", "ci_hi", "n_seeds",
                    "delta_mean", "delta_ci_lo", "delta_ci_hi"])
        for r in rows:
            for m in METRICS:
                for e in ("low", "base", "high"):
                    iv, dv = r[e][m], delta(r, e, m)
                    w.writerow([r["assumption"].name, r["assumption"].key, r["cell"].name, m, e, r[e]["value"],
                                *(f"{x:.6g}" for x in (iv.mean, iv.lo, iv.hi)), iv.n,
                                *(f"{x:.6g}" for x in (dv.mean, dv.lo, dv.hi))])
    with files[2].open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["assumption", "end", "value", "cell", "system", "seed", "jct_s"])
        w.writeheader()
        w.writerows(sw.runs)
    try:
        files.append(tornado_figure(rows, out / "tornado.png", title))
    except Exception as e:  # pragma: no cover - plotting is optional
        print(f"sensitivity: figure skipped ({type(e).__name__}: {e})", file=sys.stderr)
    return files


def tornado_figure(rows: list[dict], path: Path, title: str) -> Path:
    """One panel per ratio: per assumption, a bar over the change of the mean ratio from its cell's
    base (0) to the low and high ends, and at each end the paired per-seed change with its 95%
    interval (low blue, high orange).  Rows sorted by width; each label names the range and the
    cell's base ratio."""
    from ..metrics.outputs import new_figure
    from .stats import INTERVAL
    fig = new_figure(figsize=(13, 1.6 + 0.5 * len(rows)), layout="constrained")
    axes = fig.subplots(1, len(METRICS), sharey=False)
    for ax, m in zip(axes, METRICS):
        rs = sorted(rows, key=lambda r: width(r, m))
        for y, r in enumerate(rs):
            lo, hi = bar(r, m)
            b = r["base"][m].mean
            ax.barh(y, max(hi - lo, 1e-9), left=lo - b, height=0.5, color="0.85", edgecolor="0.5")
            for e, c, dy in (("low", "tab:blue", -0.12), ("high", "tab:orange", 0.12)):
                dv = delta(r, e, m)
                err = None if dv.n < 2 else [[dv.mean - dv.lo], [dv.hi - dv.mean]]
                ax.errorbar(dv.mean, y + dy, xerr=err, fmt="o", color=c, ms=5, capsize=2,
                            label=f"{e} end" if y == 0 else None)
        ax.axvline(0.0, color="k", lw=1)
        ax.set_yticks(range(len(rs)))
        ax.set_yticklabels([f"{r['assumption'].label}: {_val(r['low']['value'])} .. {_val(r['high']['value'])}\n"
                            f"{r['cell'].model}, base {_iv(r['base'][m])}" for r in rs], fontsize=7)
        ax.set_xlabel(f"change of the {m} JCT ratio from the base\n(points: paired per seed; {INTERVAL})", fontsize=8)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
    return path


# ====================================================================== CLI
def add_arguments(ap: argparse.ArgumentParser, standalone: bool = True) -> None:
    if standalone:
        ap.add_argument("--quick", action="store_true", help="small cells (DS 128, Qwen 64 agents) and 2 seeds")
        ap.add_argument("--seeds", type=int, default=None, metavar="N", help=f"seeds 0..N-1 (default {SEEDS}; quick {QUICK_SEEDS})")
        ap.add_argument("--out", type=Path, default=None, help="write tornado.md/.csv/.png and runs.csv here")
        ap.add_argument("--from-runs", type=Path, default=None, metavar="CSV",
                        help="no simulation: redraw the tables and figure from a runs.csv this tool wrote")
    ap.add_argument("--agents", type=int, default=None, metavar="N", help="DS 660B cell's agents (default 1024; quick 128)")
    ap.add_argument("--qwen-agents", type=int, default=None, metavar="N", help="Qwen 32B cell's agents (default 256; quick 64)")
    ap.add_argument("--only", default=None, metavar="NAME,...",
                    help="assumptions to sweep (default all): " + ",".join(a.name for a in ASSUMPTIONS))
    ap.add_argument("--jobs", type=int, default=1, metavar="N",
                    help="simulations at once, one process each (default 1; results do not depend on it)")


def pick(only: str | None) -> tuple[Assumption, ...]:
    if not only:
        return ASSUMPTIONS
    names = [x.strip() for x in only.split(",") if x.strip()]
    known = {a.name: a for a in ASSUMPTIONS}
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"--only: unknown assumption(s) {', '.join(bad)}; known: {', '.join(known)}")
    return tuple(known[n] for n in names)


def run(quick: bool, seeds: int | None, agents: int | None, qwen_agents: int | None, only: str | None,
        out: Path | None, log: Callable = print, from_runs: Path | None = None, jobs: int = 1) -> int:
    """The sweep, its table on stdout and (``out``) its files.  0, or 2 after one error line."""
    try:
        n = int(seeds if seeds is not None else (QUICK_SEEDS if quick else SEEDS))
        for what, v in (("--seeds", n), ("--agents", agents), ("--qwen-agents", qwen_agents), ("--jobs", jobs)):
            if v is not None and v < 1:
                raise ValueError(f"{what} {v}: expected an integer >= 1")
        chosen = pick(only)
        cs = cells(quick, agents, qwen_agents)
        sw = Sweep(cs, range(n), log=log)
        if from_runs is not None:
            sw.load_runs(from_runs)
        used = {a.cell for a in chosen}
        title = ("dpsim sensitivity: " + "; ".join(cs[c].name for c in sorted(used)) + f"; seeds 0..{n - 1}")
        log(title)
        t0 = time.perf_counter()
        if sw.replay is None and jobs > 1:
            sw.check(chosen)  # before the pool runs anything
            sw.prefetch(chosen, jobs)
        partial = (lambda done: write_outputs(sw, done, out, title + f" (partial: {len(done)}/{len(chosen)})")
                   if len(done) < len(chosen) else None)
        rows = sw.rows(chosen, on_row=partial if out is not None else None)
    except ValueError as e:
        print(f"dpsim sensitivity: error: {e}", file=sys.stderr)
        return 2
    ran = f"{len(sw._cache)} simulations" if sw.replay is None else f"replayed from {from_runs}"
    log(f"\n{table_md(rows, title)}\n({ran}, {time.perf_counter() - t0:.0f} s)")
    if out is not None:
        try:
            for f in write_outputs(sw, rows, out, title):
                log(f"  wrote {f}")
        except OSError as e:
            print(f"dpsim sensitivity: error: --out {out}: cannot write ({e.strerror or e})", file=sys.stderr)
            return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dpsim sensitivity", description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    a = ap.parse_args(list(argv) if argv is not None else None)
    return run(a.quick, a.seeds, a.agents, a.qwen_agents, a.only, a.out, from_runs=a.from_runs, jobs=a.jobs)


if __name__ == "__main__":
    sys.exit(main())
