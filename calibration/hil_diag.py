"""Why the HIL replay's storage reads can run slower than the same disk measured alone: an A/B
on one machine (issue #12; ``calibration/reports/h200/first_one_call/REPORT.md`` uses it).

    python -m dpsim.calibration.hil_diag --out DIR [--device cuda|cpu] [--devices 0] [--system dualpath]
                                   [--turns 144] [--profile PROFILE.yaml] [--file-dir DIR]

One process, one :class:`dpsim.hw.replay.HardwareBackend` (the replay's buffers, file and threads), in
this order:

1. ``isolated``: single reads of 512 MiB and 1 GiB and two concurrent 512 MiB reads through the
   backend's own code path (``measure``), no simulation running;
2. ``hil``: one HIL replay of ``--system`` (as ``python -m dpsim.calibration.hil`` runs it);
3. ``trace_all``: every transfer of that replay re-issued at the wall time it started there, with
   the same size, operation and pacing, and no simulation running (the main thread only sleeps
   until the next start);
4. ``trace_storage``: the same with only its storage reads and writes;
5. ``hil_poll1ms``: the HIL replay again with the backend's completion poller every 1 ms instead
   of 100 us (less work on the simulation's thread);
6. ``isolated_after``: step 1 again (the disk's drift over the run).

Every ``os.preadv`` / ``os.pwritev`` the backend issues is timed (thread, call, return), so for
each condition the report gives the reads' aggregate throughput by reads in flight and the idle
gap between one request's return and the same thread's next request (per-request overhead on
the host side, where the Python threads resubmit).  If the reads are slow in ``hil`` but not in
``trace_all``, the simulation running beside them costs them; if also slow in ``trace_storage``,
it is the disk under the replay's load.

Writes ``DIR/diag.json`` (everything), ``DIR/reads.csv`` (one row per storage read per
condition) and prints a table.

``--from-transfers transfers.csv --window S``: instead, the storage transfers that a committed
replay (``dpsim.calibration.hil``'s ``transfers.csv``) started in its first S seconds, re-issued at those
times with the writes (``reads+writes``) and without them (``reads``), alternating twice
(reads, reads+writes, reads, reads+writes), so each read's time with and without the writes
around it can be paired.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["IoTimer", "trace_replay", "depth_throughput", "request_gaps", "records_from_transfers",
           "paired_reads", "main"]


class IoTimer:
    """Stand-in for the ``os`` module inside :mod:`dpsim.hw.replay` that times every preadv/pwritev
    (thread id, call time, return time, bytes) while ``on``; everything else is ``os``'s."""

    def __init__(self):
        self.rows: list = []
        self.on = False
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(os, name)

    def _timed(self, fn, write, *a):
        t = time.perf_counter()
        n = fn(*a)
        if self.on:
            r = (threading.get_ident(), t, time.perf_counter(), n, write)
            with self._lock:
                self.rows.append(r)
        return n

    def preadv(self, *a):
        return self._timed(os.preadv, False, *a)

    def pwritev(self, *a):
        return self._timed(os.pwritev, True, *a)

    def take(self) -> pd.DataFrame:
        with self._lock:
            rows, self.rows = self.rows, []
        return pd.DataFrame(rows, columns=["thread", "t_call", "t_ret", "nbytes", "write"])


def request_gaps(io: pd.DataFrame, max_gap_s: float = 0.05) -> dict:
    """Per thread, the idle time between a request's return and the same thread's next call
    (gaps over ``max_gap_s`` are the thread waiting for new work, not resubmission), and each
    request's service time (call to return)."""
    if io is None or not len(io):
        return {"n": 0}
    out = {}
    for write, g in io.groupby("write"):
        gaps = []
        for _, t in g.sort_values("t_call").groupby("thread"):
            d = t.t_call.to_numpy()[1:] - t.t_ret.to_numpy()[:-1]
            gaps.append(d[(d >= 0) & (d < max_gap_s)])
        gaps = np.concatenate(gaps) if gaps else np.array([])
        svc = (g.t_ret - g.t_call).to_numpy()
        key = "write" if write else "read"
        out[key] = {"n_requests": int(len(g)), "service_ms_median": float(np.median(svc) * 1e3),
                    "gap_us_median": float(np.median(gaps) * 1e6) if len(gaps) else math.nan,
                    "gap_us_p90": float(np.percentile(gaps, 90) * 1e6) if len(gaps) else math.nan,
                    "gap_over_service": float(np.sum(gaps) / np.sum(svc)) if len(gaps) else math.nan}
    return out


def depth_throughput(reads: pd.DataFrame, writes: pd.DataFrame | None = None) -> dict:
    """Time-weighted aggregate read throughput (GB/s) by the number of reads in flight (1, 2, 3,
    >= 4), only over times no write is in flight; and the seconds spent at each depth.  ``reads``
    / ``writes``: columns t0, t1 (s), nbytes."""
    if reads is None or not len(reads):
        return {}
    w = writes if writes is not None and len(writes) else pd.DataFrame(columns=["t0", "t1"])
    ev = np.unique(np.concatenate([reads.t0, reads.t1, w.t0.to_numpy(float), w.t1.to_numpy(float)]))
    rate = (reads.nbytes / (reads.t1 - reads.t0)).to_numpy()
    r0, r1 = reads.t0.to_numpy(), reads.t1.to_numpy()
    w0, w1 = w.t0.to_numpy(float), w.t1.to_numpy(float)
    acc: dict = {}
    for a, b in zip(ev[:-1], ev[1:]):
        m = 0.5 * (a + b)
        act = (r0 <= m) & (r1 > m)
        k = int(act.sum())
        if k == 0 or ((w0 <= m) & (w1 > m)).any():
            continue
        k = min(k, 4)
        s = acc.setdefault(k, [0.0, 0.0])
        s[0] += rate[act].sum() * (b - a)
        s[1] += b - a
    return {f"k{k}{'+' if k == 4 else ''}": {"GBps": v[0] / v[1] / 1e9, "seconds": v[1]}
            for k, v in sorted(acc.items()) if v[1] > 0}


def trace_replay(be, records: list, kinds=None) -> list:
    """Re-issue ``records`` (``HardwareBackend.records`` of a replay) at the wall times they
    started there, each with its operation, node, GPU, size and pacing, on the backend's worker
    pool; the calling thread only sleeps until the next start.  ``kinds``: the operations to keep
    (e.g. ``("file_read", "file_write")``).  Returns one dict per transfer with its measured
    seconds."""
    from ..hw.replay import INF, Op

    recs = sorted((r for r in records if kinds is None or r["op"] in kinds), key=lambda r: r["t_start"])
    out: list = []
    lock = threading.Lock()

    def one(r, op, size, rate, ts):
        be._run(op, size, rate, ts)
        t1 = time.perf_counter()
        with lock:
            out.append({"id": r["id"], "route_class": r["route_class"], "op": r["op"], "size": r["size"],
                        "t_start": ts - t0, "hw_s": t1 - ts, "hil_hw_s": r["hw_s"]})
    futs = []
    t0 = time.perf_counter()
    for r in recs:
        d = t0 + r["t_start"] - time.perf_counter()
        if d > 0:
            time.sleep(d)
        op = Op(r["route_class"], r["op"], int(r["node"]), None if r.get("gpu") is None else int(r["gpu"]))
        rate = r["max_rate"] if r["max_rate"] is not None and r["max_rate"] < INF else INF
        futs.append(be._pool.submit(one, r, op, int(math.ceil(r["size"])), rate, time.perf_counter()))
    for f in futs:
        f.result(timeout=600)
    return out


def records_from_transfers(path, window_s: float) -> list:
    """Storage records (``trace_replay``'s input) from a replay's ``transfers.csv``: the reads and
    writes it started in its first ``window_s`` seconds; host regions alternate by transfer id
    (the file and the pinned pool are the same for both)."""
    d = pd.read_csv(path)
    d = d[d.op.isin(["file_read", "file_write"]) & (d.t_start < window_s)]
    return [{"id": int(r.id), "route_class": r.route_class, "op": r.op, "node": int(r.id) % 2, "gpu": None,
             "size": float(r["size"]), "max_rate": math.inf, "t_start": float(r.t_start),
             "hw_s": float(r.hw_s)} for _, r in d.iterrows()]


def paired_reads(a: list, b: list) -> dict:
    """Per read id, time in ``b`` over time in ``a`` (two trace replays of the same reads)."""
    ta = {r["id"]: r["hw_s"] for r in a if r["op"] == "file_read"}
    tb = {r["id"]: r["hw_s"] for r in b if r["op"] == "file_read"}
    ids = sorted(set(ta) & set(tb))
    ratio = np.array([tb[i] / ta[i] for i in ids])
    return {"n": len(ids), "median_ratio": float(np.median(ratio)) if len(ids) else math.nan,
            "sum_ratio": float(sum(tb[i] for i in ids) / sum(ta[i] for i in ids)) if ids else math.nan}


def _isolated(be, reps: int = 3) -> dict:
    from ..hw.replay import Op

    out = {}
    for n in (512 << 20, 1 << 30):
        ts = [be.measure([Op("storage_read", "file_read", 0)], n)[0] for _ in range(reps)]
        out[f"1x{n >> 20}MiB"] = float(np.median([n / t for t in ts]) / 1e9)
    ts = [max(be.measure([Op("storage_read", "file_read", i) for i in (0, 1)], 512 << 20)) for _ in range(reps)]
    out["2x512MiB"] = float(np.median([2 * (512 << 20) / t for t in ts]) / 1e9)
    return out


def _frame_from_records(records: list, ops) -> pd.DataFrame:
    rows = [r for r in records if r["op"] in ops]
    return pd.DataFrame({"t0": [r["t_start"] for r in rows],
                         "t1": [r["t_start"] + r["hw_s"] for r in rows],
                         "nbytes": [float(r["size"]) for r in rows]})


def main(argv=None) -> int:
    from .suites import parse_bytes

    ap = argparse.ArgumentParser(prog="python -m dpsim.calibration.hil_diag", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--devices", default="0")
    ap.add_argument("--system", default="dualpath")
    ap.add_argument("--agents", type=int, default=16)
    ap.add_argument("--turns", type=int, default=144)
    ap.add_argument("--mal", default="48k")
    ap.add_argument("--gen-scale", type=float, default=0.25)
    ap.add_argument("--profile", default=None, help="link capacities the scheduler reads (default: a probe)")
    ap.add_argument("--file-dir", default=None)
    ap.add_argument("--host-pool", default="8GiB")
    ap.add_argument("--dev-pool", default="4GiB")
    ap.add_argument("--file-bytes", default="4GiB")
    ap.add_argument("--max-wall-s", type=float, default=120.0)
    ap.add_argument("--skip", default="", help="comma list of conditions to leave out")
    ap.add_argument("--from-transfers", default=None, metavar="CSV",
                    help="re-issue this replay's storage transfers with and without its writes (see above)")
    ap.add_argument("--window", type=float, default=12.0, help="--from-transfers: the first S seconds")
    a = ap.parse_args(argv)

    from ..hw import replay as hr
    from .hil import _devices, compose, hil_config, probe, run_case, scenario_overrides
    from .profile import load_profile
    from dpsim.cluster.profile import apply_profile

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    skip = {s for s in a.skip.split(",") if s}
    timer = IoTimer()
    hr.os = timer  # the backend's file I/O goes through the timer (it forwards everything else)
    be = hr.HardwareBackend(a.device, devices=_devices(a.devices) if a.device == "cuda" else None,
                            file_dir=a.file_dir, host_pool_bytes=parse_bytes(a.host_pool),
                            dev_pool_bytes=parse_bytes(a.dev_pool), file_bytes=parse_bytes(a.file_bytes))
    be.open()
    res: dict = {"meta": {k: v for k, v in be.describe().items() if not isinstance(v, (list, dict)) or k == "gpus"},
                 "args": vars(a), "conditions": {}}
    print(f"[diag] backend open: {be.meta}", flush=True)
    frames = []
    t_all = time.perf_counter()

    def record(name, reads, writes, io, extra=None):
        d = {"depth": depth_throughput(reads, writes), "requests": request_gaps(io),
             "read_GB": float(reads.nbytes.sum() / 1e9) if len(reads) else 0.0,
             "read_seconds_sum": float((reads.t1 - reads.t0).sum()) if len(reads) else 0.0}
        d.update(extra or {})
        res["conditions"][name] = d
        if len(reads):
            f = reads.copy()
            f["condition"] = name
            frames.append(f)
        dep = " ".join(f"{k}:{v['GBps']:.2f}({v['seconds']:.1f}s)" for k, v in d["depth"].items())
        rq = d["requests"].get("read", {})
        print(f"[diag] {name}: reads {d['read_GB']:.1f} GB in {d['read_seconds_sum']:.1f} read-s; by depth {dep}; "
              f"request gap median {rq.get('gap_us_median', math.nan):.0f} us, p90 {rq.get('gap_us_p90', math.nan):.0f} us, "
              f"gap/service {rq.get('gap_over_service', math.nan):.3f}, service median "
              f"{rq.get('service_ms_median', math.nan):.2f} ms", flush=True)

    try:
        def isolated(name):
            timer.take()
            timer.on = True
            iso = _isolated(be)
            timer.on = False
            io = timer.take()
            res["conditions"][name] = {"GBps": iso, "requests": request_gaps(io)}
            rq = res["conditions"][name]["requests"].get("read", {})
            print(f"[diag] {name}: {json.dumps({k: round(v, 3) for k, v in iso.items()})} GB/s; request gap median "
                  f"{rq.get('gap_us_median', math.nan):.0f} us, gap/service {rq.get('gap_over_service', math.nan):.3f}",
                  flush=True)

        if "isolated" not in skip:
            isolated("isolated")
        if a.from_transfers:
            recs = records_from_transfers(a.from_transfers, a.window)
            runs = {}
            for i, (name, kinds) in enumerate((("reads", ("file_read",)), ("reads+writes", None)) * 2):
                timer.take()
                timer.on = True
                tr = trace_replay(be, recs, kinds)
                timer.on = False
                t = pd.DataFrame(tr, columns=["id", "route_class", "op", "size", "t_start", "hw_s", "hil_hw_s"])
                rd, wr = t[t.op == "file_read"], t[t.op == "file_write"]
                tag = f"{name}_{i // 2 + 1}"
                runs[tag] = tr
                record(tag, pd.DataFrame({"t0": rd.t_start, "t1": rd.t_start + rd.hw_s, "nbytes": rd["size"]}),
                       pd.DataFrame({"t0": wr.t_start, "t1": wr.t_start + wr.hw_s, "nbytes": wr["size"]})
                       if len(wr) else None, timer.take())
            res["paired"] = {f"reads+writes_{k} vs reads_{k}": paired_reads(runs[f"reads_{k}"], runs[f"reads+writes_{k}"])
                             for k in (1, 2)}
            res["paired"]["reads_2 vs reads_1"] = paired_reads(runs["reads_1"], runs["reads_2"])
            for k, v in res["paired"].items():
                print(f"[diag] {k}: {v['n']} reads, time ratio median {v['median_ratio']:.3f}, "
                      f"total {v['sum_ratio']:.3f}", flush=True)
            isolated("isolated_after")
            return _finish(res, frames, out, t_all)
        prof = load_profile(a.profile) if a.profile else probe(be)
        base = compose(scenario_overrides(a.system, a.mal, a.agents, a.gen_scale))
        base["cluster"]["link_profile"] = None
        cfg = hil_config(apply_profile(base, prof, a.device))

        def hil(name, poll_s):
            be.poll_s = poll_s
            be.records = []
            timer.take()
            timer.on = True
            c = run_case(cfg, "hil", backend=be, max_turns=a.turns, max_wall_s=a.max_wall_s)
            timer.on = False
            recs = list(be.records)
            record(name, _frame_from_records(recs, ("file_read",)), _frame_from_records(recs, ("file_write",)),
                   timer.take(), {"jct_s": c.summary["jct_s"], "ttft_mean_s": c.summary["ttft_s"]["mean"],
                                  "poll_s": poll_s, "requests_completed": c.summary["requests_completed"]})
            return recs

        recs = hil("hil", 1e-4)
        for name, kinds in (("trace_all", None), ("trace_storage", ("file_read", "file_write"))):
            if name in skip:
                continue
            timer.take()
            timer.on = True
            tr = trace_replay(be, recs, kinds)
            timer.on = False
            t = pd.DataFrame(tr)
            rd, wr = t[t.op == "file_read"], t[t.op == "file_write"]
            record(name, pd.DataFrame({"t0": rd.t_start, "t1": rd.t_start + rd.hw_s, "nbytes": rd["size"]}),
                   pd.DataFrame({"t0": wr.t_start, "t1": wr.t_start + wr.hw_s, "nbytes": wr["size"]}), timer.take(),
                   {"read_time_vs_hil_median": float((rd.hw_s / rd.hil_hw_s).median()) if len(rd) else math.nan})
        if "hil_poll1ms" not in skip:
            hil("hil_poll1ms", 1e-3)
        if "isolated" not in skip:
            isolated("isolated_after")
    finally:
        be.close()
        hr.os = os
    return _finish(res, frames, out, t_all)


def _finish(res, frames, out, t_all) -> int:
    res["total_s"] = time.perf_counter() - t_all
    with open(out / "diag.json", "w") as f:
        json.dump(res, f, indent=1, default=str)
    if frames:
        pd.concat(frames).to_csv(out / "reads.csv", index=False)
    print(f"[diag] wrote {out / 'diag.json'} in {res['total_s']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
