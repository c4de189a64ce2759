"""Where the simulation's time goes, from a ``py-spy record --native -f raw`` profile.

cProfile cannot see inside compiled (Cython) code and inflates Python calls; py-spy samples the
running process, native frames included, so compiled functions are named by their source.

    py-spy record --native -r 200 -f raw -o spy.txt -- python -m dpsim experiment=offline \\
        model=ds660b cluster.prefill_nodes=2 cluster.decode_nodes=4 workload.mal=64k \\
        workload.agents=512 output.plots=false output.parquet=false hydra.run.dir=/tmp/spy-run
    python benchmarks/spy_breakdown.py spy.txt            # shares inside Simulation.run
    python benchmarks/spy_breakdown.py spy.txt --all      # shares of the whole process

Each sample is charged to its innermost frame that names a source file (``file.py``/``.pyx``,
compiled or not): by file (module shares) and by function (top 30).
"""
from __future__ import annotations

import argparse
import collections
import re

_SRC = re.compile(r"\(([^():]+\.(?:py|pyx|pxd))(?::\d+)?\)")


def breakdown(path: str, only_run: bool = True, top: int = 30):
    by_file: collections.Counter = collections.Counter()
    by_fn: collections.Counter = collections.Counter()
    total = kept = 0
    with open(path) as f:
        for line in f:
            line = line.rstrip()
            if not line:
                continue
            stack, n = line.rsplit(" ", 1)
            n = int(n)
            total += n
            if only_run and "Simulation.run" not in stack:
                continue
            kept += n
            frames = [fr for fr in stack.split(";") if _SRC.search(fr)]
            leaf = frames[-1] if frames else stack.split(";")[-1]
            m = _SRC.search(leaf)
            by_file[m.group(1) if m else leaf] += n
            by_fn[re.sub(r":\d+\)", ")", leaf)] += n
    return total, kept, by_file.most_common(top), by_fn.most_common(top)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raw", help="py-spy raw (collapsed stacks) output")
    ap.add_argument("--all", action="store_true", help="the whole process, not only Simulation.run")
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args(argv)
    total, kept, files, fns = breakdown(a.raw, not a.all, a.top)
    if not kept:
        raise SystemExit(f"{a.raw}: no samples{'' if a.all else ' inside Simulation.run (try --all)'}")
    print(f"{kept} of {total} samples ({100 * kept / total:.0f}%){'' if a.all else ' inside Simulation.run'}")
    print("\nby file:")
    for k, v in files:
        print(f"  {100 * v / kept:5.1f}%  {k}")
    print("\nby function (innermost frame with a source file):")
    for k, v in fns:
        print(f"  {100 * v / kept:5.1f}%  {k}")


if __name__ == "__main__":
    main()
