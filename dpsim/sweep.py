"""Collecting a multirun sweep into one tidy table.

Every job of ``dpsim -m ...`` writes ``summary.json`` (or ``error.json`` when it failed) into
its own directory; at the end of the sweep :class:`CollectSweep` (a Hydra callback) reads them
all and writes ``sweep.parquet`` and ``sweep.csv`` into the sweep directory: one row per run,
its overrides as columns, summary metrics as columns, failed runs as rows with their error.
``status`` is ``ok`` (a summary was written) or ``failed``/``interrupted`` (an error.json);
``run_status`` is the summary's own ``complete``/``truncated``/``interrupted``.
``collect(DIR)`` does the same for an existing sweep directory.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, list):
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


def collect(sweep_dir: str | Path):
    """Gather every job of ``sweep_dir`` into a DataFrame; write sweep.parquet/sweep.csv."""
    import pandas as pd

    sweep_dir = Path(sweep_dir)
    rows = []
    for job in sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name)):
        summ = job / "summary.json"
        err = job / "error.json"
        if summ.exists():
            s = json.loads(summ.read_text())
            row = {"job": job.name, "status": "ok", "error": "",
                   "run_status": s.pop("status", "complete")}  # complete | truncated | interrupted
        elif err.exists():
            s = json.loads(err.read_text())
            st = s.pop("status", "failed")
            row = {"job": job.name, "status": "interrupted" if st == "interrupted" else "failed",
                   "error": s.get("error", ""), "run_status": st}
            s.pop("traceback", None)
        else:
            continue
        ov = s.pop("overrides", {}) or {}
        s.pop("_files", None)
        for k, v in ov.items():
            row[f"override.{k}"] = v
        for k, v in _flatten(s).items():
            if k not in ("error",):
                row[k] = v
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        for c in df.columns:
            if df[c].dtype == object:
                vals = [v for v in df[c] if v is not None and v == v]
                if vals and all(isinstance(v, bool) for v in vals):
                    df[c] = df[c].astype("boolean")
                else:
                    df[c] = df[c].map(lambda v: None if v is None or v != v else str(v))
        df.to_parquet(sweep_dir / "sweep.parquet", index=False)
        df.to_csv(sweep_dir / "sweep.csv", index=False)
    return df


class CollectSweep(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        d = Path(config.hydra.sweep.dir)
        if d.exists():
            df = collect(d)
            logging.getLogger("dpsim").info(f"sweep table: {d / 'sweep.parquet'} ({len(df)} runs)")
