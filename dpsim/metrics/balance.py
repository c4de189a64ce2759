"""The two balance metrics of §S9 as time series (one table each per run):

* **storage-NIC balance** (``snic_balance.parquet``): in each sampling window of
  ``metrics.sample_dt`` simulated seconds, max/avg of the bytes the nodes' storage NICs read
  (``snic_rx``) across all nodes -- §S9 "max/avg traffic over storage NICs in short windows".
  Windows in which no SNIC read anything have no ratio (NaN).  The mean of the ratio over the
  windows with traffic is summary.json's ``snic_balance_max_over_avg``.
* **attention-time balance** (``attention_balance.parquet``): per EP group (the PEs of one
  prefill node) and forward index ``k``, max/avg across the group's PEs of the attention time of
  each PE's k-th forward -- §S9 "max/avg across an EP group per forward".  Its time is when the
  last PE of the group started its k-th forward, to the sampling resolution: the collector
  records every PE's forward count at each sample (no hook in the engines), and a forward counted
  first at sample time ``t`` started in the window ending at ``t``.  The mean of the ratio over
  all rows is summary.json's ``attention_balance_max_over_avg``.

The functions take plain arrays so that tests can check them in closed form.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SNIC_COLUMNS = ["time_s", "window_s", "total_Bps", "max_Bps", "avg_Bps", "max_over_avg"]
ATTN_COLUMNS = ["group", "forward", "time_s", "max_s", "avg_s", "max_over_avg"]


def snic_balance_series(times, cum_bytes) -> pd.DataFrame:
    """``times`` (n samples, non-decreasing) and ``cum_bytes`` (n x nodes, cumulative bytes read
    by each node's SNIC at each sample) -> one row per window (t[i-1], t[i]] of non-zero length:
    its end ``time_s``, length, the total / max / mean read rate across the nodes and max/avg."""
    t = np.asarray(times, dtype=float)
    b = np.asarray(cum_bytes, dtype=float)
    if b.ndim != 2 or len(t) != b.shape[0]:
        raise ValueError(f"cum_bytes must be (samples x nodes) with one row per time (got {b.shape} for {len(t)} times)")
    if len(t) < 2 or b.shape[1] == 0:
        return pd.DataFrame({c: np.empty(0) for c in SNIC_COLUMNS})
    dt = np.diff(t)
    keep = dt > 0
    d = np.diff(b, axis=0)[keep] / dt[keep, None]
    tot = d.sum(axis=1)
    mx = d.max(axis=1)
    avg = tot / b.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(tot > 0, mx / np.where(avg > 0, avg, 1.0), np.nan)
    return pd.DataFrame({"time_s": t[1:][keep], "window_s": dt[keep], "total_Bps": tot, "max_Bps": mx,
                         "avg_Bps": avg, "max_over_avg": ratio})


def forward_start_times(times, counts, n: int, column: int) -> np.ndarray:
    """Sample time at which forwards 0..n-1 of one PE were first counted: ``counts[:, column]``
    is its (non-decreasing) forward count at each sample ``times``; forward ``i`` is the first
    sample with count > i.  Forwards never counted (after the last sample) get NaN."""
    c = np.asarray(counts)[:, column]
    k = np.searchsorted(c, np.arange(n), side="right")
    t = np.asarray(times, dtype=float)
    out = np.full(n, np.nan)
    ok = k < len(t)
    out[ok] = t[k[ok]]
    return out


def attention_balance_series(groups: dict, attn: list, times=None, counts=None) -> pd.DataFrame:
    """``groups``: {group name: [PE indices]}; ``attn[j]``: PE j's attention time per forward, in
    order; ``times``/``counts``: the collector's samples and each PE's forward count at them
    (counts[:, j]; None: no times).  One row per group and forward index k < the group's fewest
    forwards: max, mean and max/avg of the k-th forward's attention time across the group, and
    ``time_s`` when its last PE started that forward (NaN without samples)."""
    frames = []
    for g, pes in groups.items():
        if not pes:
            continue
        k = min(len(attn[j]) for j in pes)
        if k == 0:
            continue
        a = np.array([np.asarray(attn[j][:k], dtype=float) for j in pes])  # PEs x forwards
        mx = a.max(axis=0)
        avg = a.mean(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(avg > 0, mx / np.where(avg > 0, avg, 1.0), np.nan)
        if times is not None and counts is not None and len(times):
            ts = np.array([forward_start_times(times, counts, k, j) for j in pes]).max(axis=0)
        else:
            ts = np.full(k, np.nan)
        frames.append(pd.DataFrame({"group": str(g), "forward": np.arange(k), "time_s": ts, "max_s": mx,
                                    "avg_s": avg, "max_over_avg": ratio}))
    if not frames:
        return pd.DataFrame({c: np.empty(0) for c in ATTN_COLUMNS}).astype({"group": str, "forward": np.int64})
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------ from a finished simulation
def pe_groups(sim) -> dict:
    """{``node<nid>``: [PE index, ...]}: the PEs of each prefill node form an EP group (as the
    summary's attention balance)."""
    out = {}
    for node in sim.cluster.prefill_nodes:
        out[f"node{node.nid}"] = [e.idx for e in sim.pes if e.gpu.node is node]
    return out


def snic_series_of(sim) -> pd.DataFrame:
    m = sim.metrics
    idx = [i for i, c in enumerate(m.columns) if c.startswith("snic_rx[")]
    if len(m.rows) < 2 or not idx:
        return snic_balance_series([], np.empty((0, 0)))
    return snic_balance_series(m.times, np.vstack(m.rows)[:, idx])


def attention_series_of(sim) -> pd.DataFrame:
    m = sim.metrics
    counts = np.array(m.forwards) if m.forwards else None
    return attention_balance_series(pe_groups(sim), [e.attn_times for e in sim.pes], m.times, counts)
