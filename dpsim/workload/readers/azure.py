"""Azure LLM inference traces 2023 (Splitwise; github.com/Azure/AzurePublicDataset).

CSV ``TIMESTAMP, ContextTokens, GeneratedTokens``: single-turn requests, no sessions, no hashes.
Each row becomes a 1-round trajectory ``r<row>`` (row = 0-based data row): ``prompt`` =
``ContextTokens``, ``gen`` = ``GeneratedTokens`` (raised to 1 where 0), ``hit`` = 0, ``think_s`` = 0;
``meta.t_s`` = arrival in seconds since the first row's TIMESTAMP (kept for arrival processes).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..trajectory import TraceError, Trajectory
from ._csv import int_col, read_csv_str

FORMAT = "azure"
ALIASES = ("azure_llm", "splitwise")
ORDER = 50             # place in readers.FORMATS
SNIFF_PRIORITY = 50    # readers.sniff tries lower values first
REQUIRED = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]


def sniff(path: Path, head: str) -> bool:
    first = head.split("\n", 1)[0]
    return "ContextTokens" in first and "GeneratedTokens" in first


def read(path: str | Path) -> list[Trajectory]:
    import pandas as pd  # lazily: discovering the readers should not load pandas
    path = Path(path)
    df = read_csv_str(path, REQUIRED)
    p = int_col(path, df, "ContextTokens", minimum=1)
    g0 = int_col(path, df, "GeneratedTokens")
    ts_raw = df["TIMESTAMP"].astype(str).str.strip()
    ts = pd.to_datetime(ts_raw, errors="coerce", format="ISO8601")
    bad = ts.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise TraceError(f"{path}: line {i + 2}, field 'TIMESTAMP': not a date-time (got {ts_raw.iloc[i]!r})")
    t_s = (ts - ts.min()).dt.total_seconds().to_numpy()
    g = np.maximum(g0, 1)
    out = []
    zero_i = np.zeros(1, np.int64)
    zero_f = np.zeros(1, np.float64)
    for i in range(len(df)):
        pi = np.array([p[i]], np.int64)
        meta = {"t_s": round(float(t_s[i]), 6)}
        if g0[i] < 1:
            meta["gen_raised"] = 1
        out.append(Trajectory(f"r{i}", pi, np.array([g[i]], np.int64), zero_f.copy(), pi.copy(),
                              zero_i.copy(), meta=meta))
    return out
