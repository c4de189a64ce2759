"""``dpsim report SWEEP_DIR``: the standard comparisons of a multirun, drawn from its sweep table.

Runs are grouped by **every key that varies across the sweep** (one column each): two runs with
different configs are never averaged together.  The only thing aggregated is replicates over a
seed (the ``seed`` / ``*.seed`` overrides, and the effective seeds each summary.json names:
``seed``, ``seeds.*``): such a group shows the mean, its **95% confidence interval (Student t over
the replicates: mean +- t(0.975, n-1) s / sqrt(n), dpsim.analysis.stats)**, the min and max of the
replicates and their number n.  One replicate has no interval ("-").  Online capacity is found per
replicate (the largest APS meeting the SLO among that seed's runs) and then averaged the same way.
Runs that did not complete (failed, truncated, interrupted) are listed, not averaged in.

Writes into ``SWEEP_DIR`` (or ``--out``):
* ``jct_vs_agents.png``  -- offline JCT against the number of agents, one line per group of the
  other varying keys (bars when there is a single agent count);
* ``capacity.png``       -- online: the largest APS whose run met the SLO, per group;
* ``snic_by_role.png``   -- storage-NIC bytes read on prefill vs decode nodes, per group;
* ``report.md``          -- the Markdown tables behind the figures, and the runs left out with why.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from .analysis.stats import INTERVAL

METRICS = {"jct_s": "JCT (s)", "prompt_tokens_per_s": "prompt tok/s", "ttft_s.mean": "TTFT mean (s)",
           "tpot_s.mean": "TPOT mean (s)", "snic_read_bytes_prefill_nodes": "SNIC read P (B)",
           "snic_read_bytes_decode_nodes": "SNIC read D (B)"}
# Summary columns that describe the config of a run (so they vary with an override): shown when
# they vary even if the override column has another name (e.g. experiment=offline sets agents).
CONFIG_COLUMNS = ("model", "system", "mode", "prefill_nodes", "decode_nodes", "gpus_per_node", "agents", "aps")


def _load(d: Path):
    import pandas as pd

    from .sweep import collect

    p = d / "sweep.parquet"
    return pd.read_parquet(p) if p.exists() else collect(d)


def is_replicate_key(k: str) -> bool:
    return k == "seed" or k.endswith(".seed")


def replicate_columns(df) -> list[str]:
    """The columns of ``df`` that name a replicate: seed overrides (``override.seed``,
    ``override.*.seed``) and the effective seeds of the summaries (``seed``, ``seeds.*``)."""
    return [c for c in df.columns if (c.startswith("override.") and is_replicate_key(c[len("override."):]))
            or c == "seed" or c.startswith("seeds.")]


def replicate_id(df):
    """One label per row: the values of its replicate columns (rows of one config with the same
    label are repeats of one run, not replicates)."""
    cols = replicate_columns(df)
    if not cols:
        return df.index.map(lambda _i: "")
    return df[cols].astype(str).agg("|".join, axis=1)


def varying_keys(df) -> list[str]:
    """Config keys (override columns, without the ``override.`` prefix, and the summary's config
    columns) that take more than one value among ``df``'s rows; seeds excluded."""
    keys = []
    for c in df.columns:
        if c.startswith("override."):
            k = c[len("override."):]
        elif c in CONFIG_COLUMNS:
            k = c
        else:
            continue
        if k.startswith("hydra") or is_replicate_key(k) or k in keys:
            continue
        if df[c].astype(str).nunique(dropna=False) > 1:
            keys.append(k)
    # a summary column and the override of the same fact: keep one (the summary's, typed)
    return [k for k in keys if not (k.startswith("workload.agents") and "agents" in keys)
            and not (k == "cluster.prefill_nodes" and "prefill_nodes" in keys)
            and not (k == "cluster.decode_nodes" and "decode_nodes" in keys)
            and not (k == "workload.aps" and "aps" in keys)]


def _col(k: str) -> str:
    return k if k in CONFIG_COLUMNS else f"override.{k}"


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.4g}"
    return str(v)


def md_table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table (no extra dependency)."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in r) + " |")
    return out


def grouped(df, keys: list[str], metric: str):
    """One row per combination of ``keys``: (key values..., mean, CI lo, CI hi, min, max, n) of
    ``metric`` over the group's replicates (the rows differ only in a seed, or are repeats of one
    config); CI: the 95% Student t interval of the mean (NaN for n < 2)."""
    import pandas as pd

    from .analysis.stats import mean_ci

    cols = [_col(k) for k in keys]
    vals = pd.to_numeric(df[metric], errors="coerce")
    d = df.assign(_v=vals)
    if not cols:
        d = d.assign(_all="all")
        cols = ["_all"]
    rows = []
    for k, g in d.groupby(cols, sort=True, dropna=False):
        k = k if isinstance(k, tuple) else (k,)
        iv = mean_ci(g._v.dropna())
        rows.append([*(() if cols == ["_all"] else k), iv.mean, iv.lo, iv.hi, iv.min, iv.max, iv.n])
    return rows


def capacity_over_seeds(on, keys: list[str]) -> list[list]:
    """Online capacity with replicates: :func:`max_aps_within_slo` per replicate (seed) within each
    combination of ``keys``, then (key values..., mean, CI lo, CI hi, min, max, seeds, runs) over
    the replicates -- a seed's capacity is read off that seed's runs only."""
    from .analysis.stats import mean_ci

    d = on.assign(_rep=replicate_id(on))
    per = max_aps_within_slo(d.rename(columns={"_rep": "override._rep"}), keys + ["_rep"])
    out: dict = {}
    for r in per:
        k = tuple(r[:len(keys)])
        caps, runs = out.setdefault(k, ([], [0]))
        caps.append(r[len(keys) + 1])
        runs[0] += r[-1]
    rows = []
    for k, (caps, runs) in out.items():
        iv = mean_ci(caps)
        rows.append([*k, iv.mean, iv.lo, iv.hi, iv.min, iv.max, iv.n, runs[0]])
    return rows


def max_aps_within_slo(on, keys: list[str]) -> list[list]:
    """Online capacity: per combination of ``keys`` (not ``aps``), the largest APS whose run met
    the SLO (0.0 when none did).  The one implementation of "max APS within SLO"."""
    cols = [_col(k) for k in keys]
    out = []
    groups = on.groupby(cols, sort=True) if cols else [((), on)]
    for k, g in groups:
        k = k if isinstance(k, tuple) else (k,)
        good = g[g.slo_met.astype(bool)]
        out.append([*k, float(good.aps.astype(float).max()) if len(good) else 0.0, len(g)])
    return out


def _label(keys, vals) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in zip(keys, vals)) or "all runs"


def make_report(d: Path, out: Path | None = None) -> list[str]:
    from .metrics.outputs import new_figure

    out = out or d
    out.mkdir(parents=True, exist_ok=True)
    df = _load(d)
    if not len(df):
        raise SystemExit(f"dpsim report: no runs found under {d} (expected job folders with summary.json)")
    status = df["status"] if "status" in df else None
    run_status = df["run_status"] if "run_status" in df else None
    okmask = (status == "ok") if status is not None else df.index == df.index
    if run_status is not None:
        okmask &= run_status.fillna("complete").isin(["complete"])
    ok = df[okmask]
    left = df[~okmask]
    keys = varying_keys(ok) if len(ok) else []
    reps = list(dict.fromkeys(c[len("override."):] if c.startswith("override.") else c
                              for c in replicate_columns(df) if df[c].astype(str).nunique() > 1))
    written = []
    md = [f"# dpsim report: {d}", "",
          f"{len(df)} runs: {len(ok)} complete, {len(left)} left out (failed, truncated or interrupted).", "",
          "Varying keys (a column each; runs of different configs are never averaged): "
          + (", ".join(f"`{k}`" for k in keys) or "none"),
          "Replicates: " + (f"over {', '.join(f'`{r}`' for r in reps)}: per group the mean, its {INTERVAL} "
                            f"(mean +- t(0.975, n-1) s / sqrt(n); '-' with one replicate), the replicates' min "
                            f"and max, and n"
                            if reps else "none (one run per config, so no interval; n counts repeats of one config; "
                                         "replicate with -m seed=0,1,2)"), ""]

    # --------------------------------------------------------------- offline JCT
    off = ok[ok["mode"] == "offline"] if "mode" in ok else ok
    if len(off) and {"agents", "jct_s"} <= set(off.columns):
        gkeys = [k for k in keys if k != "agents"]
        rows = grouped(off, gkeys + ["agents"], "jct_s")
        md += ["## Offline JCT (s)", ""] + md_table(
            [*gkeys, "agents", "JCT mean (s)", "95% CI lo", "95% CI hi", "min", "max", "n"], rows) + [""]
        fig = new_figure(figsize=(7, 4), layout="constrained")
        ax = fig.subplots()
        agents = sorted({int(r[len(gkeys)]) for r in rows})
        series = {}
        for r in rows:  # (agents, mean, CI lo, CI hi); no interval (n < 2): lo = hi = mean
            m, lo, hi = r[-6], r[-5], r[-4]
            lo, hi = (lo, hi) if lo == lo else (m, m)
            series.setdefault(tuple(r[:len(gkeys)]), []).append((int(r[len(gkeys)]), m, lo, hi))
        ci_note = f"; bars: {INTERVAL}" if reps else ""
        if len(agents) == 1:  # one agent count: a bar per group, not dots on a fractional axis
            labels = [_label(gkeys, k) for k in series]
            ys = [v[0][1] for v in series.values()]
            err = [[v[0][1] - v[0][2] for v in series.values()], [v[0][3] - v[0][1] for v in series.values()]]
            ax.barh(range(len(ys)), ys, xerr=err if reps else None, color="tab:blue", capsize=3)
            ax.set_yticks(range(len(ys)))
            ax.set_yticklabels(labels, fontsize=8)
            ax.set_xlabel("JCT (s)" + (" (mean over seeds)" if reps else ""))
            ax.set_title(f"offline JCT, {agents[0]} agents{ci_note}", fontsize=9)
        else:
            for k, pts in series.items():
                pts.sort()
                x = [p[0] for p in pts]
                line, = ax.plot(x, [p[1] for p in pts], marker="o", label=_label(gkeys, k))
                if reps:
                    ax.fill_between(x, [p[2] for p in pts], [p[3] for p in pts], alpha=0.2, color=line.get_color())
            if agents[-1] / max(1, agents[0]) >= 8:
                ax.set_xscale("log", base=2)
            ax.set_xticks(agents)
            ax.set_xticklabels([str(a) for a in agents])
            ax.minorticks_off()
            ax.set_xlabel("agents")
            ax.set_ylabel("JCT (s)" + (" (mean over seeds)" if reps else ""))
            ax.set_title(f"offline JCT{'; band: ' + INTERVAL if reps else ''}", fontsize=9)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.savefig(out / "jct_vs_agents.png", dpi=110)
        written.append("jct_vs_agents.png")

    # --------------------------------------------------------------- online capacity
    on = ok[ok["mode"] == "online"] if "mode" in ok else ok.iloc[0:0]
    if len(on) and {"aps", "slo_met"} <= set(on.columns):
        gkeys = [k for k in keys if k not in ("aps", "workload.aps")]
        if reps:  # each seed's capacity from its own runs, then the mean and interval over seeds
            cap = capacity_over_seeds(on, gkeys)
            md += ["## Online capacity (max APS within SLO)", ""] + md_table(
                [*gkeys, "max APS within SLO, mean", "95% CI lo", "95% CI hi", "min", "max", "seeds", "runs"],
                cap) + [""]
            vals = [r[-7] for r in cap]
            err = [[r[-7] - (r[-6] if r[-6] == r[-6] else r[-7]) for r in cap],
                   [(r[-5] if r[-5] == r[-5] else r[-7]) - r[-7] for r in cap]]
            labels = [_label(gkeys, r[:-7]) for r in cap]
        else:
            cap = max_aps_within_slo(on, gkeys)
            md += ["## Online capacity (max APS within SLO)", ""] + md_table(
                [*gkeys, "max APS within SLO", "runs"], cap) + [""]
            vals, err, labels = [r[-2] for r in cap], None, [_label(gkeys, r[:-2]) for r in cap]
        fig = new_figure(figsize=(7, 1.5 + 0.35 * len(cap)), layout="constrained")
        ax = fig.subplots()
        ax.barh(range(len(cap)), vals, xerr=err, color="tab:green", capsize=3)
        ax.set_yticks(range(len(cap)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_xlabel("max APS within SLO" + (f" (mean over seeds; bars: {INTERVAL})" if reps else ""))
        fig.savefig(out / "capacity.png", dpi=110)
        written.append("capacity.png")

    # --------------------------------------------------------------- SNIC reads by role
    cols = {"snic_read_bytes_prefill_nodes", "snic_read_bytes_decode_nodes"}
    if len(ok) and cols <= set(ok.columns):
        p_rows = grouped(ok, keys, "snic_read_bytes_prefill_nodes")
        d_rows = grouped(ok, keys, "snic_read_bytes_decode_nodes")
        rows = [[*p[:len(keys)], p[-6] / 1e9, p[-5] / 1e9, p[-4] / 1e9, dd[-6] / 1e9, dd[-5] / 1e9, dd[-4] / 1e9,
                 p[-1]] for p, dd in zip(p_rows, d_rows)]
        md += ["## SNIC reads by node role (GB per run; mean and 95% CI over replicates)", ""] + md_table(
            [*keys, "prefill nodes (GB)", "CI lo", "CI hi", "decode nodes (GB)", "CI lo", "CI hi", "n"], rows) + [""]
        fig = new_figure(figsize=(7, 1.5 + 0.4 * len(rows)), layout="constrained")
        ax = fig.subplots()
        ys = list(range(len(rows)))
        def _err(m, lo, hi):
            return [m - lo if lo == lo else 0.0, hi - m if hi == hi else 0.0]
        perr = list(zip(*[_err(r[-7], r[-6], r[-5]) for r in rows])) if reps else None
        derr = list(zip(*[_err(r[-4], r[-3], r[-2]) for r in rows])) if reps else None
        ax.barh([y - 0.2 for y in ys], [r[-7] for r in rows], 0.4, xerr=perr, capsize=2, label="prefill nodes")
        ax.barh([y + 0.2 for y in ys], [r[-4] for r in rows], 0.4, xerr=derr, capsize=2, label="decode nodes")
        ax.set_yticks(ys)
        ax.set_yticklabels([_label(keys, r[:len(keys)]) for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("SNIC read (GB per run)")
        ax.set_title("storage reads by node role")
        ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.08), ncol=2)
        fig.savefig(out / "snic_by_role.png", dpi=110)
        written.append("snic_by_role.png")

    if len(left):
        md += ["## Failed runs and runs that did not complete", ""] + md_table(
            ["job", "status", "why"],
            [[r.get("job"), r.get("run_status") or r.get("status"),
              (r.get("error") or "").splitlines()[0] if r.get("error") else
              f"{r.get('run_status')}: {_fmt(r.get('requests_completed'))}/{_fmt(r.get('requests_total'))} requests"]
             for r in left.to_dict("records")]) + [""]
    from .figures import draw, figure_of
    fig = figure_of(d)
    if fig is not None:  # a paper figure's sweep (+figure=...): its own figure too
        files = draw(d, out, df=df)
        written += files
        md += [f"## Figure {fig['name']} ({fig.get('scale')})", ""] + [f"* `{f}`" for f in files] + [""]
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
        print(f"dpsim report: error: {d} is not a directory; give a multirun's hydra.sweep.dir", file=sys.stderr)
        return 2
    try:
        files = make_report(d, Path(a.out) if a.out else None)
    except OSError as e:
        print(f"dpsim report: error: cannot write {e.filename or a.out or d} ({e.strerror or e}); "
              f"choose another --out DIR", file=sys.stderr)
        return 2
    for f in files:
        print(f"wrote {(Path(a.out) if a.out else d) / f}")
    return 0
