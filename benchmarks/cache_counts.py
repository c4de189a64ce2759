"""Deterministic cost counts: instructions and simulated cache (or TLB) misses per simulated
request, by function, for two scenarios run under valgrind's callgrind.

Wall time on this machine varies ~2.7x between identical runs; these counts do not vary at all
(same config, same build, PYTHONHASHSEED fixed: the same counts), so a change of a few per cent, or the growth of one
function from a small cluster to a large one, is visible.  Think of it as weighing the parcels
instead of timing the courier: the scale does not care about the traffic.  But the scale has no
prefetcher: a change can lower the counts and still run slower (session 20's 16-byte heap
entries did, benchmarks/README.md), so keep a change only after alternating wall-time runs.

    python benchmarks/cache_counts.py                    # 1 MiB L2 model, 12P24D vs 48P96D
    python benchmarks/cache_counts.py --model tlb        # pages: 64-entry L1 DTLB, 2,048-entry STLB
    python benchmarks/cache_counts.py --model none       # instructions only (faster)
    python benchmarks/cache_counts.py --small 2,4 --big 12,24 --max-sim-s 50
    python benchmarks/cache_counts.py --big-root /other/checkout   # the same scenario, another tree
    python benchmarks/cache_counts.py --model l2 --ll-mib 2 --ll-ways 16   # a larger cache: how
                                                     # much of the growth is the cache's size
    python benchmarks/cache_counts.py --keep /tmp/cg   # keep callgrind's files (callgrind_annotate)

Defaults: the ladder's rungs (48K MAL, 1024 agents per 2P4D, DS 660B DualPath offline) over their
first ``--max-sim-s`` simulated seconds (100: the same per-node load and phase at every size).
Collection is limited to the compiled event loop (``EventLoop.run``), so build, trace loading
and the request table are not counted: the compiled build must be in place.  Each run takes
3-8 minutes.  Session 17's counts: benchmarks/results/session17_callgrind_cache_sim.txt.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_sim  # noqa: E402  (the child script and the scenario builder)

#: Simulated caches (valgrind's D1 and LL), by model name.  ``l2``: a 1 MiB 8-way cache of
#: 64-byte lines, the size of this machine's per-core L2; ``llc``: 16 MiB, a share of the
#: last level; ``tlb``: 4 KiB "lines", a 64-entry L1 DTLB and a 2,048-entry STLB (assumption:
#: the sizes of a recent x86 core; callgrind has no TLB model of its own).
MODELS = {
    "none": [],
    "l2": ["--cache-sim=yes", "--LL=1048576,8,64"],
    "llc": ["--cache-sim=yes", "--LL=16777216,16,64"],
    "tlb": ["--cache-sim=yes", "--D1=262144,64,4096", "--LL=8388608,8,4096"],
}
EVENTS = ("Ir", "D1mr", "D1mw", "DLmr", "DLmw")


def parse_annotate(text: str, n_events: int) -> dict[str, list[int]]:
    """``callgrind_annotate`` output -> {function: [counts per event]} (summed over files; the
    PROGRAM TOTALS line left out).  ``n_events`` is how many count columns precede the name."""
    num = r"([\d,]+|\.)(?:\s+\([^)]*\))?\s+"
    pat = re.compile(r"^\s*" + num * n_events + r"(\S+)")
    out: dict[str, list[int]] = {}
    for line in text.splitlines():
        m = pat.match(line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        vals = [0 if g == "." else int(g.replace(",", "")) for g in m.groups()[:n_events]]
        fn = m.group(n_events + 1).split(":")[-1]
        acc = out.setdefault(fn, [0] * n_events)
        for i, v in enumerate(vals):
            acc[i] += v
    return out


def per_request(counts: dict[str, list[int]], requests: int) -> dict[str, list[float]]:
    if not requests:
        raise ValueError("no request completed in the counted window: raise --max-sim-s")
    return {fn: [v / requests for v in vals] for fn, vals in counts.items()}


def totals(pr: dict[str, list[float]]) -> list[float]:
    n = len(next(iter(pr.values()))) if pr else 0
    return [sum(v[i] for v in pr.values()) for i in range(n)]


def growth(small: dict, big: dict, col: int, top: int) -> list[tuple[float, str, float, float]]:
    """Functions by the growth of column ``col`` (for cache models, ``col`` is the first of a
    read/write pair, summed), largest first: (big - small, name, small, big)."""
    def m(v):
        return v[col] + (v[col + 1] if col > 0 else 0.0)
    zero = [0.0] * 5
    rows = [(m(big.get(k, zero)) - m(small.get(k, zero)), k, m(small.get(k, zero)), m(big.get(k, zero)))
            for k in set(small) | set(big)]
    rows.sort(key=lambda r: (-r[0], r[1]))
    return rows[:top]


def check_ready(roots) -> None:
    """Before any run (each takes minutes): valgrind is there, and every checkout imports its
    compiled build (EventLoop.run must be a C function to be counted alone)."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        raise SystemExit("cache_counts: valgrind (with callgrind_annotate) is not installed; "
                         "install it (e.g. apt-get install valgrind) or use bench_sim.py")
    for root in roots:
        p = subprocess.run([sys.executable, "-c", "import os, dpsim.net as n; "
                            "print(n.IMPLEMENTATION, os.path.realpath(n.__file__))"],
                           capture_output=True, text=True, cwd=str(root), env=bench_sim.child_env(root))
        impl, _, where = p.stdout.strip().partition(" ")
        if not where.startswith(str(root) + os.sep):
            raise SystemExit(f"cache_counts: {root} holds no dpsim (it imported "
                             f"{where or 'nothing'}): give a checkout's root")
        if impl != "compiled":
            raise SystemExit("cache_counts: the compiled build is not in place in " + str(root) +
                             ": run `python setup.py build_ext --inplace` there")


def model_args(model: str, ll_mib: float | None = None, ll_ways: int = 8) -> list[str]:
    """valgrind's cache options for ``model``; ``ll_mib`` (with ``ll_ways``) resizes the last
    level of the ``l2`` or ``llc`` model (a power of two of 64-byte lines per way is required by
    valgrind: e.g. 0.5, 1, 2, 4, 8 MiB at 8 or 16 ways)."""
    args = list(MODELS[model])
    if ll_mib is not None:
        if model not in ("l2", "llc"):
            raise ValueError(f"--ll-mib resizes the l2 or llc model, not {model!r}")
        size = int(ll_mib * 1024 * 1024)
        sets = size // (64 * ll_ways) if ll_ways > 0 else 0
        if ll_ways <= 0 or sets <= 0 or size != sets * 64 * ll_ways or sets & (sets - 1):
            raise ValueError(f"--ll-mib {ll_mib} at {ll_ways} ways is not a power-of-two number of "
                             f"64-byte sets (try 0.5, 1, 2, 4 or 8 MiB)")
        args = [x for x in args if not x.startswith("--LL=")] + [f"--LL={size},{ll_ways},64"]
    return args


def count(root: Path, overrides: list[str], model: str, timeout: float, cache: list[str] | None = None,
          keep: Path | None = None) -> tuple[dict, dict]:
    """Run one scenario from ``root`` under callgrind; its result row and per-function counts
    (``cache``: valgrind's cache options, default the model's; ``keep``: a path to copy
    callgrind's file to)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cache = model_args(model) if cache is None else cache
        cmd = ["valgrind", "--tool=callgrind", *cache, "--toggle-collect=*EventLoop_run*",
               f"--callgrind-out-file={out}", sys.executable, "-c", bench_sim.CHILD,
               json.dumps({"root": str(root), "overrides": overrides})]
        env = bench_sim.child_env(root)
        env["PYTHONHASHSEED"] = "0"  # str hashes steer dict probing: fixed, the counts repeat exactly
        # No huge pages: the child would re-exec itself to set GLIBC_TUNABLES, and valgrind does
        # not follow an exec (the counts would come from nothing); a simulated cache has no TLB.
        env["DPSIM_HUGE_PAGES"] = "0"
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(root), env=env)
        row = None
        for line in p.stdout.splitlines():
            if line.startswith(bench_sim.MARK):
                row = json.loads(line[len(bench_sim.MARK):])
        if p.returncode != 0 or row is None:
            raise SystemExit(f"cache_counts: the run failed (exit {p.returncode}): "
                             f"{p.stderr.strip().splitlines()[-1] if p.stderr.strip() else 'no output'}")
        n = 1 if model == "none" else 5
        ann = subprocess.run(["callgrind_annotate", f"--show={','.join(EVENTS[:n])}", "--threshold=100",
                              "--auto=no", str(out)], capture_output=True, text=True, check=True).stdout
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out, keep)
    return row, parse_annotate(ann, n)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="l2")
    ap.add_argument("--small", default="12,24", help="P,D of the first scenario (default 12,24)")
    ap.add_argument("--big", default="48,96", help="P,D of the second scenario (default 48,96)")
    ap.add_argument("--max-sim-s", type=float, default=100.0)
    ap.add_argument("--small-root", default=str(HERE.parent), help="checkout the first runs from")
    ap.add_argument("--big-root", default=str(HERE.parent), help="checkout the second runs from")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--ll-mib", type=float, help="resize the model's last level (l2 or llc), MiB")
    ap.add_argument("--ll-ways", type=int, default=8, help="its ways, with --ll-mib (default 8)")
    ap.add_argument("--keep", help="keep each run's callgrind file in this folder (<P>P<D>D.callgrind)")
    a = ap.parse_args(argv)
    if not a.max_sim_s > 0:
        ap.error(f"--max-sim-s must be > 0 (got {a.max_sim_s})")
    plan = []
    for pd, root in ((a.small, a.small_root), (a.big, a.big_root)):
        try:
            P, D = (int(x) for x in pd.split(","))
        except ValueError:
            ap.error(f"--small/--big take P,D as two integers, e.g. 12,24 (got {pd!r})")
        plan.append((P, D, Path(root).resolve()))
    try:
        cache = model_args(a.model, a.ll_mib, a.ll_ways)
    except ValueError as e:
        ap.error(str(e))
    check_ready(sorted({r for _, _, r in plan}))
    runs = []
    for P, D, root in plan:
        ov = bench_sim._offline(P, D, "48k", round(1024 * (P + D) / 6), [f"experiment.max_sim_s={a.max_sim_s}"])
        keep = Path(a.keep) / f"{P}P{D}D.callgrind" if a.keep else None
        row, counts = count(root, ov, a.model, a.timeout, cache, keep)
        runs.append((f"{P}P{D}D", row, per_request(counts, row["requests"])))
        print(f"{P}P{D}D from {root}: {row['requests']} requests, {row['events']} events", flush=True)
    (ns, _, s), (nb, _, b) = runs
    ts, tb = totals(s), totals(b)
    names = ["instructions"] if a.model == "none" else ["instructions", "D1 misses", "model misses"]
    idx = [0] if a.model == "none" else [0, 1, 3]

    def tot(t, i):
        return t[i] + (t[i + 1] if i > 0 else 0.0)
    label = a.model if a.ll_mib is None else f"{a.model}, {a.ll_mib:g} MiB {a.ll_ways}-way"
    print(f"\nper simulated request ({label} model)      {ns:>12} {nb:>12}   ratio")
    for name, i in zip(names, idx):
        print(f"  {name:38s} {tot(ts, i):12.1f} {tot(tb, i):12.1f}   {tot(tb, i) / max(tot(ts, i), 1e-12):.3f}")
    col = 0 if a.model == "none" else 3
    print(f"\nlargest growth per request ({'instructions' if col == 0 else 'model misses'}), "
          f"{ns} -> {nb}:")
    for d, fn, x, y in growth(s, b, col, a.top):
        print(f"  {d:+10.2f} {x:10.2f} {y:10.2f}  {fn[:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
