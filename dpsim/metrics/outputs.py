"""Writing a run's outputs: summary.json, Parquet tables, PNG plots, resolved config.

Everything is written to a temporary name and renamed, so a failed run leaves nothing
half-written under the final names.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np


def _clean(o):
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.floating, float)):
        v = float(o)
        return v if math.isfinite(v) else None
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(_clean(obj), f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def write_parquet(path: Path, df) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    tmp = path.with_name(path.name + ".tmp")
    table = pa.Table.from_pandas(df, preserve_index=False)
    # No pandas metadata with wall-clock or library versions: byte-identical across runs.
    table = table.replace_schema_metadata(None)
    pq.write_table(table, tmp, compression="zstd", write_statistics=False)
    os.replace(tmp, path)


def new_figure(**kw):
    """A figure that is not registered with pyplot: library code draws and saves it without
    choosing or switching the matplotlib backend (a notebook keeps its inline backend) and
    without leaving figures open."""
    from matplotlib.figure import Figure
    return Figure(**kw)


def write_plots(out: Path, sim, req, links) -> list[str]:
    written = []
    # SNIC utilisation per node over time.
    if len(links):
        fig = new_figure(figsize=(8, 4))
        ax = fig.subplots()
        cap = sim.cfg["cluster"]["snic_Bps"]
        for n in sim.cluster.nodes:
            d = links[links.series == f"snic_rx[{n.nid}]"]
            ax.plot(d.time_s, d.rate_Bps / cap, label=f"node {n.nid} ({n.role[0].upper()}E)", lw=1)
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("SNIC read / line rate")
        ax.set_ylim(bottom=0)
        ax.set_title(f"SNIC utilisation per node ({sim.sys['name']})")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        p = out / "snic_utilisation.png"
        _save(fig, p)
        written.append(p.name)
    d = req[req.status == "done"]
    if len(d):
        fig = new_figure(figsize=(6, 4))
        ax = fig.subplots()
        x = np.sort(d.ttft_s.to_numpy())
        ax.plot(x, np.arange(1, len(x) + 1) / len(x))
        ax.set_xscale("log")
        ax.set_xlabel("TTFT (s)")
        ax.set_ylabel("CDF")
        ax.set_title(f"TTFT CDF ({sim.sys['name']}, {len(x)} requests)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        p = out / "ttft_cdf.png"
        _save(fig, p)
        written.append(p.name)
    return written


def _save(fig, p: Path) -> None:
    tmp = p.with_name(p.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, metadata={"Software": None})
    os.replace(tmp, p)


def write_outputs(out: Path, sim, summary: dict, req, traj, cfg_yaml: str | None,
                  ocfg: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    links = sim.metrics.link_series()
    queues = sim.metrics.queue_series()
    if ocfg.get("parquet", True):
        write_parquet(out / "requests.parquet", req)
        write_parquet(out / "trajectories.parquet", traj)
        write_parquet(out / "links.parquet", links)
        write_parquet(out / "queues.parquet", queues)
        from .balance import attention_series_of, snic_series_of
        write_parquet(out / "snic_balance.parquet", snic_series_of(sim))
        write_parquet(out / "attention_balance.parquet", attention_series_of(sim))
        files["tables"] = ["requests.parquet", "trajectories.parquet", "links.parquet", "queues.parquet",
                           "snic_balance.parquet", "attention_balance.parquet"]
    if ocfg.get("plots", True):
        files["plots"] = write_plots(out, sim, req, links)
    if ocfg.get("timeline", False):
        from .timeline import write_timeline
        write_timeline(out / "timeline.json", sim, int(ocfg.get("timeline_max_agents", 256)))
        files["timeline"] = "timeline.json"
    if cfg_yaml is not None:
        tmp = out / "config.resolved.yaml.tmp"
        tmp.write_text(cfg_yaml)
        os.replace(tmp, out / "config.resolved.yaml")
    write_json(out / "summary.json", summary)
    return files
