"""WEKA derived per-request CSV (``derived_all_requests.csv``: all 710 sessions flattened).

Columns used: ``session_id, turn, t_s, think_time_s, api_time_s, input_tokens, output_tokens,
hash_blocks, prefix_hit_tokens`` (and ``is_subagent`` when present).  One trajectory per
``session_id`` (sub-agents are ``trace_XXXX/sub_<id>`` sessions with their own cache), in order of
first appearance, rows sorted by ``turn``.  ``prefix_hit_tokens`` is the precomputed longest stored
prefix (``min(64 x prefix_hit_blocks, input_tokens)``); ``hash_blocks`` is checked against
``input_tokens`` with the same slack as the JSON reader.  Empty ``think_time_s`` falls back to
``t_s - t_s_prev - api_time_s_prev`` (>= 0).  See traces/FORMAT.md.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..trajectory import TraceError, Trajectory
from ._common import HASH_SLACK_BLOCKS, HASH_SLACK_FRAC, build_trajectory
from ._csv import int_col, num_col, read_csv_str

FORMAT = "weka_csv"
ALIASES = ("weka-csv", "derived")
ORDER = 30             # place in readers.FORMATS
SNIFF_PRIORITY = 40    # readers.sniff tries lower values first
REQUIRED = ["session_id", "turn", "t_s", "think_time_s", "api_time_s", "input_tokens",
            "output_tokens", "hash_blocks", "prefix_hit_tokens"]
BLOCK = 64


def sniff(path: Path, head: str) -> bool:
    first = head.split("\n", 1)[0]
    return "session_id" in first and "prefix_hit_tokens" in first


def read(path: str | Path) -> list[Trajectory]:
    path = Path(path)
    df = read_csv_str(path, REQUIRED)
    sid = df["session_id"].astype(str).str.strip()
    if (sid == "").any():
        i = int(np.argmax((sid == "").to_numpy()))
        raise TraceError(f"{path}: line {i + 2}, field 'session_id': missing value")
    turn = int_col(path, df, "turn")
    t = num_col(path, df, "t_s")
    think = num_col(path, df, "think_time_s", optional=True)
    api = num_col(path, df, "api_time_s", optional=True)
    n_in = int_col(path, df, "input_tokens", minimum=1)
    n_out = int_col(path, df, "output_tokens")
    blocks = int_col(path, df, "hash_blocks")
    hit = int_col(path, df, "prefix_hit_tokens")
    sub = int_col(path, df, "is_subagent") if "is_subagent" in df.columns else None
    expect = -(-n_in // BLOCK)
    slack = np.maximum(HASH_SLACK_BLOCKS, np.ceil(HASH_SLACK_FRAC * expect)).astype(np.int64)
    bad = np.abs(blocks - expect) > slack
    if bad.any():
        i = int(np.argmax(bad))
        raise TraceError(f"{path}: line {i + 2}, field 'hash_blocks': {blocks[i]} blocks of {BLOCK} tokens "
                         f"is inconsistent with {n_in[i]} input tokens (expected {expect[i]} +- {slack[i]})")
    codes, uniq = _factorize(sid.to_numpy())
    order = np.lexsort((np.arange(len(df)), turn, codes))
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    out = []
    for grp in np.split(order, bounds):
        s = uniq[codes[grp[0]]]
        tt, th, ap = t[grp], think[grp].copy(), api[grp]
        fb = np.maximum(0.0, tt - np.concatenate(([tt[0]], tt[:-1]))
                        - np.nan_to_num(np.concatenate(([0.0], ap[:-1]))))
        fb[0] = 0.0
        th = np.where(np.isnan(th), fb, th)
        meta = {"session": s.split("/")[0], "t0": round(float(tt[0]), 3)}
        if sub is not None:
            meta["is_subagent"] = int(sub[grp[0]])
        out.append(build_trajectory(s, n_in[grp], n_out[grp], th, hit[grp], meta=meta,
                                    where=f"{path}: session {s!r}"))
    return out


def _factorize(values: np.ndarray):
    """Codes in order of first appearance."""
    uniq, first, inv = np.unique(values, return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), np.int64)
    rank[np.argsort(first)] = np.arange(len(uniq))
    return rank[inv], uniq[np.argsort(first)]
