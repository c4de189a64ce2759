"""``dpsim report SWEEP_DIR``: the standard comparisons of a multirun, drawn from its sweep table.

Writes into ``SWEEP_DIR`` (or ``--out``):
* ``jct_vs_agents.png``  -- offline JCT against the number of agents, one line per system (a
  panel per model);
* ``capacity.png``       -- online: the largest APS whose run met the SLO, per system and model;
* ``snic_by_role.png``   -- storage-NIC bytes read on prefill vs decode nodes, per system;
* ``report.md``          -- the tables behind the figures, and failed runs with their errors.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _load(d: Path):
    import pandas as pd

    from .sweep import collect

    p = d / "sweep.parquet"
    return pd.read_parquet(p) if p.exists() else collect(d)


def make_report(d: Path, out: Path | None = None) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = out or d
    out.mkdir(parents=True, exist_ok=True)
    df = _load(d)
    if not len(df):
        raise SystemExit(f"dpsim report: no runs found under {d} (expected job folders with summary.json)")
    ok = df[df.status == "ok"] if "status" in df else df
    written = []
    md = [f"# dpsim report: {d}", "", f"{len(df)} runs, {len(ok)} ok, {len(df) - len(ok)} failed", ""]

    off = ok[ok.get("mode", "offline") == "offline"] if "mode" in ok else ok
    if len(off) and {"agents", "system", "jct_s"} <= set(off.columns):
        models = sorted(off.model.unique()) if "model" in off else [None]
        fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False)
        for ax, m in zip(axes[0], models):
            sub = off if m is None else off[off.model == m]
            piv = sub.pivot_table(index="agents", columns="system", values="jct_s", aggfunc="mean")
            piv.plot(ax=ax, marker="o")
            ax.set_xlabel("agents")
            ax.set_ylabel("JCT (s)")
            ax.set_title(f"offline JCT{' — ' + m if m else ''}")
            md += [f"## JCT (s){' — ' + m if m else ''}", "", "```", piv.to_string(), "```", ""]
        fig.tight_layout()
        fig.savefig(out / "jct_vs_agents.png", dpi=110)
        plt.close(fig)
        written.append("jct_vs_agents.png")

    on = ok[ok["mode"] == "online"] if "mode" in ok else ok.iloc[0:0]
    if len(on) and {"aps", "slo_met", "system"} <= set(on.columns):
        key = ["model", "system"] if "model" in on else ["system"]
        rows = []
        for k, g in on.groupby(key):
            good = g[g.slo_met.astype(bool)]
            rows.append((*((k,) if isinstance(k, str) else k), float(good.aps.max()) if len(good) else 0.0))
        import pandas as pd
        cap = pd.DataFrame(rows, columns=[*key, "max_aps_within_slo"])
        fig, ax = plt.subplots(figsize=(6, 3.6))
        (cap.pivot(index="model", columns="system", values="max_aps_within_slo") if "model" in cap
         else cap.set_index("system")).plot.bar(ax=ax, rot=0)
        ax.set_ylabel("max APS within SLO")
        fig.tight_layout()
        fig.savefig(out / "capacity.png", dpi=110)
        plt.close(fig)
        written.append("capacity.png")
        md += ["## Online capacity (max APS within SLO)", "", "```", cap.to_string(index=False), "```", ""]

    cols = {"snic_read_bytes_prefill_nodes", "snic_read_bytes_decode_nodes", "system"}
    if len(ok) and cols <= set(ok.columns):
        g = ok.groupby("system")[["snic_read_bytes_prefill_nodes", "snic_read_bytes_decode_nodes"]].mean() / 1e9
        g.columns = ["prefill nodes", "decode nodes"]
        fig, ax = plt.subplots(figsize=(6, 3.6))
        g.plot.bar(ax=ax, rot=0)
        ax.set_ylabel("SNIC read (GB, mean over runs)")
        ax.set_title("storage reads by node role")
        fig.tight_layout()
        fig.savefig(out / "snic_by_role.png", dpi=110)
        plt.close(fig)
        written.append("snic_by_role.png")
        md += ["## SNIC reads by node role (GB, mean per run)", "", "```", g.to_string(), "```", ""]

    bad = df[df.status != "ok"] if "status" in df else df.iloc[0:0]
    if len(bad):
        md += ["## Failed runs", ""] + [f"- job {r.job}: {r.error}" for r in bad.itertuples()] + [""]
    (out / "report.md").write_text("\n".join(md))
    written.append("report.md")
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dpsim report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_dir", help="a multirun directory (hydra.sweep.dir)")
    ap.add_argument("--out", default=None, help="where to write (default: the sweep directory)")
    a = ap.parse_args(argv)
    d = Path(a.sweep_dir)
    if not d.is_dir():
        print(f"dpsim report: {d} is not a directory", file=sys.stderr)
        return 2
    files = make_report(d, Path(a.out) if a.out else None)
    for f in files:
        print(f"wrote {(Path(a.out) if a.out else d) / f}")
    return 0
