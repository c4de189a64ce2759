"""Per-request records, per-trajectory JCT, and the run summary (keys per architecture.md)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd


def request_table(sim) -> pd.DataFrame:
    from ..lifecycle.log import INT_COLS, PATHS, STATUS, TIME_COLS
    c = sim.log.columns()
    cols = {k: c[k] for k in INT_COLS[:7]}
    cols["path"] = pd.Categorical.from_codes(c["path"].astype(np.int64), categories=list(PATHS))
    for k in INT_COLS[7:]:
        cols[k] = c[k]
    for k, _a in TIME_COLS:
        cols[k] = c[k]
    df = pd.DataFrame(cols, copy=False)
    df["status"] = pd.Categorical.from_codes(c["status"].astype(np.int64), categories=list(STATUS))
    df["fail_reason"] = c["fail_reason"]
    df["ttft_s"] = df.first_token_s - df.arrival_s
    df["ttst_s"] = df.second_token_s - df.arrival_s
    g1 = (df.gen - 1).where(df.gen > 1)
    df["tpot_s"] = (df.end_s - df.first_token_s) / g1
    df["sched_wait_s"] = df.sched_s - df.arrival_s
    df["alloc_wait_s"] = df.alloc_s - df.sched_s
    df["read_s"] = df.read_end_s - df.alloc_s
    df["prefill_s"] = df.first_token_s - df.read_end_s
    return df


def trajectory_table(sim) -> pd.DataFrame:
    ags = sim.agents
    return pd.DataFrame({
        "agent": [a.aid for a in ags],
        "trajectory": [a.traj.id for a in ags],
        "rounds": [a.traj.n_rounds for a in ags],
        "rounds_done": [a.n_done for a in ags],
        "start_s": [a.t_start for a in ags],
        "end_s": [a.t_end for a in ags],
        "jct_s": [a.t_end - a.t_start for a in ags],
        "failed": [a.failed for a in ags],
    })


def _stats(x) -> dict:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"mean": None, "p50": None, "p90": None, "p99": None}
    return {"mean": float(x.mean()), "p50": float(np.percentile(x, 50)),
            "p90": float(np.percentile(x, 90)), "p99": float(np.percentile(x, 99))}


def snic_balance(sim, window_s: float | None = None) -> float:
    """Mean over sampling windows of max/avg SNIC read traffic across the nodes (windows with
    traffic only) -- the paper's storage-NIC balance metric (§S9)."""
    col = sim.metrics.columns
    idx = [i for i, c in enumerate(col) if c.startswith("snic_rx[")]
    if len(sim.metrics.rows) < 2 or not idx:
        return math.nan
    b = np.vstack(sim.metrics.rows)[:, idx]
    d = np.diff(b, axis=0)
    tot = d.sum(axis=1)
    ok = tot > 0
    if not ok.any():
        return math.nan
    d = d[ok]
    r = d.max(axis=1) / d.mean(axis=1)
    return float(r.mean())


def summary(sim, req: pd.DataFrame, traj: pd.DataFrame, mode: str) -> dict:
    done = req[req.status == "done"]
    end = float(req.end_s.max()) if len(req) and np.isfinite(req.end_s).any() else sim.env.now
    start = float(traj.start_s.min()) if len(traj) else 0.0
    jct = end - start if mode == "offline" else float(traj.jct_s.mean())
    totals = sim.metrics.total_bytes()
    cl = sim.cluster
    snic = {str(n.nid): totals.get(f"snic_rx[{n.nid}]", 0.0) for n in cl.nodes}
    span = max(sim.env.now - start, 1e-12)
    out = {
        "mode": mode,
        "jct_s": jct,
        "sim_time_s": float(sim.env.now),
        "requests_completed": int(len(done)),
        "requests_failed": int((req.status == "failed").sum()),
        "requests_unfinished": int((req.status == "unfinished").sum()),
        "requests_total": int(sim.total_requests if mode == "offline" else len(req)),
        "prompt_tokens_per_s": float(done.prompt.sum() / span),
        "generated_tokens_per_s": float(done.gen.sum() / span),
        "hit_ratio": float(done.hit.sum() / max(1, done.prompt.sum())),
        "ttft_s": _stats(done.ttft_s),
        "tpot_s": _stats(done.tpot_s),
        "ttst_s": _stats(done.ttst_s),
        "trajectory_jct_s": _stats(traj.jct_s[~traj.failed]),
        "ttft_breakdown_s": {
            "scheduling": _stats(done.sched_wait_s)["mean"],
            "allocation": _stats(done.alloc_wait_s)["mean"],
            "reading": _stats(done.read_s)["mean"],
            "prefill": _stats(done.prefill_s)["mean"],
        },
        "snic_read_bytes": snic,
        "snic_read_bytes_prefill_nodes": float(sum(snic[str(n.nid)] for n in cl.prefill_nodes)),
        "snic_read_bytes_decode_nodes": float(sum(snic[str(n.nid)] for n in cl.decode_nodes)),
        "snic_balance_max_over_avg": snic_balance(sim),
        "read_path_share": {p: int((done.path == p).sum()) for p in ("pe", "de", "split")},
        "peak_buffer_bytes": {str(n.nid): n.buffer.peak for n in cl.nodes},
        "peak_hbm_bytes_decode": float(max((g.hbm_peak for n in cl.decode_nodes for g in n.gpus), default=0)),
        "pe_busy_fraction": float(np.mean([e.busy_time for e in sim.pes]) / span) if sim.pes else 0.0,
        "attention_balance_max_over_avg": _attn_balance(sim),
        "events": int(sim.events),
        "transfers": int(sim.net.n_started),
        "rerates": int(sim.net.rerates),
        "sim_wall_s": float(sim.wall_s),
    }
    return out


def _attn_balance(sim) -> float:
    """max/avg attention time across the PEs of a group per forward round (§S9); PEs of one
    node form a group; the k-th forward of each PE is compared."""
    vals = []
    for node in sim.cluster.prefill_nodes:
        engs = [e for e in sim.pes if e.gpu.node is node]
        k = min((len(e.attn_times) for e in engs), default=0)
        for i in range(k):
            xs = [e.attn_times[i] for e in engs]
            m = sum(xs) / len(xs)
            if m > 0:
                vals.append(max(xs) / m)
    return float(np.mean(vals)) if vals else math.nan
