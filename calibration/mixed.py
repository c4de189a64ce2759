"""Storage under a mix of reads and a stream of writes: the suite that fits the storage write
weight (``links.file_write.storage_weight``, calibration/PROFILE.md; issue #12).

    python -m dpsim.calibration.mixed --out DIR [--file-dir DIR] [--rates 0.3,0.6,0.9] [--heldout-rates 0.6]
                                [--readers 2] [--reads 4] [--read-bytes 512MiB] [--write-bytes 64MiB]
                                [--repeats 2] [--settle-s 1]

Why: the HIL replay's storage reads run slower while its persist writes are in flight *and* in
the gaps between them (``reports/h200/first_one_call/REPORT.md`` section 4: the same 19 reads took 4.72 s alone
and 5.43-6.11 s with the replay's 49 writes around them).  A write costs the disk more than its
own bytes while it is acknowledged (the lent VMs' disk takes writes fast, 3.2 GB/s alone, and
writes them back later).  The ``sizes``/``concurrency`` suites never see that cost: they time
reads alone, and read/write pairs whose write-back falls after the timed makespan.

What runs (one process, the HIL replay's own file I/O: :class:`dpsim.hw.replay.HardwareBackend`, 1 MiB
O_DIRECT requests ``queue_depth`` (4) deep, one 4 GiB read file read sequentially, one write
file): windows of ``--readers`` threads each reading ``--reads`` x ``--read-bytes`` back to back
(R bytes in all), either alone or with one writer issuing ``--write-bytes`` writes at ``--rates``
GB/s (write k starts at k x write_bytes / rate after the window's start, or when the previous
one ends if later) until the reads are done.  Each mixed window follows its own reads-alone
window (a pair: the disk drifts by minutes, not by seconds), and ``--settle-s`` of idle time
follows each mixed window so that its write-back does not land in the next pair.  One
reads-alone window first warms up (discarded: the backend has just written its read file).

Model (the flow model with :func:`dpsim.cluster.profile.weight_storage_writes`): a window in which
the reads keep the shared storage link busy takes T = (R + w x W) / C, W = the bytes written
while the reads run (a write straddling the end counts by the fraction of it before the end).
The paired reads-alone window measures R / C at that moment, so

    T_mixed = T_alone x (1 + w x W / R)

and ``w`` is the least-squares fit of that (relative error in T_mixed) over the training rates.
Held out: the pairs at ``--heldout-rates`` (never fitted), scored by the same formula.

Writes ``DIR/mixed_raw.csv`` (one row per window) and ``DIR/mixed_meta.json`` (machine, options,
and the fit), which ``python -m dpsim.calibration fit DIR`` turns into
``links.file_write.storage_weight``.  Names are not ``raw_*``/``meta_*``: those are the
transfer tables of the other suites.
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

__all__ = ["run_window", "fit_write_weight", "load_mixed", "window_overlap_bytes", "main"]

MIXED_RAW = "mixed_raw.csv"
MIXED_META = "mixed_meta.json"


def window_overlap_bytes(writes: list, t_end: float) -> float:
    """Bytes of ``writes`` ((t0, t1, nbytes) each, seconds from the window's start) written
    before ``t_end``: a write straddling it counts by the fraction of its time before it."""
    tot = 0.0
    for t0, t1, n in writes:
        if t0 >= t_end:
            continue
        if t1 <= t_end or t1 <= t0:
            tot += n
        else:
            tot += n * (t_end - t0) / (t1 - t0)
    return tot


def run_window(be, readers: int, reads: int, read_bytes: int, write_rate_Bps: float = 0.0,
               write_bytes: int = 64 << 20) -> dict:
    """One window on an opened :class:`dpsim.hw.replay.HardwareBackend`: ``readers`` threads each
    reading ``reads`` x ``read_bytes`` back to back, with (``write_rate_Bps`` > 0) one writer
    issuing ``write_bytes`` writes at that rate until the reads end.  Returns the window's read
    makespan ``T_s``, the read bytes ``R``, the bytes written during the reads ``W`` and each
    transfer's times."""
    from ..hw.replay import INF, Op

    rd: list = []
    wr: list = []
    lock = threading.Lock()
    done = threading.Event()
    t0 = time.perf_counter()

    def reader(i):
        op = Op("storage_read", "file_read", i % 2)
        for _ in range(reads):
            a = time.perf_counter()
            be._run(op, int(read_bytes), INF, a)
            b = time.perf_counter()
            with lock:
                rd.append((a - t0, b - t0, float(read_bytes)))

    def writer():
        op = Op("storage_write", "file_write", 0)
        k = 0
        while not done.is_set():
            at = t0 + k * write_bytes / write_rate_Bps
            d = at - time.perf_counter()
            if d > 0 and done.wait(d):
                break
            a = time.perf_counter()
            be._run(op, int(write_bytes), INF, a)
            b = time.perf_counter()
            with lock:
                wr.append((a - t0, b - t0, float(write_bytes)))
            k += 1

    ths = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(readers)]
    wt = threading.Thread(target=writer, daemon=True) if write_rate_Bps > 0 else None
    if wt is not None:
        wt.start()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    T = max(b for _, b, _ in rd)
    done.set()
    if wt is not None:
        wt.join(timeout=600)
    R = float(sum(n for _, _, n in rd))
    W = window_overlap_bytes(wr, T)
    return {"T_s": T, "R_bytes": R, "W_bytes": W, "n_writes": len(wr),
            "write_Bps": W / T if T > 0 else 0.0, "read_Bps": R / T if T > 0 else 0.0,
            "reads": rd, "writes": wr}


def pairs(tab: pd.DataFrame) -> pd.DataFrame:
    """One row per (repeat, rate): the mixed window with its reads-alone partner."""
    a = tab[tab.condition == "alone"].set_index(["repeat", "rate_GBps"])
    m = tab[tab.condition == "mixed"].set_index(["repeat", "rate_GBps"])
    return m.reset_index().merge(a[["T_s"]].rename(columns={"T_s": "T_s_alone"}).reset_index(),
                                 on=["repeat", "rate_GBps"], how="inner")


def fit_write_weight(tab: pd.DataFrame) -> tuple[float, dict, pd.DataFrame]:
    """Least-squares ``w`` of ``T_mixed = T_alone (1 + w W / R)`` (relative error in T_mixed)
    over the training pairs; held-out pairs scored.  Returns (w, fit dict, pair table with
    each pair's own w and the prediction)."""
    p = pairs(tab)
    if p.empty:
        raise ValueError("no (reads alone, mixed) pairs to fit")
    a = p.T_s_alone * p.W_bytes / (p.R_bytes * p.T_s)
    b = 1.0 - p.T_s_alone / p.T_s
    tr = p.split == "train"
    if not tr.any() or float((a[tr] ** 2).sum()) <= 0.0:
        raise ValueError("no training pair with writes during the reads")
    w = float((a[tr] * b[tr]).sum() / (a[tr] ** 2).sum())
    p = p.copy()
    p["w_pair"] = (p.T_s / p.T_s_alone - 1.0) * p.R_bytes / p.W_bytes
    p["T_pred_s"] = p.T_s_alone * (1.0 + w * p.W_bytes / p.R_bytes)
    p["T_pred_w1_s"] = p.T_s_alone * (1.0 + p.W_bytes / p.R_bytes)
    p["rel_err"] = p.T_pred_s / p.T_s - 1.0
    p["rel_err_w1"] = p.T_pred_w1_s / p.T_s - 1.0
    ho = p[p.split == "heldout"]

    def score(d, col):
        e = d[col].abs()
        return {"mape": float(e.mean()) if len(d) else None, "median": float(e.median()) if len(d) else None,
                "max_err": float(e.max()) if len(d) else None}
    fit = {"form": "T_mixed = T_alone * (1 + w * W / R)  (reads keep the storage link busy: T = (R + w W) / C)",
           "n_train": int(tr.sum()), "n_heldout": int(len(ho)),
           "train": score(p[tr], "rel_err"), "heldout": score(ho, "rel_err"),
           "heldout_with_w1": score(ho, "rel_err_w1"),
           "w_pairs": [round(float(x), 4) for x in p.w_pair],
           "write_rates_GBps": sorted({round(float(x) / 1e9, 3) for x in p.write_Bps}),
           "read_alone_GBps_median": float(np.median(p.R_bytes / p.T_s_alone) / 1e9)}
    return w, fit, p


def load_mixed(d: str):
    """(window table, meta) from ``d`` if the mixed suite ran there, else (None, None)."""
    pr = os.path.join(d, MIXED_RAW)
    if not os.path.exists(pr):
        return None, None
    meta = {}
    pm = os.path.join(d, MIXED_META)
    if os.path.exists(pm):
        with open(pm) as f:
            meta = json.load(f)
    return pd.read_csv(pr), meta


def profile_entry(tab: pd.DataFrame, meta: dict) -> dict:
    """The keys ``python -m dpsim.calibration fit`` adds to ``links.file_write``: ``storage_weight``
    (the fitted w, at least 1: the flow model cannot price a write that gives capacity back)
    and ``storage_weight_fit``."""
    w, fit, _ = fit_write_weight(tab)
    fit = dict(fit)
    fit["w_fitted"] = w
    fit["source"] = (f"measured: dpsim.calibration.mixed on {meta.get('host', '?')} ({meta.get('gpu') or meta.get('cpu', '?')}, "
                     f"{meta.get('date', '?')}), {meta.get('file_dir', '?')}")
    if w < 1.0:
        fit["note"] = f"fitted w = {w:.3f} < 1: priced as 1 (a write cannot give storage capacity back in the model)"
    return {"storage_weight": max(1.0, w), "storage_weight_fit": fit}


def main(argv=None) -> int:
    from .suites import parse_bytes

    ap = argparse.ArgumentParser(prog="python -m dpsim.calibration.mixed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--file-dir", default=None)
    ap.add_argument("--rates", default="0.3,0.6,0.9", help="writer rates, GB/s (1e9 B/s)")
    ap.add_argument("--heldout-rates", default="0.6", help="rates scored, never fitted")
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--reads", type=int, default=4, help="reads per reader per window")
    ap.add_argument("--read-bytes", default="512MiB")
    ap.add_argument("--write-bytes", default="64MiB")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--settle-s", type=float, default=1.0, help="idle after each mixed window")
    ap.add_argument("--first-settle-s", type=float, default=3.0,
                    help="idle after the backend has written its read file, before the warm-up")
    ap.add_argument("--file-bytes", default="4GiB")
    ap.add_argument("--host-pool", default="2GiB")
    ap.add_argument("--seed", type=int, default=0, help="order of the rates within a repeat")
    a = ap.parse_args(argv)
    rates = [float(x) for x in a.rates.split(",") if x]
    held = {float(x) for x in a.heldout_rates.split(",") if x}
    if not rates or any(r <= 0 for r in rates):
        ap.error("--rates: positive GB/s values")
    if not set(rates) - held:
        ap.error("every rate is held out: nothing to fit")

    from ..hw import TransportUnavailable
    from ..hw.replay import HardwareBackend

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rb, wb = parse_bytes(a.read_bytes), parse_bytes(a.write_bytes)
    be = HardwareBackend("cpu", file_dir=a.file_dir, file_bytes=parse_bytes(a.file_bytes),
                         host_pool_bytes=parse_bytes(a.host_pool), dev_pool_bytes=64 << 20,
                         chunk_bytes=64 << 20)
    t_all = time.perf_counter()
    try:
        be.open()
    except TransportUnavailable as e:
        print(f"dpsim.calibration.mixed: {e}", file=sys.stderr)
        return 2
    rows = []
    rng = np.random.default_rng(a.seed)
    try:
        meta = {k: v for k, v in be.describe().items() if not isinstance(v, (list, dict))}
        print(f"[mixed] backend open in {be.meta.get('open_s', 0):.1f} s (O_DIRECT {be.o_direct}, "
              f"{meta.get('filesystem', '?')})", flush=True)
        time.sleep(a.first_settle_s)
        w0 = run_window(be, a.readers, a.reads, rb)
        print(f"[mixed] warm-up, reads alone: {w0['read_Bps'] / 1e9:.3f} GB/s (discarded)", flush=True)

        def one(rep, rate, cond):
            r = run_window(be, a.readers, a.reads, rb, rate * 1e9 if cond == "mixed" else 0.0, wb)
            row = {"repeat": rep, "rate_GBps": rate, "condition": cond,
                   "split": "heldout" if rate in held else "train", "T_s": r["T_s"], "R_bytes": r["R_bytes"],
                   "W_bytes": r["W_bytes"], "n_writes": r["n_writes"], "write_Bps": r["write_Bps"],
                   "read_Bps": r["read_Bps"], "write_s_median": float(np.median([b - a_ for a_, b, _ in r["writes"]]))
                   if r["writes"] else math.nan, "readers": a.readers, "read_bytes": rb, "write_bytes": wb}
            rows.append(row)
            pd.DataFrame(rows).to_csv(out / MIXED_RAW, index=False)  # kept if the stage is cut short
            print(f"[mixed] repeat {rep} rate {rate:g} GB/s {cond}: T {r['T_s']:.3f} s, reads "
                  f"{r['read_Bps'] / 1e9:.3f} GB/s, written {r['W_bytes'] / 1e9:.2f} GB during the reads "
                  f"({r['write_Bps'] / 1e9:.3f} GB/s, {r['n_writes']} writes)", flush=True)
        for rep in range(1, a.repeats + 1):
            for rate in rng.permutation(rates):
                one(rep, float(rate), "alone")
                one(rep, float(rate), "mixed")
                time.sleep(a.settle_s)
    finally:
        be.close()
    tab = pd.DataFrame(rows)
    tab.to_csv(out / MIXED_RAW, index=False)
    meta.update({"args": vars(a), "total_s": time.perf_counter() - t_all, "file_dir": be.file_dir,
                 "queue_depth": be.queue_depth, "file_chunk_bytes": be.fchunk, "o_direct": be.o_direct})
    try:
        w, fit, p = fit_write_weight(tab)
        meta["fit"] = fit
        meta["fit"]["w"] = w
        print(f"[mixed] write weight w = {w:.3f}; pairs' own w {fit['w_pairs']}; held-out error MAPE "
              f"{(fit['heldout']['mape'] or 0) * 100:.1f} % (w = 1 would give "
              f"{(fit['heldout_with_w1']['mape'] or 0) * 100:.1f} %)", flush=True)
    except ValueError as e:
        meta["fit_error"] = str(e)
        print(f"[mixed] no fit: {e}", flush=True)
    with open(out / MIXED_META, "w") as f:
        json.dump(meta, f, indent=1, default=str)
    print(f"[mixed] wrote {out / MIXED_RAW}, {out / MIXED_META} in {time.perf_counter() - t_all:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
