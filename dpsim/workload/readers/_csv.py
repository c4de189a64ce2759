"""Column checks for CSV readers: parse a column, report the first bad row by file line and field."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..trajectory import TraceError
from ._common import MAX_TOKENS

if TYPE_CHECKING:
    import pandas as pd


def read_csv_str(path: Path, required: list[str]) -> pd.DataFrame:
    """All cells as strings; missing columns, ragged rows and empty files raise TraceError."""
    import pandas as pd  # lazily: discovering the readers should not load pandas
    if not path.exists():
        raise TraceError(f"{path}: file not found")
    try:
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
    except (UnicodeDecodeError, csv.Error) as e:
        raise TraceError(f"{path}: line 1: cannot read the CSV header ({e})") from None
    if not header:
        raise TraceError(f"{path}: empty file; expected a CSV header line with {', '.join(required)}")
    header = [h.strip() for h in header]
    for c in required:
        if c not in header:
            raise TraceError(f"{path}: line 1: missing column {c!r} (header has {', '.join(header)})")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, csv.Error) as e:
        msg = str(e).strip().splitlines()
        raise TraceError(f"{path}: malformed CSV ({msg[-1] if msg else type(e).__name__})") from None
    df = df.fillna("")
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0:
        raise TraceError(f"{path}: no data rows after the header (empty trace)")
    return df


def _bad(path: Path, df: pd.DataFrame, mask: np.ndarray, col: str, what: str) -> TraceError:
    i = int(np.argmax(mask))
    v = df[col].iloc[i]
    return TraceError(f"{path}: line {i + 2}, field {col!r}: {what} (got {v!r})")


def int_col(path: Path, df: pd.DataFrame, col: str, *, minimum: int = 0) -> np.ndarray:
    import pandas as pd  # lazily: discovering the readers should not load pandas
    s = df[col].astype(str).str.strip()
    empty = (s == "").to_numpy()
    if empty.any():
        raise _bad(path, df, empty, col, "missing value")
    x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, copy=True)
    bad = ~np.isfinite(x) | (x != np.floor(x))
    if bad.any():
        raise _bad(path, df, bad, col, f"must be an integer >= {minimum}")
    low = x < minimum
    if low.any():
        raise _bad(path, df, low, col, f"must be an integer >= {minimum}")
    high = x > MAX_TOKENS
    if high.any():
        raise _bad(path, df, high, col, f"implausibly large (> {MAX_TOKENS})")
    return x.astype(np.int64)


def num_col(path: Path, df: pd.DataFrame, col: str, *, optional: bool = False) -> np.ndarray:
    """Finite numbers >= 0; empty cells become NaN when ``optional``."""
    import pandas as pd  # lazily: discovering the readers should not load pandas
    s = df[col].astype(str).str.strip()
    empty = (s == "").to_numpy()
    if empty.any() and not optional:
        raise _bad(path, df, empty, col, "missing value")
    x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, copy=True)
    bad = ~empty & (~np.isfinite(x) | (x < 0))
    if bad.any():
        raise _bad(path, df, bad, col, "must be a finite number >= 0")
    x[empty] = np.nan
    return x
