"""Markdown tables of the committed paper-scale results (results/<figure>-paper/*_summary.csv),
for results/PAPER_RUNS.md and closing notes: mean [95% Student t interval over seeds].

    python -m experiments.tables_md                 # every table it knows
    python -m experiments.tables_md offline_grid c1 # some

Tables: offline_grid (JCT per cell, Basic/DualPath, DualPath/Oracle), c1 (the calibration
points of ../shared/spec/calibration-points.md beside the grid's Oracle / Basic/DualPath),
ablation, balance, headline, large_scale, fitted (every YAML value marked "fitted").
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RES = ROOT / "results"
# ../shared/spec/calibration-points.md, C1 (Oracle JCT, s) and C2 (1.87x, DS 660B 64K at the most agents)
C1 = {("ds660b", "64k", 512): 1974, ("ds660b", "64k", 1024): 2701, ("ds660b", "64k", 2048): 4935,
      ("ds660b", "64k", 4096): 9351, ("ds27b", "64k", 512): 868, ("ds27b", "64k", 1024): 1460,
      ("ds27b", "64k", 2048): 2406, ("ds27b", "64k", 4096): 5247, ("qwen32b", "32k", 128): 524,
      ("qwen32b", "32k", 256): 778, ("qwen32b", "32k", 512): 1175}
C2_GAIN = 1.87


def iv(r, k, fmt="{:,.0f}") -> str:
    return f"{fmt.format(r[k])} [{fmt.format(r[k + '_ci_lo'])}, {fmt.format(r[k + '_ci_hi'])}]"


def md(header, rows) -> str:
    """A markdown table: ``header`` and each row a sequence of cells."""
    out = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def summary(figure: str) -> pd.DataFrame:
    """results/<figure>-paper/<figure>_summary.csv."""
    return pd.read_csv(RES / f"{figure}-paper" / f"{figure}_summary.csv")


def offline_grid() -> str:
    return md(["model", "P/D", "MAL", "agents", "Basic JCT (s)", "DualPath JCT (s)", "Oracle JCT (s)",
               "Basic/DualPath", "DualPath/Oracle"],
              [[r.model, f"{r.prefill_nodes}P{r.decode_nodes}D", r["workload.mal"], r.agents, iv(r, "basic"),
                iv(r, "dualpath"), iv(r, "oracle"), iv(r, "basic/dualpath", "{:.2f}"), iv(r, "dualpath/oracle", "{:.3f}")]
               for _, r in summary("offline_grid").iterrows()])


def c1() -> str:
    d = summary("offline_grid")
    rows = []
    for (m, mal, ag), v in C1.items():
        r = d[(d.model == m) & (d["workload.mal"] == mal) & (d.agents == ag)].iloc[0]
        rows.append(["C1 Oracle JCT (s)", m, f"{r.prefill_nodes}P{r.decode_nodes}D", mal, ag, f"{v:,}",
                     iv(r, "oracle"), f"{100 * (r.oracle / v - 1):+.1f}%"])
    for _, r in _c2_grid(d).iterrows():
        rows.append(["C2 Basic/DualPath", "ds660b", "2P4D", "64k", r.agents, f"{C2_GAIN} (at the most agents)",
                     iv(r, "basic/dualpath", "{:.2f}"), f"{100 * (r['basic/dualpath'] / C2_GAIN - 1):+.1f}%"])
    return md(["point", "model", "P/D", "MAL", "agents", "paper", "dpsim", "error"], rows)


def _c2_grid(d=None):
    d = summary("offline_grid") if d is None else d
    return d[(d.model == "ds660b") & (d["workload.mal"] == "64k")].sort_values("agents")


def c2_rows() -> list[tuple[int, float]]:
    """(agents, Basic/DualPath) of the DS 660B 64K cells: C2's 1.87x is at the most agents."""
    return [(int(r.agents), float(r["basic/dualpath"])) for _, r in _c2_grid().iterrows()]


def ablation() -> str:
    d = summary("ablation")
    steps = [("basic", "Basic"), ("basic_layer", "+layerwise prefill"), ("basic_layer_dpl", "+dual-path loading"),
             ("dualpath", "+scheduler (= DualPath)"), ("oracle", "Oracle")]
    ratios = ("basic_layer/basic", "basic_layer_dpl/basic_layer", "dualpath/basic_layer_dpl", "oracle/dualpath")
    return (md(["agents"] + [n for _, n in steps], [[r.agents] + [iv(r, k) for k, _ in steps] for _, r in d.iterrows()])
            + "\n\n" + md(["agents", "+layerwise / Basic", "+dual-path / +layerwise", "+scheduler / +dual-path",
                             "Oracle / DualPath"], [[r.agents] + [iv(r, k, "{:.3f}") for k in ratios] for _, r in d.iterrows()]))


def balance() -> str:
    return md(["system", "storage-NIC max/avg", "attention-time max/avg", "JCT (s)"],
              [[r.system, iv(r, "snic_balance_max_over_avg", "{:.2f}"), iv(r, "attention_balance_max_over_avg", "{:.2f}"),
                iv(r, "jct_s")] for _, r in summary("balance").iterrows()])


def headline() -> str:
    r = summary("headline").iloc[0]
    return md(["Basic JCT (s)", "DualPath JCT (s)", "Oracle JCT (s)", "DualPath/Basic", "Oracle/DualPath"],
              [[iv(r, "basic_jct_s"), iv(r, "dualpath_jct_s"), iv(r, "oracle_jct_s"),
                iv(r, "dualpath/basic JCT", "{:.3f}"), iv(r, "oracle/dualpath JCT", "{:.3f}")]])


def large_scale() -> str:
    d = summary("large_scale")
    cols = [c for c in d.columns if not c.endswith(("_ci_lo", "_ci_hi")) and c + "_ci_lo" in d.columns]
    return md(cols, [[iv(r, c, "{:,.2f}" if abs(r[c]) < 10 else "{:,.0f}") for c in cols] for _, r in d.iterrows()])


def fitted() -> str:
    rows = []
    for f in sorted((ROOT / "dpsim" / "conf").rglob("*.yaml")):
        for line in f.read_text().splitlines():
            m = re.match(r"\s*([\w.]+):\s*([^#\s]+)\s*#\s*(fitted[^:]*)", line)
            if m:
                rows.append([f.relative_to(ROOT / "dpsim" / "conf"), m.group(1), m.group(2), m.group(3).strip()])
    return md(["file", "key", "value", "fitted by / to"], rows)


TABLES = {"offline_grid": offline_grid, "c1": c1, "ablation": ablation, "balance": balance,
          "headline": headline, "large_scale": large_scale, "fitted": fitted}


def main(argv=None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or list(TABLES)
    bad = [n for n in names if n not in TABLES]
    if bad:
        print(f"tables_md: unknown table(s) {', '.join(bad)}; known: {', '.join(TABLES)}", file=sys.stderr)
        return 2
    for n in names:
        print(f"### {n}\n\n{TABLES[n]()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
