"""Simulator speed and memory, each figure beside a reference commit's measured in the same run.

This machine's speed varies by ~2.7x between identical runs, so an absolute figure alone proves
nothing: every scenario is also run (unless --no-ref) on a REFERENCE commit -- by default
``1432a18``, the code before the speed work of issue #10 -- extracted with ``git archive`` into a
cached temp dir and imported from there in a child process.

    python benchmarks/bench_sim.py                  # full (paper-scale) benchmark, ~15-30 min
    python benchmarks/bench_sim.py --quick          # small sizes, well under 2 minutes
    python benchmarks/bench_sim.py --ref abc1234    # another reference commit
    python benchmarks/bench_sim.py --no-ref         # current code only
    python benchmarks/bench_sim.py --skip-large     # no 1,152-GPU run
    python benchmarks/bench_sim.py --json rows.json # also write every row
    python benchmarks/bench_sim.py --repeat 3       # every figure as mean [95% interval] of 3 runs

Each scenario (current and reference) runs in its own fresh process (same interpreter), so its
peak RSS is its own; a process that dies or runs past --timeout gives an error row, never a hang.
See benchmarks/README.md for the scenarios and the targets.
"""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's dpsim (not a stale installed copy) for mean_ci
from dpsim.analysis.stats import mean_ci  # noqa: E402  (the one interval dpsim reports everywhere)

DEFAULT_REF = "1432a18"
MARK = "BENCH_RESULT "

# Runs in the child process.  argv[1]: {"root": dir dpsim must come from, "overrides": [...]}.
CHILD = r'''
import json, os, resource, sys, time
spec = json.loads(sys.argv[1])
root = os.path.realpath(spec["root"])
import dpsim, dpsim.conf, dpsim.net
for m in (dpsim, dpsim.conf, dpsim.net):
    f = os.path.realpath(m.__file__)
    if not f.startswith(root + os.sep):
        sys.stderr.write(f"bench child: {m.__name__} was imported from {f}, not from under {root}\n")
        sys.exit(3)
try:  # as `python -m dpsim` does: restart with glibc's malloc on huge pages
    from dpsim.hugepages import reexec_with_malloc_thp
except ImportError:  # a reference from before dpsim.hugepages runs as `python -m dpsim` did then
    reexec_with_malloc_thp = None
if reexec_with_malloc_thp is not None:
    reexec_with_malloc_thp()
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from dpsim.runner import run
with initialize_config_module(config_module="dpsim.conf", version_base=None):
    cfg = OmegaConf.to_container(compose(config_name="config", overrides=spec["overrides"]), resolve=True)
cfg.setdefault("output", {})["plots"] = False
cfg["output"]["progress"] = False
ru0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
summ, sim = run(cfg, out_dir=None)
total = time.perf_counter() - t0
ru1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
try:
    sim_s = float(sim.env.now)
except Exception:
    sim_s = None
out = {"requests": summ.get("requests_completed"), "failed": summ.get("requests_failed"),
       "requests_total": summ.get("requests_total"), "events": summ.get("events"),
       "transfers": summ.get("transfers"), "sim_wall_s": summ.get("sim_wall_s"),
       "total_wall_s": total, "total_cpu_s": cpu, "sim_s": sim_s, "truncated": summ.get("truncated"),
       "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
       "implementation": getattr(dpsim.net, "IMPLEMENTATION", "python"),
       "huge_pages": getattr(dpsim, "HUGE_PAGES_REASON", "n/a (before dpsim.hugepages)"),
       "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
       "dpsim_file": os.path.realpath(dpsim.__file__)}
sys.stdout.write("\n" + "BENCH_RESULT " + json.dumps(out) + "\n")
sys.stdout.flush()
'''


class BenchError(RuntimeError):
    pass


# ------------------------------------------------------------------ reference extraction
def resolve_commit(commit: str, repo: Path = REPO) -> str:
    """Full SHA of ``commit`` in ``repo``; BenchError if git does not know it."""
    p = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
                       capture_output=True, text=True)
    sha = p.stdout.strip()
    if p.returncode != 0 or not sha:
        raise BenchError(f"reference commit {commit!r} is not a commit of the repository {repo} "
                         f"(git rev-parse failed); pass --ref with a known commit or --no-ref")
    return sha


def extract_ref(commit: str, repo: Path = REPO, cache: Path | None = None) -> Path:
    """Extract ``commit``'s tree (``git archive | tar -x``) into a temp dir keyed by its SHA;
    reuse it when already there.  Returns the dir (it holds the old ``dpsim/`` package)."""
    sha = resolve_commit(commit, repo)
    cache = Path(cache or Path(tempfile.gettempdir()) / "dpsim-bench-ref")
    dest = cache / sha
    if (dest / ".complete").exists():
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    part = Path(tempfile.mkdtemp(prefix=f"{sha[:12]}.part-", dir=cache))
    arch = subprocess.Popen(["git", "-C", str(repo), "archive", sha], stdout=subprocess.PIPE)
    tar = subprocess.run(["tar", "-x", "-C", str(part)], stdin=arch.stdout, capture_output=True)
    arch.stdout.close()
    if arch.wait() != 0 or tar.returncode != 0:
        raise BenchError(f"extracting {sha[:12]} failed: git archive exit {arch.returncode}, "
                         f"tar exit {tar.returncode}: {tar.stderr.decode(errors='replace')[-500:]}")
    if not (part / "dpsim" / "__init__.py").exists():
        raise BenchError(f"commit {sha[:12]} has no dpsim/ package")
    (part / ".complete").write_text(sha + "\n")
    try:
        os.rename(part, dest)
    except OSError:  # another run got there first
        if not (dest / ".complete").exists():
            raise
    return dest


# ------------------------------------------------------------------ one scenario, one process
def child_env(root: Path) -> dict:
    """The environment of a child that must import dpsim from ``root``: ``root`` first on
    PYTHONPATH, before the venv's editable install (a meta-path finder) and anything on the
    caller's PYTHONPATH (kept after it, e.g. a --target directory of dependencies)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("MPLBACKEND", "Agg")
    return env


def measure(overrides: list[str], root: Path = REPO, timeout: float = 1500.0) -> dict:
    """Run one scenario with the dpsim found under ``root`` in a fresh process.  Returns the
    child's figures, or {"error": ...} if it failed, died or ran past ``timeout`` seconds."""
    root = Path(root).resolve()
    env = child_env(root)
    spec = json.dumps({"root": str(root), "overrides": list(overrides)})
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-c", CHILD, spec], cwd=str(root), env=env,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s", "process_wall_s": time.perf_counter() - t0}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(MARK)]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout or "").strip().splitlines()[-6:]
        return {"error": f"exit code {p.returncode}: " + " | ".join(tail)[-600:],
                "process_wall_s": time.perf_counter() - t0}
    r = json.loads(lines[-1][len(MARK):])
    r["process_wall_s"] = time.perf_counter() - t0
    r["req_per_s"] = r["requests"] / r["sim_wall_s"] if r.get("sim_wall_s") else math.nan
    return r


# ------------------------------------------------------------------ scenarios
def _offline(P, D, mal, agents, extra=()):
    return ["experiment=offline", "model=ds660b", f"cluster.prefill_nodes={P}",
            f"cluster.decode_nodes={D}", f"workload.mal={mal}", f"workload.agents={agents}", *extra]


def scenarios(quick: bool, skip_large: bool, trunc_sim_s: float, ref_full_ladder: bool) -> list[dict]:
    """Each: key, group, label, overrides, ref (run on the reference?), ref_note."""
    out = []
    if quick:
        out.append(dict(key="paper", group="paper", label="paper cell (quick: 2P4D 64K 128 agents)",
                        overrides=_offline(2, 4, "64k", 128)))
        ladder = [(2, 4, 64), (4, 8, 128), (8, 16, 256)]
    else:
        out.append(dict(key="paper", group="paper", label="paper cell 2P4D 64K 1024 agents",
                        overrides=_offline(2, 4, "64k", 1024)))
        # same agents per GPU as the paper cell: 1024 per 6 nodes.  The smallest rung is 2P4D:
        # DS 660B's prefill EP group (16 GPUs) needs two prefill nodes, and the config check
        # refuses a cluster smaller than an EP group (issue #14).
        ladder = [(P, D, round(1024 * (P + D) / 6)) for P, D in ((2, 4), (4, 8), (12, 24), (48, 96))]
    for i, (P, D, n) in enumerate(ladder):
        top = i == len(ladder) - 1
        skip_ref = (not quick) and top and not ref_full_ladder
        out.append(dict(key=f"ladder-{P}P{D}D", group="ladder", label=f"ladder {P}P{D}D 48K {n} agents",
                        overrides=_offline(P, D, "48k", n), ref=not skip_ref,
                        ref_note="ref skipped (--ref-full-ladder)" if skip_ref else ""))
    if not quick and not skip_large:
        big = _offline(48, 96, "48k", 49152)
        out.append(dict(key="large", group="large", label="1,152 GPUs 48P96D 48K 49152 agents",
                        overrides=big, ref=False, ref_note="ref: too slow in full; see TRUNCATED"))
        out.append(dict(key="large-trunc", group="large",
                        label=f"1,152 GPUs TRUNCATED at max_sim_s={trunc_sim_s:g}",
                        overrides=big + [f"experiment.max_sim_s={trunc_sim_s:g}"]))
    return out


# ------------------------------------------------------------------ report
def _f(v, fmt, missing="-"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return missing
    return format(v, fmt)


def _cost(r):
    if not r or "error" in r or not r.get("requests"):
        return None
    return r["sim_wall_s"] / r["requests"]


def add_ladder_growth(rows: list[dict]) -> None:
    lad = [r for r in rows if r["group"] == "ladder"]
    for side in ("cur", "ref"):
        base = _cost(lad[0].get(side)) if lad else None
        for r in lad:
            c = _cost(r.get(side))
            if base and c:
                r[side]["cost_vs_first"] = c / base


def table(rows: list[dict]) -> str:
    hdr = (f"{'scenario':<44} {'requests':>9} {'events':>10} {'wall s':>8} {'total s':>8} {'cpu s':>8} {'req/s':>8} "
           f"{'RSS MiB':>8} | {'ref req/s':>9} {'ref RSS':>8} {'cur/ref':>7} | {'cost/req vs first':>17}")
    lines = [hdr, "-" * len(hdr)]
    for r in rows:
        c, f = r.get("cur") or {}, r.get("ref")
        if "error" in c:
            lines.append(f"{r['label']:<44} ERROR (current): {c['error']}")
            continue
        if f is None:
            refcols = f"{r.get('ref_note') or 'not run':<36}"
        elif "error" in f:
            refcols = f"{'ref ERROR':<36}"
        else:
            ratio = c["req_per_s"] / f["req_per_s"] if f.get("req_per_s") else None
            refcols = f"{_f(f['req_per_s'], '9.0f'):>9} {_f(f['rss_mib'], '8.0f'):>8} {_f(ratio, '6.2f') + 'x':>7}"
        grow = ""
        if "cost_vs_first" in c:
            grow = f"{c['cost_vs_first']:.2f}x"
            if f and "cost_vs_first" in f:
                grow += f" (ref {f['cost_vs_first']:.2f}x)"
        lines.append(f"{r['label']:<44} {_f(c.get('requests'), '9d'):>9} {_f(c.get('events'), '10d'):>10} "
                     f"{_f(c.get('sim_wall_s'), '8.2f'):>8} {_f(c.get('total_wall_s'), '8.2f'):>8} "
                     f"{_f(c.get('total_cpu_s'), '8.2f'):>8} "
                     f"{_f(c.get('req_per_s'), '8.0f'):>8} {_f(c.get('rss_mib'), '8.0f'):>8} | {refcols} | {grow:>17}")
        if f and "error" in f:
            lines.append(f"{'':<44} ref ERROR: {f['error']}")
        elif f and r["key"] == "large-trunc":
            lines.append(f"{'':<44} (truncated comparison: both at simulated t <= {r['label'].split('=')[-1]} s; "
                         f"ref {f['requests']} requests in {f['sim_wall_s']:.1f} s)")
    return "\n".join(lines)


def targets(rows: list[dict], quick: bool) -> list[dict]:
    by = {r["key"]: r for r in rows}

    def cur(k, field):
        c = (by.get(k) or {}).get("cur") or {}
        return None if "error" in c else c.get(field)

    out = []

    def add(name, value, ok, fmt):
        out.append({"target": name, "value": value,
                    "met": None if value is None else bool(ok(value)), "fmt": fmt, "ok": ok})

    add("paper cell: >= 20,000 simulated requests per wall-second", cur("paper", "req_per_s"),
        lambda v: v >= 20000, "{:.0f} req/s")
    p = by.get("paper") or {}
    ratio = None
    if p.get("ref") and "error" not in p["ref"] and cur("paper", "req_per_s"):
        ratio = cur("paper", "req_per_s") / p["ref"]["req_per_s"]
    add("paper cell: >= 5x the reference, same run", ratio, lambda v: v >= 5, "{:.2f}x")
    add("paper cell: peak RSS < 1 GiB", cur("paper", "rss_mib"), lambda v: v < 1024, "{:.0f} MiB")
    lad = [r for r in rows if r["group"] == "ladder"]
    g = cur(lad[-1]["key"], "cost_vs_first") if lad else None
    span = f"{lad[0]['key'][7:]} -> {lad[-1]['key'][7:]}" if lad else "smallest -> largest rung"
    add(f"ladder: cost/request growth {span} <= 1.3x", g, lambda v: v <= 1.3, "{:.2f}x")
    if not quick:
        add("1,152 GPUs: < 10 min wall (build + simulation)", cur("large", "total_wall_s"),
            lambda v: v < 600, "{:.0f} s")
        # The same budget in CPU seconds of the run's process: what it needs of one free core,
        # whatever else shares the machine (wall time here varies ~2.7x with other jobs).
        add("1,152 GPUs: < 10 min CPU time of build + simulation (one free core)",
            cur("large", "total_cpu_s"), lambda v: v < 600, "{:.0f} s")
        add("1,152 GPUs: peak RSS < 4 GiB", cur("large", "rss_mib"), lambda v: v < 4096, "{:.0f} MiB")
    return out


def verdict(lo: float, hi: float, ok) -> bool | None:
    """True / False when the whole interval [lo, hi] meets / fails the target ``ok``; None when
    it straddles the bound (the repetitions cannot tell)."""
    a, b = bool(ok(lo)), bool(ok(hi))
    return a if a == b else None


def repetition(rows: list[dict], i: int) -> list[dict]:
    """The rows as repetition ``i`` measured them (each run's own dict, so growth figures added
    to it stay with that repetition)."""
    return [{**r, "cur": r["runs"]["cur"][i], "ref": r["runs"]["ref"][i]} for r in rows]


def repeated_targets(rows: list[dict], quick: bool, n: int) -> list[dict]:
    """Each target over ``n`` repetitions: its value in each (a ratio or a growth is taken within
    one repetition, never across), their mean and 95% interval, and a verdict on the interval."""
    per = [targets(repetition(rows, i), quick) for i in range(n)]
    out = []
    for k, t in enumerate(per[0]):
        vals = [p[k]["value"] for p in per if p[k]["value"] is not None]
        ok = t["ok"]
        e = {"target": t["target"], "fmt": t["fmt"], "ok": ok, "values": vals, "value": None, "met": None}
        if vals:
            iv = mean_ci(vals)
            e.update(value=iv.mean, low=iv.lo, high=iv.hi,
                     met=verdict(iv.lo, iv.hi, ok) if iv.n > 1 else bool(ok(iv.mean)))
        out.append(e)
    return out


def repeat_table(rows: list[dict], n: int) -> str:
    """Per scenario over ``n`` repetitions: req/s, cur/ref and cost growth, mean [95% interval]."""
    hdr = f"{'scenario':<44} {'req/s':>28} {'cur/ref':>24} {'cost/req vs first':>24}"
    lines = [f"OVER {n} REPETITIONS (mean [95% t-interval]; a ratio or a growth within one repetition)",
             hdr, "-" * len(hdr)]

    def cell(vals, fmt):
        if not vals:
            return "-"
        iv = mean_ci(vals)
        if iv.n < 2:
            return fmt.format(iv.mean)
        return f"{fmt.format(iv.mean)} [{fmt.format(iv.lo)}, {fmt.format(iv.hi)}]"

    for r in rows:
        cur = [c for c in r["runs"]["cur"] if c and "error" not in c]
        pairs = [(c, f) for c, f in zip(r["runs"]["cur"], r["runs"]["ref"])
                 if c and f and "error" not in c and "error" not in f and f.get("req_per_s")]
        lines.append(f"{r['label']:<44} {cell([c['req_per_s'] for c in cur], '{:.0f}'):>28} "
                     f"{cell([c['req_per_s'] / f['req_per_s'] for c, f in pairs], '{:.2f}'):>24} "
                     f"{cell([c['cost_vs_first'] for c in cur if 'cost_vs_first' in c], '{:.2f}'):>24}")
    return "\n".join(lines)


def format_targets(ts: list[dict], quick: bool) -> str:
    lines = ["TARGETS" + (" (--quick: small stand-ins, indicative only -- not the target scenarios)"
                          if quick else " (issue #10)")]
    for t in ts:
        val = "-" if t["value"] is None else t["fmt"].format(t["value"])
        if t["value"] is None:
            st = "not measured"
        elif t["met"] is None:
            st = "uncertain (the interval straddles the bound)"
        else:
            st = "met" if t["met"] else "NOT met"
        if t.get("values") and len(t["values"]) > 1:
            lo, hi = t["fmt"].format(t["low"]), t["fmt"].format(t["high"])
            val += f" [{lo.split()[0]}, {hi.split()[0]}]"
            st += f"  ({len(t['values'])} runs: " + ", ".join(t["fmt"].format(v).split()[0] for v in t["values"]) + ")"
        lines.append(f"  {t['target']:<62} {val:>12}  {st}")
    return "\n".join(lines)


# ------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (well under 2 min)")
    ap.add_argument("--ref", default=DEFAULT_REF, help=f"reference commit (default {DEFAULT_REF})")
    ap.add_argument("--no-ref", action="store_true", help="do not run the reference")
    ap.add_argument("--skip-large", action="store_true", help="skip the 1,152-GPU scenario")
    ap.add_argument("--timeout", type=float, default=1500.0, help="per-scenario process timeout, s")
    ap.add_argument("--trunc-sim-s", type=float, default=400.0,
                    help="simulated seconds for the truncated 1,152-GPU comparison (default 400: past the start-up burst, ~1-2 min for the reference)")
    ap.add_argument("--ref-full-ladder", action="store_true",
                    help="also run the reference on the largest ladder rung (slow)")
    ap.add_argument("--only", help="run only the scenarios whose key contains this (e.g. paper, ladder)")
    ap.add_argument("--json", help="also write all rows (and targets) as JSON here")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every scenario this many times (all scenarios, then all again: each "
                         "repetition's ratios and growth come from runs close in time) and report "
                         "each figure as its mean with a 95%% t-interval; a target is then met or "
                         "NOT met only when its whole interval is on one side of the bound, "
                         "'uncertain' when the interval straddles it")
    ap.add_argument("--jobs", type=int, default=1,
                    help="run up to this many scenario processes at once (default 1: one after "
                         "another).  Give each its own core: on a machine with cores to spare "
                         "(e.g. 16), --jobs 8 measures current and reference side by side under the "
                         "same conditions; more jobs than free cores distorts every figure")
    a = ap.parse_args(argv)
    if a.jobs < 1:
        print(f"bench_sim: error: --jobs must be >= 1 (got {a.jobs})", file=sys.stderr)
        return 2
    if a.repeat < 1:
        print(f"bench_sim: error: --repeat must be >= 1 (got {a.repeat})", file=sys.stderr)
        return 2

    ref_root = None
    if not a.no_ref:
        try:
            ref_root = extract_ref(a.ref)
        except BenchError as e:
            print(f"bench_sim: error: {e}", file=sys.stderr)
            return 2
        print(f"reference {a.ref} = {ref_root.name[:12]}, extracted at {ref_root}", file=sys.stderr)
    scen = scenarios(a.quick, a.skip_large, a.trunc_sim_s, a.ref_full_ladder)
    if a.only:
        scen = [s for s in scen if a.only in s["key"]]
    rows = []
    tasks = []  # (row, side, label, root, repetition): every process to run, in the sequential order
    for s in scen:
        row = {k: s.get(k) for k in ("key", "group", "label", "overrides", "ref_note")}
        row["runs"] = {"cur": [None] * a.repeat, "ref": [None] * a.repeat}
        rows.append(row)
    for i in range(a.repeat):
        for row, s in zip(rows, scen):
            tasks.append((row, "cur", "current", REPO, i))
            if ref_root is not None and s.get("ref", True):
                tasks.append((row, "ref", "ref", ref_root, i))

    def run(task):
        row, side, label, root, i = task
        row["runs"][side][i] = r = measure(row["overrides"], root, a.timeout)
        _log(row["label"], label + (f" {i + 1}/{a.repeat}" if a.repeat > 1 else ""), r)

    if a.jobs == 1:
        for t in tasks:
            run(t)
    else:  # each scenario is its own process: threads only wait for them
        with ThreadPoolExecutor(a.jobs) as ex:
            list(ex.map(run, tasks))
    for i in range(a.repeat):
        add_ladder_growth(repetition(rows, i))  # growth within each repetition
    for row in rows:  # the main table shows the first repetition
        row["cur"], row["ref"] = row["runs"]["cur"][0], row["runs"]["ref"][0]

    impls = sorted({r["cur"].get("implementation") for r in rows if "error" not in r["cur"]} - {None})
    print(f"current: {REPO} (dpsim.net implementation: {', '.join(impls) or '?'})")
    if ref_root is not None:
        print(f"reference: {a.ref} ({ref_root.name[:12]}) from {ref_root}")
    print("wall s = simulation loop (summary sim_wall_s; req/s uses it); total s = build + simulation;"
          " events = summary['events'] as each version defines it\n")
    print(table(rows) if a.repeat == 1 else "REPETITION 1\n" + table(rows))
    if a.repeat > 1:
        print()
        print(repeat_table(rows, a.repeat))
    ts = targets(rows, a.quick) if a.repeat == 1 else repeated_targets(rows, a.quick, a.repeat)
    print()
    print(format_targets(ts, a.quick))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"ref": None if ref_root is None else {"commit": a.ref, "sha": ref_root.name},
                       "quick": a.quick, "repeat": a.repeat, "rows": rows,
                       "targets": [{k: v for k, v in t.items() if k not in ("fmt", "ok")} for t in ts]},
                      fh, indent=2)
    return 1 if any("error" in c for r in rows for c in r["runs"]["cur"]) else 0


def _log(label, side, r):
    if "error" in r:
        print(f"  {label} [{side}]: ERROR {r['error']}", file=sys.stderr)
    else:
        print(f"  {label} [{side}, {r['implementation']}]: {r['requests']} requests in "
              f"{r['sim_wall_s']:.1f} s ({r['req_per_s']:.0f} req/s, {r['rss_mib']:.0f} MiB)",
              file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
