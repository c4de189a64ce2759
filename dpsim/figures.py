"""The paper's figures, drawn from a figure sweep's table (``dpsim -m +figure=<name>``).

A figure config (dpsim/conf/figure/<name>.yaml) names its plot (``figure.plot``); after the sweep
:func:`draw` reads ``sweep.parquet`` (dpsim.sweep.collect) and writes ``<name>.png`` and, where the
figure has one, ``<name>_summary.csv`` (the numbers behind it: ratios, capacities).  ``dpsim -m
+figure=...`` draws it at the end of the sweep (dpsim.sweep.CollectSweep), ``dpsim report
SWEEP_DIR`` draws it again.  Online capacity comes from :func:`dpsim.report.max_aps_within_slo`
(the one implementation).  Figures are Figure objects: no matplotlib backend is chosen or switched.
"""
from __future__ import annotations

from pathlib import Path

TTFT_PARTS = ["ttft_scheduling_s", "ttft_allocation_s", "ttft_reading_s", "ttft_prefill_s"]


def table(sweep):
    """The sweep table as one row per run with plain column names: every override ``K`` as
    column ``K`` (model, system, workload.mal, ...), the summary's metrics, ``error`` ("" for a
    run that wrote its summary), ``ttft_<part>_s`` from the TTFT breakdown."""
    d = sweep.copy()
    for c in list(d.columns):
        if c.startswith("override."):
            k = c[len("override."):]
            if k not in ("model", "system"):  # the summary's (typed) values win
                d[k] = d[c]
            elif k not in d:
                d[k] = d[c]
    d["error"] = [("" if s == "ok" else (e or s)) for s, e in zip(d.get("status", ["ok"] * len(d)),
                                                                  d.get("error", [""] * len(d)))]
    for part in ("scheduling", "allocation", "reading", "prefill"):
        c = f"ttft_breakdown_s.{part}"
        if c in d:
            d[f"ttft_{part}_s"] = d[c]
    return d


def _fig(figsize):
    from .metrics.outputs import new_figure
    return new_figure(figsize=figsize, layout="constrained")


def _ok(df):
    d = df[df.error == ""]
    return d[d.jct_s.notna()] if "jct_s" in d else d


def _bars(df, path, index, value="jct_s", title=""):
    d = _ok(df)
    p = d.pivot_table(index=index, columns="system", values=value)
    fig = _fig((6, 3.6))
    ax = fig.subplots()
    p.plot.bar(ax=ax, rot=0)
    ax.set_ylabel(value)
    ax.set_title(title)
    fig.savefig(path, dpi=110)
    return p.reset_index()


def offline_grid(df, path):
    d = _ok(df).copy()
    if "workload.mal" not in d:
        d["workload.mal"] = ""
    panels = sorted(set(zip(d.model, d["workload.mal"])))
    fig = _fig((4 * max(1, len(panels)), 3.4))
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)
    for ax, (m, mal) in zip(axes[0], panels):
        p = d[(d.model == m) & (d["workload.mal"] == mal)].pivot_table(index="agents", columns="system",
                                                                       values="jct_s")
        p = p[[c for c in ("basic", "dualpath", "oracle") if c in p]]
        p.plot.bar(ax=ax, rot=0)
        ax.set_title(f"{m} {mal}")
        ax.set_ylabel("JCT (s)")
    fig.savefig(path, dpi=110)
    piv = d.pivot_table(index=["model", "workload.mal", "agents"], columns="system", values="jct_s").reset_index()
    if {"basic", "dualpath"} <= set(piv.columns):
        piv["basic/dualpath"] = piv["basic"] / piv["dualpath"]
    if {"oracle", "dualpath"} <= set(piv.columns):
        piv["dualpath/oracle"] = piv["dualpath"] / piv["oracle"]
    return piv


def pd_ratio(df, path):
    df = df.copy()
    df["P/D"] = df["prefill_nodes"].astype(int).astype(str) + "P" + df["decode_nodes"].astype(int).astype(str) + "D"
    return _bars(df, path, "P/D", title="DS 27B, 64K: JCT by P/D")


def scaling(df, path):
    import pandas as pd
    d = _ok(df).copy()
    fig = _fig((9, 3.4))
    axes = fig.subplots(1, 2)
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
    fig.savefig(path, dpi=110)
    return pd.concat(out) if out else None


def ablation(df, path):
    return _bars(df.assign(step="ds660b 64K"), path, "step", title="Ablation")


def balance(df, path):
    d = _ok(df)
    fig = _fig((8, 3.2))
    axes = fig.subplots(1, 2)
    d.set_index("system")["snic_balance_max_over_avg"].plot.bar(ax=axes[0], rot=0)
    axes[0].set_title("storage NIC max/avg (3 nodes)")
    d.set_index("system")["attention_balance_max_over_avg"].plot.bar(ax=axes[1], rot=0)
    axes[1].set_title("attention time max/avg")
    fig.savefig(path, dpi=110)
    return d[["system", "snic_balance_max_over_avg", "attention_balance_max_over_avg", "jct_s"]]


def _keys(d, keys):
    """``keys`` and any other config key that varies across the runs (never averaged together)."""
    from .report import varying_keys
    return list(keys) + [k for k in varying_keys(d) if k not in keys and k not in ("aps", "workload.aps")
                         and not k.startswith(("workload.agents", "agents"))]


def capacity_table(df, keys=("model", "system")):
    """Per group of ``keys`` (and any other varying config key): the largest APS whose run met the
    SLO (:func:`dpsim.report.max_aps_within_slo`), the smallest APS above it that did not, and the
    runs -- from a sweep table of online runs."""
    import math

    import pandas as pd

    from .report import _col, max_aps_within_slo
    d = df[df.error == ""]
    if not len(d):
        return pd.DataFrame(columns=[*keys, "max_aps_within_slo", "min_aps_violating", "runs"])
    keys = _keys(d, keys)
    rows = []
    for r in max_aps_within_slo(d, keys):
        sel = d
        for k, v in zip(keys, r[:len(keys)]):
            sel = sel[sel[_col(k)] == v]
        ok = r[len(keys)]
        bad = sel[(~sel.slo_met.astype(bool)) & (sel.aps.astype(float) > ok)].aps.astype(float)
        rows.append({**dict(zip(keys, r[:len(keys)])), "max_aps_within_slo": ok,
                     "min_aps_violating": float(bad.min()) if len(bad) else math.nan, "runs": r[-1]})
    out = pd.DataFrame(rows)
    other = [k for k in keys if k != "system"]
    if {"basic", "dualpath"} <= set(out.get("system", [])) and other:  # per config, never across configs
        piv = out.pivot(index=other, columns="system", values="max_aps_within_slo")
        out = out.merge((piv["dualpath"] / piv["basic"]).rename("dualpath/basic").reset_index(), on=other,
                        how="left")
    return out


def _capacity_plot(df, cap, path, breakdown_label, title=""):
    """Left: max APS within the SLO, a group of bars per config (every key but the system), a bar
    per system.  Right: the TTFT breakdown of each group's run at that APS."""
    fig = _fig((10, 3.6))
    axes = fig.subplots(1, 2)
    other = [c for c in cap.columns if c not in ("system", "max_aps_within_slo", "min_aps_violating", "runs",
                                                   "dualpath/basic")]
    label = lambda t: " ".join(str(t[c]) for c in other)  # noqa: E731
    if len(cap) and "system" in cap:
        cap.assign(config=cap.apply(label, axis=1)).pivot(index="config", columns="system",
                                                          values="max_aps_within_slo").plot.bar(ax=axes[0], rot=0)
    axes[0].set_ylabel("max APS within SLO")
    if title:
        axes[0].set_title(title)
    d = df[(df.error == "") & df.slo_met.astype(bool)] if "slo_met" in df else df.iloc[0:0]
    if len(d) and set(TTFT_PARTS) <= set(d.columns) and all(c in d for c in other):
        best = d.assign(_a=d.aps.astype(float)).sort_values("_a").groupby(other + ["system"]).tail(1)
        best.set_index(best.apply(label, axis=1) + "/" + best.system)[TTFT_PARTS].plot.bar(
            stacked=True, ax=axes[1], rot=30)
    axes[1].set_ylabel(breakdown_label)
    fig.savefig(path, dpi=110)


def online(df, path):
    cap = capacity_table(df)
    _capacity_plot(df, cap, path, "TTFT breakdown (s)")
    return cap


def capacity(df, path):
    cap = capacity_table(df)
    _capacity_plot(df, cap, path, "TTFT breakdown at capacity (s)",
                   title="online capacity (TTFT <= 4 s, TPOT <= 50 ms)")
    return cap


def large_scale(df, path):
    return _bars(df.assign(run="run"), path, "run")


def headline(df, path):
    import pandas as pd
    j = _ok(df).set_index("system").jct_s
    out = pd.DataFrame([{
        "basic_jct_s": j.get("basic"), "dualpath_jct_s": j.get("dualpath"), "oracle_jct_s": j.get("oracle"),
        "dualpath/basic JCT": j.get("dualpath") / j.get("basic") if {"basic", "dualpath"} <= set(j.index) else None,
        "oracle/dualpath JCT": j.get("oracle") / j.get("dualpath") if {"oracle", "dualpath"} <= set(j.index) else None,
    }])
    _bars(df.assign(run="ds660b 2P4D 64K"), path, "run", title="DS 660B 2P4D 64K offline")
    return out


PLOTS = {"headline": headline, "offline_grid": offline_grid, "pd_ratio": pd_ratio, "scaling": scaling,
         "ablation": ablation, "balance": balance, "online": online, "capacity": capacity,
         "large_scale": large_scale}


CONF = Path(__file__).resolve().parent / "conf" / "figure"


def names() -> list[str]:
    """The paper's figures: dpsim/conf/figure/<name>.yaml (and <name>_small.yaml)."""
    return sorted(p.stem for p in CONF.glob("*.yaml") if not p.stem.startswith("_") and not p.stem.endswith("_small"))


def config_name(name: str, scale: str) -> str:
    """``+figure=`` option of a figure at a scale (``paper`` or ``small``)."""
    if name not in names():
        raise ValueError(f"unknown figure {name!r}; choose from {names()}")
    if scale not in ("paper", "small"):
        raise ValueError(f"scale must be 'paper' or 'small' (got {scale!r})")
    return name if scale == "paper" else f"{name}_small"


def sweeper_config(name: str, scale: str, overrides=()) -> dict:
    """The ``hydra.sweeper`` node of ``dpsim -m +figure=<name>[_small] <overrides>``."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="dpsim.conf", version_base=None):
        cfg = compose(config_name="config", overrides=[f"+figure={config_name(name, scale)}", *overrides],
                      return_hydra_config=True)
        return OmegaConf.to_container(cfg.hydra.sweeper, resolve=False)


def runs_for(name: str, scale: str, overrides=()) -> list[list[str]]:
    """The runs of a figure: the overrides each job adds to ``+figure=<name>[_small]`` (for the
    adaptive capacity figure: one per search, each without its ``workload.aps``)."""
    from .sweep import expand_grids

    sw = sweeper_config(name, scale, overrides)
    return expand_grids(sw.get("grids") or [], [f"{k}={v}" for k, v in (sw.get("params") or {}).items()])


def figure_of(sweep_dir: str | Path) -> dict | None:
    """The ``figure`` node of a sweep's multirun.yaml (None: not a figure sweep)."""
    import yaml
    p = Path(sweep_dir) / "multirun.yaml"
    if not p.exists():
        return None
    fig = (yaml.safe_load(p.read_text()) or {}).get("figure")
    return fig if isinstance(fig, dict) and fig.get("plot") in PLOTS else None


def draw(sweep_dir: str | Path, out: str | Path | None = None, df=None) -> list[str]:
    """Draw the figure of a figure sweep from its table; returns the files written ([] when
    ``sweep_dir`` is not a figure sweep or has no runs)."""
    import pandas as pd

    from .sweep import collect
    d = Path(sweep_dir)
    fig = figure_of(d)
    if fig is None:
        return []
    if df is None:
        p = d / "sweep.parquet"
        df = pd.read_parquet(p) if p.exists() else collect(d)
    if not len(df):
        return []
    out = Path(out) if out else d
    out.mkdir(parents=True, exist_ok=True)
    name = fig["name"]
    derived = PLOTS[fig["plot"]](table(df), out / f"{name}.png")
    files = [f"{name}.png"]
    if derived is not None:
        derived.to_csv(out / f"{name}_summary.csv", index=False)
        files.append(f"{name}_summary.csv")
    return files
