"""Run one of the paper's experiments and write its tidy table and figure.

    python experiments/run.py offline_grid --scale small --out results/offline_grid
    python experiments/run.py online --scale paper --jobs 2
    python experiments/run.py capacity --scale paper --jobs 2   # online capacity by search
    python experiments/run.py --list

Each run is composed from dpsim's Hydra config with the figure's overrides (as ``dpsim
<overrides>`` would), so any run can be reproduced from the command line; the table has one
row per run (overrides as columns, summary metrics as columns; failed runs keep their error).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.figures import FIGURES, runs_for  # noqa: E402

METRICS = ["jct_s", "requests_completed", "requests_failed", "requests_total", "prompt_tokens_per_s",
           "snic_balance_max_over_avg", "attention_balance_max_over_avg", "slo_met", "aps",
           "window_ttft_s", "sim_wall_s", "events"]


def compose(overrides: list[str]) -> dict:
    from hydra import compose as hcompose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="dpsim.conf", version_base=None):
        cfg = hcompose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def compose_many(runs: list[list[str]]) -> list[dict]:
    """Compose several runs inside one Hydra initialisation (much faster than one each)."""
    from hydra import compose as hcompose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="dpsim.conf", version_base=None):
        return [OmegaConf.to_container(hcompose(config_name="config", overrides=list(r)), resolve=True)
                for r in runs]


def run_one(overrides: list[str]) -> dict:
    from dpsim.runner import run

    row = {}
    for o in overrides:
        k, _, v = o.partition("=")
        row[k] = v
    t0 = time.perf_counter()
    try:
        cfg = compose(overrides)
        cfg["output"]["plots"] = False
        summ, _ = run(cfg)
        for k in METRICS:
            row[k] = summ.get(k)
        for k in ("ttft_s", "tpot_s", "ttst_s"):
            row[f"{k}_mean"] = summ[k]["mean"]
            row[f"{k}_p90"] = summ[k]["p90"]
        for k, v in summ["ttft_breakdown_s"].items():
            row[f"ttft_{k}_s"] = v
        row["snic_read_gb_prefill"] = summ["snic_read_bytes_prefill_nodes"] / 1e9
        row["snic_read_gb_decode"] = summ["snic_read_bytes_decode_nodes"] / 1e9
        row["stop_reason"] = summ.get("stop_reason", "")
        row["error"] = ""
    except Exception as e:  # a failed run is a row with its error, never silently missing
        row["error"] = f"{type(e).__name__}: {e}"
    row["wall_s"] = time.perf_counter() - t0
    return row


def run_figure(name: str, scale: str, out: Path, jobs: int = 1):
    import pandas as pd

    runs = runs_for(name, scale)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{name} ({scale}): {len(runs)} runs -> {out}", file=sys.stderr)
    if jobs > 1:
        from joblib import Parallel, delayed
        rows = Parallel(n_jobs=jobs, verbose=5)(delayed(run_one)(r) for r in runs)
    else:
        rows = []
        for i, r in enumerate(runs):
            rows.append(run_one(r))
            print(f"  [{i + 1}/{len(runs)}] {' '.join(r)} -> jct {rows[-1].get('jct_s')} "
                  f"({rows[-1]['wall_s']:.1f}s){'  ERROR ' + rows[-1]['error'] if rows[-1]['error'] else ''}",
                  file=sys.stderr)
    df = pd.DataFrame(rows)
    df.to_csv(out / f"{name}.csv", index=False)
    df.to_parquet(out / f"{name}.parquet", index=False)
    derived = PLOTS.get(name, _plot_generic)(df, out / f"{name}.png")
    if derived is not None:
        derived.to_csv(out / f"{name}_summary.csv", index=False)
        print(derived.to_string(index=False))
    return df


# ---------------------------------------------------------------------------- figures
class _Figures:
    """``subplots``/``close`` like pyplot's, on figures pyplot does not know about: drawing the
    paper's figures neither chooses nor switches the matplotlib backend (a notebook keeps its own)."""

    @staticmethod
    def subplots(*args, figsize=None, squeeze=True, **kw):
        from dpsim.metrics.outputs import new_figure
        fig = new_figure(figsize=figsize)
        return fig, fig.subplots(*args, squeeze=squeeze, **kw)

    @staticmethod
    def close(fig) -> None:
        pass


def _plt():
    return _Figures


def _ok(df):
    return df[(df.error == "") & df.jct_s.notna()] if "jct_s" in df else df[df.error == ""]


def _plot_offline_grid(df, path):
    plt = _plt()
    d = _ok(df).copy()
    d["agents"] = d["workload.agents"].astype(int)
    panels = sorted(set(zip(d.model, d["workload.mal"])))
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4 * max(1, len(panels)), 3.4), squeeze=False)
    for ax, (m, mal) in zip(axes[0], panels):
        p = d[(d.model == m) & (d["workload.mal"] == mal)].pivot_table(index="agents", columns="system",
                                                                       values="jct_s")
        p = p[[c for c in ("basic", "dualpath", "oracle") if c in p]]
        p.plot.bar(ax=ax, rot=0)
        ax.set_title(f"{m} {mal}")
        ax.set_ylabel("JCT (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    piv = d.pivot_table(index=["model", "workload.mal", "agents"], columns="system", values="jct_s").reset_index()
    if {"basic", "dualpath"} <= set(piv.columns):
        piv["basic/dualpath"] = piv["basic"] / piv["dualpath"]
    if {"oracle", "dualpath"} <= set(piv.columns):
        piv["dualpath/oracle"] = piv["dualpath"] / piv["oracle"]
    return piv


def _plot_bars(df, path, index, value="jct_s", title=""):
    plt = _plt()
    d = _ok(df)
    p = d.pivot_table(index=index, columns="system", values=value)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    p.plot.bar(ax=ax, rot=0)
    ax.set_ylabel(value)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return p.reset_index()


def _plot_pd(df, path):
    df = df.copy()
    df["P/D"] = df["cluster.prefill_nodes"] + "P" + df["cluster.decode_nodes"] + "D"
    return _plot_bars(df, path, "P/D", title="DS 27B, 64K: JCT by P/D")


def _plot_scaling(df, path):
    plt = _plt()
    d = _ok(df).copy()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    out = []
    for ax, kind in zip(axes, ("workload.append_scale", "workload.gen_scale")):
        s = d[d[kind].notna()] if kind in d else d.iloc[0:0]
        if not len(s):
            continue
        s = s.assign(factor=s[kind].astype(float))
        p = s.pivot_table(index="factor", columns="system", values="jct_s")
        p.plot(ax=ax, marker="o")
        ax.set_title(kind.split(".")[1])
        ax.set_ylabel("JCT (s)")
        out.append(p.reset_index().assign(kind=kind))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import pandas as pd
    return pd.concat(out) if out else None


def _plot_ablation(df, path):
    return _plot_bars(df.assign(step="ds660b 64K"), path, "step", title="Ablation")


def _plot_balance(df, path):
    plt = _plt()
    d = _ok(df)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    d.set_index("system")["snic_balance_max_over_avg"].plot.bar(ax=axes[0], rot=0)
    axes[0].set_title("storage NIC max/avg (3 nodes)")
    d.set_index("system")["attention_balance_max_over_avg"].plot.bar(ax=axes[1], rot=0)
    axes[1].set_title("attention time max/avg")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return d[["system", "snic_balance_max_over_avg", "attention_balance_max_over_avg", "jct_s"]]


def _plot_online(df, path):
    import pandas as pd
    d = df[df.error == ""].copy()
    d["aps"] = d["workload.aps"].astype(float)
    cap = []
    for (m, s), g in d.groupby(["model", "system"]):
        ok = g[g.slo_met == True]  # noqa: E712
        cap.append({"model": m, "system": s, "max_aps_within_slo": float(ok.aps.max()) if len(ok) else 0.0})
    cap = pd.DataFrame(cap)
    piv = cap.pivot(index="model", columns="system", values="max_aps_within_slo") if len(cap) else cap
    best = d.sort_values("aps").groupby(["model", "system"]).tail(1)
    plot_capacity(piv, best.set_index(best.model + "/" + best.system), path, "TTFT breakdown (s)")
    return cap


TTFT_PARTS = ["ttft_scheduling_s", "ttft_allocation_s", "ttft_reading_s", "ttft_prefill_s"]


def plot_capacity(piv, best, path, breakdown_label, title=""):
    """Left: max APS within the SLO per model (rows of ``piv``) and system (columns).  Right: the
    TTFT breakdown of ``best`` (one run per bar, indexed by its label)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    if len(piv):
        piv.plot.bar(ax=axes[0], rot=0)
    axes[0].set_ylabel("max APS within SLO")
    if title:
        axes[0].set_title(title)
    if len(best) and set(TTFT_PARTS) <= set(best.columns):
        best[TTFT_PARTS].plot.bar(stacked=True, ax=axes[1], rot=30)
    axes[1].set_ylabel(breakdown_label)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_generic(df, path):
    return _plot_bars(df.assign(run="run"), path, "run")


def _plot_headline(df, path):
    import pandas as pd
    d = _ok(df).set_index("system")
    j = d.jct_s
    out = pd.DataFrame([{
        "basic_jct_s": j.get("basic"), "dualpath_jct_s": j.get("dualpath"), "oracle_jct_s": j.get("oracle"),
        "dualpath/basic JCT": j.get("dualpath") / j.get("basic"),
        "oracle/dualpath JCT": j.get("oracle") / j.get("dualpath"),
        "throughput gain basic->dualpath": j.get("basic") / j.get("dualpath"),
    }])
    _plot_bars(df.assign(run="ds660b 2P4D 64K"), path, "run", title="DS 660B 2P4D 64K offline")
    return out


PLOTS = {"headline": _plot_headline, "offline_grid": _plot_offline_grid, "pd_ratio": _plot_pd, "scaling": _plot_scaling,
         "ablation": _plot_ablation, "balance": _plot_balance, "online": _plot_online,
         "large_scale": _plot_generic}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("figure", nargs="?", help=f"one of {sorted(FIGURES) + ['capacity']}")
    ap.add_argument("--scale", default="small", choices=["small", "paper"])
    ap.add_argument("--out", default=None, help="output directory (default results/<figure>-<scale>)")
    ap.add_argument("--jobs", type=int, default=1, help="parallel runs (joblib)")
    ap.add_argument("--list", action="store_true", help="list figures and their run counts")
    ap.add_argument("--dry-run", action="store_true", help="print the runs' dpsim commands")
    ap.add_argument("--tol", type=float, default=0.05, help="capacity: relative bracket width to stop at")
    ap.add_argument("--seeds", type=int, default=1, help="capacity: searches per model and system (seeds 0..n-1)")
    ap.add_argument("--models", default="", help="capacity: comma-separated subset of models")
    a = ap.parse_args(argv)
    if a.list or not a.figure:
        for f in FIGURES:
            print(f"{f:<14} small: {len(runs_for(f, 'small')):>3} runs   paper: {len(runs_for(f, 'paper')):>3} runs")
        print(f"{'capacity':<14} adaptive: bracket + bisection of APS per model and system (experiments/capacity.py)")
        return 0
    if a.figure == "capacity":
        from experiments.capacity import run_capacity
        if a.dry_run:
            ap.error("capacity is adaptive: its runs depend on earlier results (no --dry-run)")
        models = [m for m in a.models.split(",") if m] or None
        run_capacity(a.scale, Path(a.out or f"results/capacity-{a.scale}"), a.jobs, a.tol, a.seeds, models)
        return 0
    if a.dry_run:
        for r in runs_for(a.figure, a.scale):
            print("dpsim " + " ".join(r))
        return 0
    out = Path(a.out or f"results/{a.figure}-{a.scale}")
    run_figure(a.figure, a.scale, out, a.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
