"""Simulator speed and memory.

Prints, per scenario: simulated requests, wall seconds, simulated requests per wall-second,
events per wall-second, transfers, peak RSS; and the cost per request relative to the
smallest cluster (linear growth with requests means the ratio stays near 1).

    python benchmarks/bench_sim.py                # default + 2P4D 1024 agents + scaling ladder
    python benchmarks/bench_sim.py --quick        # smaller sizes (CI smoke)

Each scenario runs in its own process so peak RSS is its own.  Targets (issue #2): >= 5,000
simulated requests per wall-second on one core, peak RSS < 2 GB, cost linear in requests
from 1P1D to 48P96D.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time


def _one(overrides: list[str], q) -> None:
    sys.path.insert(0, ".")
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from dpsim.runner import run

    with initialize_config_module(config_module="dpsim.conf", version_base=None):
        cfg = OmegaConf.to_container(compose(config_name="config", overrides=overrides), resolve=True)
    cfg["output"]["plots"] = False
    t0 = time.perf_counter()
    summ, sim = run(cfg, out_dir=None)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # MiB (Linux: KiB)
    q.put({"requests": summ["requests_completed"], "failed": summ["requests_failed"],
           "sim_wall_s": summ["sim_wall_s"], "total_wall_s": wall, "events": summ["events"],
           "transfers": summ["transfers"], "rss_mib": rss, "jct_s": summ["jct_s"]})


def measure(name: str, overrides: list[str]) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_one, args=(overrides, q))
    p.start()
    import queue
    while True:  # never hang on a child that died before reporting
        try:
            res = q.get(timeout=5)
            break
        except queue.Empty:
            if not p.is_alive():
                raise RuntimeError(f"benchmark scenario {name!r} died (exit code {p.exitcode})")
    p.join()
    res["name"] = name
    res["req_per_s"] = res["requests"] / res["sim_wall_s"]
    res["events_per_s"] = res["events"] / res["sim_wall_s"]
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--json", help="also write the rows as JSON here")
    a = ap.parse_args(argv)
    scen = [("default (dpsim, no args)", [])]
    if a.quick:
        scen.append(("2P4D bundled, 128 agents", ["cluster.prefill_nodes=2", "cluster.decode_nodes=4",
                                                  "workload.agents=128"]))
        ladder = [(1, 1, 32), (2, 4, 192)]
    else:
        scen.append(("2P4D bundled, 1024 agents", ["cluster.prefill_nodes=2", "cluster.decode_nodes=4",
                                                   "workload.agents=1024"]))
        scen.append(("2P4D synthetic 64K, 1024 agents", ["experiment=offline", "model=ds660b",
                                                         "cluster.prefill_nodes=2", "cluster.decode_nodes=4",
                                                         "workload.mal=64k", "workload.agents=1024"]))
        ladder = [(1, 1, 64), (4, 8, 768), (12, 24, 2304), (48, 96, 9216)]
    for P, D, n in ladder:
        scen.append((f"ladder {P}P{D}D, {n} agents (DS 27B, 32K)",
                     ["experiment=offline", "model=ds27b", f"cluster.prefill_nodes={P}",
                      f"cluster.decode_nodes={D}", "workload.mal=32k", f"workload.agents={n}",
                      "workload.n_trajectories=500"]))
    rows = []
    for name, ov in scen:
        r = measure(name, ov)
        rows.append(r)
        print(f"  ran {name}: {r['requests']} requests in {r['sim_wall_s']:.1f}s", file=sys.stderr)
    ladder_rows = [r for r in rows if r["name"].startswith("ladder")]
    base = ladder_rows[0]["sim_wall_s"] / ladder_rows[0]["requests"] if ladder_rows else None
    hdr = (f"{'scenario':<48} {'requests':>9} {'wall s':>8} {'req/s':>8} {'events/s':>9} "
           f"{'transfers':>9} {'RSS MiB':>8} {'cost/req vs first':>17}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        ratio = ""
        if r["name"].startswith("ladder") and base:
            ratio = f"{(r['sim_wall_s'] / r['requests']) / base:.2f}x"
        print(f"{r['name']:<48} {r['requests']:>9} {r['sim_wall_s']:>8.2f} {r['req_per_s']:>8.0f} "
              f"{r['events_per_s']:>9.0f} {r['transfers']:>9} {r['rss_mib']:>8.0f} {ratio:>17}")
    print(f"\ntargets: >= 5000 req/s on one core; peak RSS < 2048 MiB; cost/req ratio ~1 across the ladder")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
