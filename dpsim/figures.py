"""The paper's figures, drawn from a figure sweep's table (``dpsim -m +figure=<name>``).

A figure config (dpsim/conf/figure/<name>.yaml) names its plot (``figure.plot``); after the sweep
:func:`draw` reads ``sweep.parquet`` (dpsim.sweep.collect) and writes ``<name>.png`` and, where the
figure has one, ``<name>_summary.csv`` (the numbers behind it: ratios, capacities).

Replicates: runs that differ only in their seeds (``seed=0,1,2``; every figure config sweeps
``hydra.sweeper.params.seed``) are averaged, and every number carries its 95% confidence interval
(Student t over the replicates, :mod:`dpsim.analysis.stats`): a figure draws it as error bars, a
summary CSV has ``<column>_ci_lo`` / ``<column>_ci_hi`` beside each mean and ``n_seeds``.  Ratios
(Basic/DualPath, an ablation step over the one before) are computed per seed -- the two systems
of one seed replay the same workload -- and then averaged.  Runs of different configurations are
never averaged: every other key that varies is part of each row's index.  ``dpsim -m
+figure=...`` draws it at the end of the sweep (dpsim.sweep.CollectSweep), ``dpsim report
SWEEP_DIR`` draws it again.  Online capacity comes from :func:`dpsim.report.max_aps_within_slo`
(the one implementation).  Figures are Figure objects: no matplotlib backend is chosen or switched.
"""
from __future__ import annotations

from pathlib import Path

TTFT_PARTS = ["ttft_scheduling_s", "ttft_allocation_s", "ttft_reading_s", "ttft_prefill_s"]
SYSTEM_ORDER = ["basic", "basic_layer", "basic_layer_dpl", "round_robin", "dualpath", "oracle"]


def table(sweep):
    """The sweep table as one row per run with plain column names: every override ``K`` as
    column ``K`` (model, system, workload.mal, ...), the summary's metrics, ``error`` ("" for a
    run that wrote its summary), ``ttft_<part>_s`` from the TTFT breakdown, ``_rep`` (the run's
    replicate: its seeds, :func:`dpsim.report.replicate_id`)."""
    from .report import replicate_id

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
    d["_rep"] = replicate_id(sweep) if len(sweep) else []
    return d


def _fig(figsize):
    from .metrics.outputs import new_figure
    return new_figure(figsize=figsize, layout="constrained")


def _ok(df):
    d = df[df.error == ""]
    return d[d.jct_s.notna()] if "jct_s" in d else d


def _other_keys(d, keys, also_skip=()):
    """Config keys that vary across ``d``'s runs besides ``keys`` and the system (never averaged
    together: they become part of each row's index)."""
    from .report import varying_keys
    skip = set(keys) | {"system", *also_skip}
    return [k for k in varying_keys(d) if k not in skip and k in d]


def _systems(cols):
    return sorted(cols, key=lambda s: (SYSTEM_ORDER.index(s) if s in SYSTEM_ORDER else len(SYSTEM_ORDER), s))


def _set(row, name, iv):
    row[name], row[f"{name}_ci_lo"], row[f"{name}_ci_hi"] = iv.mean, iv.lo, iv.hi


def wide(d, index, value="jct_s", ratios=(), columns="system"):
    """Per combination of ``index`` (a list of columns of the :func:`table`): for each ``columns``
    value (system) the mean of ``value`` over the replicates and its 95% Student t interval
    (``<system>``, ``<system>_ci_lo``, ``<system>_ci_hi``); for each ``(num, den)`` in ``ratios``
    the ratio ``num/den`` computed per replicate (paired: the same seeds) with its mean and
    interval; ``n_seeds`` the number of replicates.  No interval (NaN) with one replicate."""
    import pandas as pd

    from .analysis.stats import mean_ci

    d = d.assign(_v=pd.to_numeric(d[value], errors="coerce"))
    rows = []
    groups = d.groupby(index, sort=True, dropna=False) if index else [((), d)]
    for k, g in groups:
        k = k if isinstance(k, tuple) else (k,)
        row = dict(zip(index, k))
        per = g.pivot_table(index="_rep", columns=columns, values="_v", aggfunc="first", dropna=False)
        for s in _systems(per.columns):
            _set(row, s, mean_ci(per[s]))
        for num, den in ratios:
            if num in per and den in per:
                _set(row, f"{num}/{den}", mean_ci(per[num] / per[den]))
        row["n_seeds"] = len(per)
        rows.append(row)
    return pd.DataFrame(rows)


def _err(t, name):
    """(mean, [[below], [above]]) of column ``name`` of a :func:`wide` table, for error bars (0
    where there is no interval)."""
    import numpy as np
    m = t[name].to_numpy(float)
    lo = t.get(f"{name}_ci_lo", t[name]).to_numpy(float)
    hi = t.get(f"{name}_ci_hi", t[name]).to_numpy(float)
    return m, np.vstack([np.nan_to_num(m - lo), np.nan_to_num(hi - m)])


def _ci_note(t) -> str:
    from .analysis.stats import INTERVAL
    n = t["n_seeds"] if "n_seeds" in t else []
    if len(n) and int(min(n)) >= 2:
        return f"mean of {int(min(n))}{'+' if max(n) > min(n) else ''} seeds; error bars: {INTERVAL}"
    return "one seed: no interval (replicate with seed=0,1,2)"


def _bar_ci(ax, t, labels, systems, ylabel):
    """Grouped bars (a group per row of the :func:`wide` table ``t``, a bar per system) with the
    replicates' 95% interval as error bars."""
    import numpy as np
    x = np.arange(len(t))
    w = 0.8 / max(1, len(systems))
    for i, s in enumerate(systems):
        m, e = _err(t, s)
        ax.bar(x + (i - (len(systems) - 1) / 2) * w, m, w, yerr=e, capsize=2, label=s)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


def _label_rows(t, cols):
    return [" ".join(str(v) for v in r) for r in t[cols].itertuples(index=False)] if cols else [""] * len(t)


def _bars(df, path, index, value="jct_s", title="", ratios=()):
    d = _ok(df)
    idx = [index] + _other_keys(d, [index])
    t = wide(d, idx, value, ratios)
    systems = _systems([c for c in d.system.unique()])
    fig = _fig((6, 3.6))
    ax = fig.subplots()
    _bar_ci(ax, t, _label_rows(t, idx), systems, "JCT (s)" if value == "jct_s" else value)
    ax.set_title(f"{title}\n{_ci_note(t)}" if title else _ci_note(t), fontsize=8)
    fig.savefig(path, dpi=110)
    return t


def offline_grid(df, path):
    d = _ok(df).copy()
    if "workload.mal" not in d:
        d["workload.mal"] = ""
    idx = ["model", "workload.mal", "agents"]
    idx += _other_keys(d, idx, also_skip=("workload.agents",))
    t = wide(d, idx, "jct_s", ratios=[("basic", "dualpath"), ("dualpath", "oracle")])
    panels = sorted(set(zip(t.model, t["workload.mal"])))
    fig = _fig((4 * max(1, len(panels)), 3.6))
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)
    systems = [s for s in ("basic", "dualpath", "oracle") if s in t]
    for ax, (m, mal) in zip(axes[0], panels):
        p = t[(t.model == m) & (t["workload.mal"] == mal)]
        _bar_ci(ax, p, _label_rows(p, idx[2:]), systems, "JCT (s)")
        ax.set_title(f"{m} {mal}", fontsize=9)
    fig.suptitle(_ci_note(t), fontsize=8)
    fig.savefig(path, dpi=110)
    return t


def pd_ratio(df, path):
    """§S9's P/D sweep (DS 27B 1P1D / 2P1D / 1P2D): a panel per MAL, a group of bars per (agents,
    P/D), a bar per system with its interval; the summary also has Basic/DualPath paired per seed."""
    d = _ok(df).copy()
    d["P/D"] = d["prefill_nodes"].astype(int).astype(str) + "P" + d["decode_nodes"].astype(int).astype(str) + "D"
    d = d.drop(columns=[c for c in ("prefill_nodes", "decode_nodes", "cluster.prefill_nodes",
                                    "cluster.decode_nodes") if c in d])
    if "workload.mal" not in d:
        d["workload.mal"] = ""
    idx = ["workload.mal", "agents", "P/D"]
    idx += _other_keys(d, idx, also_skip=("workload.agents",))
    t = wide(d, idx, "jct_s", ratios=[("basic", "dualpath")])
    mals = sorted(set(t["workload.mal"]))
    fig = _fig((4.5 * max(1, len(mals)), 3.8))
    axes = fig.subplots(1, max(1, len(mals)), squeeze=False)
    systems = _systems([c for c in d.system.unique()])
    for ax, mal in zip(axes[0], mals):
        p = t[t["workload.mal"] == mal]
        _bar_ci(ax, p, _label_rows(p, idx[1:]), systems, "JCT (s)")
        ax.set_title(f"DS 27B, MAL {mal}: JCT by agents and P/D", fontsize=9)
        for lab in ax.get_xticklabels():
            lab.set_rotation(45)
    fig.suptitle(_ci_note(t), fontsize=8)
    fig.savefig(path, dpi=110)
    return t


def scaling(df, path):
    import pandas as pd
    d = _ok(df).copy()
    fig = _fig((9, 3.6))
    axes = fig.subplots(1, 2)
    out = []
    kinds = ("workload.append_scale", "workload.gen_scale")
    for ax, kind in zip(axes, kinds):
        s = d[d[kind].notna()] if kind in d else d.iloc[0:0]
        if not len(s):
            continue
        s = s.assign(factor=s[kind].astype(float))
        idx = ["factor"] + _other_keys(s, ["factor"], also_skip=kinds)
        t = wide(s, idx, "jct_s", ratios=[("basic", "dualpath")])
        for sy in _systems([c for c in s.system.unique()]):
            m, e = _err(t, sy)
            ax.errorbar(t.factor, m, yerr=e, marker="o", capsize=3, label=sy)
        ax.set_title(f"{kind.split('.')[1]}\n{_ci_note(t)}", fontsize=8)
        ax.set_ylabel("JCT (s)")
        ax.set_xlabel(f"every round's {kind.split('.')[1].split('_')[0]} x factor (§S8)")
        ax.legend(fontsize=7)
        out.append(t.assign(kind=kind))
    fig.savefig(path, dpi=110)
    return pd.concat(out) if out else None


ABLATION_STEPS = [("basic_layer", "basic"), ("basic_layer_dpl", "basic_layer"), ("dualpath", "basic_layer_dpl"),
                  ("oracle", "dualpath")]


def ablation(df, path):
    """Bars per step; the summary also has each step's JCT relative to the step before it, paired
    per seed (the issue's test: each step moves JCT by more than the interval)."""
    return _bars(df.assign(step="DS 660B 2P4D, agents:"), path, "step", title="Ablation (Basic -> +layerwise -> +dual-path "
                 "loading -> DualPath -> Oracle)", ratios=ABLATION_STEPS)


def _by_system(d, metrics, index=()):
    """Per (index..., system): each metric's mean and 95% interval over the replicates."""
    import pandas as pd

    from .analysis.stats import mean_ci
    rows = []
    for k, g in d.groupby([*index, "system"], sort=False):
        k = k if isinstance(k, tuple) else (k,)
        row = dict(zip([*index, "system"], k))
        for m in metrics:
            _set(row, m, mean_ci(pd.to_numeric(g[m], errors="coerce")))
        row["n_seeds"] = g["_rep"].nunique()
        rows.append(row)
    out = pd.DataFrame(rows)
    if not len(out):
        return out
    order = {s: i for i, s in enumerate(_systems(list(out.system.unique())))}
    return out.assign(_o=out.system.map(order)).sort_values([*index, "_o"], kind="stable").drop(columns="_o") \
        .reset_index(drop=True)


BALANCE_SERIES = (("snic_balance.parquet", "storage NIC read max/avg (windows of metrics.sample_dt)"),
                  ("attention_balance.parquet", "attention time max/avg per forward (EP group)"))
BALANCE_BINS = 40  # time bins of a balance time series (assumption: a readable curve)


def balance_timeseries(d, bins: int = BALANCE_BINS):
    """The balance time series of the runs of table ``d`` (column ``_run_dir``: each run's
    directory with snic_balance.parquet / attention_balance.parquet, dpsim.metrics.balance):
    per configuration (system and any varying key), metric and time bin (``bins`` equal bins from
    0 to the longest run's last sample), each seed's mean max/avg in the bin, then the mean over
    the seeds with its 95% interval (a bin without a sample in some seed has fewer seeds).  Tidy:
    one row per (config, metric, bin)."""
    import numpy as np
    import pandas as pd

    from .analysis.stats import mean_ci
    keys = ["system"] + _other_keys(d, [])
    per = []
    for _, r in d.iterrows():
        rd = r.get("_run_dir")
        if not isinstance(rd, str):
            continue
        for f, metric in BALANCE_SERIES:
            p = Path(rd) / f
            if not p.exists():
                continue
            x = pd.read_parquet(p, columns=["time_s", "max_over_avg"]).dropna()
            if len(x):
                per.append(x.assign(metric=f.split(".")[0], _rep=r["_rep"], **{k: r[k] for k in keys}))
    if not per:
        return pd.DataFrame(columns=[*keys, "metric", "t_lo_s", "t_hi_s", "mean", "ci_low", "ci_high", "n_seeds"])
    x = pd.concat(per, ignore_index=True)
    edges = np.linspace(0.0, float(x.time_s.max()) * (1 + 1e-12), bins + 1)
    x["_bin"] = np.clip(np.searchsorted(edges, x.time_s.to_numpy(), side="right") - 1, 0, bins - 1)
    seed_means = x.groupby([*keys, "metric", "_bin", "_rep"], sort=True).max_over_avg.mean().reset_index()
    rows = []
    for k, g in seed_means.groupby([*keys, "metric", "_bin"], sort=True):
        iv = mean_ci(g.max_over_avg)
        b = int(k[-1])
        rows.append({**dict(zip([*keys, "metric"], k[:-1])), "t_lo_s": edges[b], "t_hi_s": edges[b + 1],
                     "mean": iv.mean, "ci_low": iv.lo, "ci_high": iv.hi, "n_seeds": iv.n})
    return pd.DataFrame(rows)


def balance(df, path):
    """Top: storage-NIC balance and attention-time balance over time (mean over seeds per time
    bin with its interval as a band; balance_timeseries.csv).  Bottom: each metric's whole-run
    mean per system with its interval (the summary)."""
    import numpy as np
    d = _ok(df)
    metrics = ["snic_balance_max_over_avg", "attention_balance_max_over_avg", "jct_s"]
    t = _by_system(d, metrics, _other_keys(d, []))
    ts = balance_timeseries(d)
    ts.to_csv(Path(path).with_name("balance_timeseries.csv"), index=False)
    fig = _fig((10, 6.4))
    axes = fig.subplots(2, 2)
    keys = ["system"] + _other_keys(d, [])
    for ax, (f, title) in zip(axes[0], BALANCE_SERIES):
        m = ts[ts.metric == f.split(".")[0]] if len(ts) else ts
        for k, g in (m.groupby(keys, sort=False) if len(m) else []):
            k = k if isinstance(k, tuple) else (k,)
            mid = 0.5 * (g.t_lo_s + g.t_hi_s)
            line = ax.plot(mid, g["mean"], lw=1.2, label=" ".join(map(str, k)))[0]
            ok = np.isfinite(g.ci_low.to_numpy(float))
            if ok.any():
                ax.fill_between(mid[ok], g.ci_low[ok], g.ci_high[ok], color=line.get_color(), alpha=0.2, lw=0)
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("max / avg")
        ax.set_title(title, fontsize=9)
        if len(m):
            ax.legend(fontsize=7)
    lab = _label_rows(t, [c for c in t.columns if c == "system" or c in _other_keys(d, [])])
    for ax, m, title in zip(axes[1], metrics, ("storage NIC max/avg, whole run", "attention time max/avg, whole run")):
        v, e = _err(t, m)
        ax.bar(range(len(t)), v, yerr=e, capsize=3)
        ax.set_xticks(range(len(t)))
        ax.set_xticklabels(lab, fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.suptitle(_ci_note(t) + "; bands: the same interval per time bin", fontsize=8)
    fig.savefig(path, dpi=110)
    return t


def _keys(d, keys):
    """``keys`` and any other config key that varies across the runs (never averaged together)."""
    from .report import varying_keys
    return list(keys) + [k for k in varying_keys(d) if k not in keys and k not in ("aps", "workload.aps")
                         and not k.startswith(("workload.agents", "agents"))]


def _capacity_per_rep(d, keys):
    """Per (keys..., replicate): max APS within the SLO (:func:`dpsim.report.max_aps_within_slo`,
    from that replicate's runs only), the smallest APS above it that did not meet it, the runs."""
    import math

    from .report import _col, max_aps_within_slo
    rows = []
    for r in max_aps_within_slo(d.assign(**{"override._rep": d["_rep"]}), keys + ["_rep"]):
        sel = d
        for k, v in zip(keys + ["_rep"], r[:len(keys) + 1]):
            sel = sel[sel[_col(k) if k != "_rep" else "_rep"] == v]
        ok = r[len(keys) + 1]
        bad = sel[(~sel.slo_met.astype(bool)) & (sel.aps.astype(float) > ok)].aps.astype(float)
        rows.append({**dict(zip(keys + ["_rep"], r[:len(keys) + 1])), "max_aps_within_slo": ok,
                     "min_aps_violating": float(bad.min()) if len(bad) else math.nan, "runs": r[-1]})
    return rows


def capacity_table(df, keys=("model", "system")):
    """Per group of ``keys`` (and any other varying config key): the largest APS whose run met the
    SLO (:func:`dpsim.report.max_aps_within_slo`), read per replicate (seed) from its own runs, then
    its mean over the replicates with the 95% Student t interval (``_ci_lo``/``_ci_hi``,
    ``n_seeds``); the smallest APS above it that did not meet it (mean over seeds); the runs; and
    ``dualpath/basic`` (paired per seed) -- from a sweep table of online runs."""
    import pandas as pd

    from .analysis.stats import mean_ci
    d = df[df.error == ""]
    if "_rep" not in d:
        d = d.assign(_rep="")
    if not len(d):
        return pd.DataFrame(columns=[*keys, "max_aps_within_slo", "min_aps_violating", "runs"])
    keys = _keys(d, keys)
    per = pd.DataFrame(_capacity_per_rep(d, keys))
    rows = []
    for k, g in per.groupby(keys, sort=True):
        k = k if isinstance(k, tuple) else (k,)
        row = dict(zip(keys, k))
        _set(row, "max_aps_within_slo", mean_ci(g.max_aps_within_slo))
        row["min_aps_violating"] = mean_ci(g.min_aps_violating).mean
        row["runs"] = int(g.runs.sum())
        row["n_seeds"] = len(g)
        rows.append(row)
    out = pd.DataFrame(rows)
    other = [k for k in keys if k != "system"]
    if {"basic", "dualpath"} <= set(out.get("system", [])) and other:  # per config, never across configs
        piv = per.pivot_table(index=other + ["_rep"], columns="system", values="max_aps_within_slo",
                              aggfunc="first")
        rat = []
        for k, g in (piv["dualpath"] / piv["basic"]).groupby(level=other):
            iv = mean_ci(g.replace([float("inf")], float("nan")))
            rat.append({**dict(zip(other, k if isinstance(k, tuple) else (k,))), "dualpath/basic": iv.mean,
                        "dualpath/basic_ci_lo": iv.lo, "dualpath/basic_ci_hi": iv.hi})
        out = out.merge(pd.DataFrame(rat), on=other, how="left")
    return out


def none_met_lines(c) -> list[str]:
    """A capacity bar of 0 means "no APS tried met the SLO", not "capacity 0" (e.g. a single-APS
    figure): one line per such config/system of ``c`` (a capacity table with a ``config``
    label column) naming the bound it does give."""
    if "min_aps_violating" not in c:
        return []
    none = c[(c.max_aps_within_slo == 0) & c.min_aps_violating.notna()]
    return [f"{r.config} {r.system}: no APS tried met the SLO (capacity < {float(r.min_aps_violating):g} APS)"
            for r in none.itertuples()]


def _capacity_plot(df, cap, path, breakdown_label, title=""):
    """Left: max APS within the SLO, a group of bars per config (every key but the system), a bar
    per system, with the seeds' 95% interval.  Right: the TTFT breakdown at that APS (each seed's
    run at its own capacity, averaged over the seeds)."""
    fig = _fig((10, 3.8))
    axes = fig.subplots(1, 2)
    other = [c for c in cap.columns if c not in ("system", "max_aps_within_slo", "min_aps_violating", "runs",
                                                   "n_seeds") and not c.startswith(("dualpath/basic",
                                                                                    "max_aps_within_slo_"))]
    label = lambda t: " ".join(str(t[c]) for c in other)  # noqa: E731
    if len(cap) and "system" in cap:
        c = cap.assign(config=cap.apply(label, axis=1))
        systems = _systems(list(c.system.unique()))
        cols = {}
        for stat in ("", "_ci_lo", "_ci_hi"):
            p = c.pivot(index="config", columns="system", values=f"max_aps_within_slo{stat}")
            for s in systems:
                cols[f"{s}{stat}"] = p[s]
        import pandas as pd
        t = pd.DataFrame(cols).reset_index()
        _bar_ci(axes[0], t, list(t.config), systems, "max APS within SLO")
        none = none_met_lines(c)
        if none:
            axes[0].text(0.01, 0.98, "\n".join(none), transform=axes[0].transAxes, va="top", ha="left", fontsize=7,
                         bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    axes[0].set_title((f"{title}\n" if title else "") + _ci_note(cap), fontsize=8)
    d = df[(df.error == "") & df.slo_met.astype(bool)] if "slo_met" in df else df.iloc[0:0]
    if len(d) and set(TTFT_PARTS) <= set(d.columns) and all(c in d for c in other):
        best = d.assign(_a=d.aps.astype(float)).sort_values("_a").groupby(other + ["system", "_rep"]).tail(1)
        best = best.groupby(other + ["system"], sort=False)[TTFT_PARTS].mean().reset_index()
        best.set_index(best.apply(label, axis=1) + "/" + best.system)[TTFT_PARTS].plot.bar(
            stacked=True, ax=axes[1], rot=30)
    axes[1].set_ylabel(breakdown_label)
    axes[1].set_title("each seed's run at its capacity, mean over seeds", fontsize=8)
    fig.savefig(path, dpi=110)


def ttft_breakdown(df):
    """Tidy TTFT breakdown (§S8: scheduling, allocation, KV reading, prefill; and their sum) at
    every APS: per configuration (system, APS and any other varying key), part: the mean over the
    seeds of each run's mean, its 95% interval and the number of seeds.  Runs that failed are
    left out; runs that missed the SLO are kept (``slo_met`` says which)."""
    import pandas as pd

    from .analysis.stats import mean_ci
    d = df[df.error == ""] if "error" in df else df
    if not len(d) or not set(TTFT_PARTS) <= set(d.columns):
        return pd.DataFrame(columns=["system", "aps", "part", "mean", "ci_low", "ci_high", "n_seeds"])
    d = d.assign(aps=d.aps.astype(float), ttft_total_s=d[TTFT_PARTS].apply(pd.to_numeric, errors="coerce").sum(
        axis=1, min_count=len(TTFT_PARTS)))
    keys = [k for k in _other_keys(d, ["aps"], also_skip=("workload.aps",))] + ["system", "aps"]
    rows = []
    for k, g in d.groupby(keys, sort=True):
        k = k if isinstance(k, tuple) else (k,)
        for part in [*TTFT_PARTS, "ttft_total_s"]:
            iv = mean_ci(pd.to_numeric(g[part], errors="coerce"))
            rows.append({**dict(zip(keys, k)), "part": part, "mean": iv.mean, "ci_low": iv.lo, "ci_high": iv.hi,
                         "n_seeds": iv.n,
                         "slo_met_seeds": int(g.slo_met.astype(bool).sum()) if "slo_met" in g else None})
    return pd.DataFrame(rows)


def online(df, path):
    """Top: max APS within the SLO per config and system (read off the ladder per seed) and the
    breakdown at that APS.  Bottom: the TTFT breakdown at every APS of the ladder, a panel per
    config, stacked means over seeds with the total's 95% interval (online_ttft_breakdown.csv)."""
    import numpy as np
    cap = capacity_table(df)
    _capacity_plot(df, cap, path, "TTFT breakdown (s)")
    br = ttft_breakdown(df)
    br.to_csv(Path(path).with_name(Path(path).stem + "_ttft_breakdown.csv"), index=False)
    if len(br):
        other = [c for c in br.columns if c not in ("system", "aps", "part", "mean", "ci_low", "ci_high",
                                                     "n_seeds", "slo_met_seeds")]
        cfgs = list(br.groupby(other, sort=True)) if other else [((), br)]
        fig = _fig((max(6.0, 4.5 * len(cfgs)), 4.0))
        axes = fig.subplots(1, len(cfgs), squeeze=False)[0]
        for ax, (k, g) in zip(axes, cfgs):
            w = g.pivot_table(index=["aps", "system"], columns="part", values="mean", aggfunc="first")
            lo = g[g.part == "ttft_total_s"].set_index(["aps", "system"])
            w = w.reindex(sorted(w.index, key=lambda i: (i[0], SYSTEM_ORDER.index(i[1]) if i[1] in SYSTEM_ORDER
                                                         else len(SYSTEM_ORDER))))
            x = np.arange(len(w))
            bottom = np.zeros(len(w))
            for part in TTFT_PARTS:
                v = np.nan_to_num(w[part].to_numpy(float))
                ax.bar(x, v, 0.8, bottom=bottom, label=part[5:-2])
                bottom += v
            tot = lo.reindex(w.index)
            m = tot["mean"].to_numpy(float)
            e = np.vstack([np.nan_to_num(m - tot.ci_low.to_numpy(float)), np.nan_to_num(tot.ci_high.to_numpy(float) - m)])
            ax.errorbar(x, m, yerr=e, fmt="none", ecolor="k", capsize=2, lw=0.8)
            ax.set_xticks(x)
            ax.set_xticklabels([f"{sy} @{a:g}" for a, sy in w.index], fontsize=7, rotation=90)
            ax.set_xlabel("system @ APS")
            ax.set_ylabel("TTFT (s), mean of run means")
            k = k if isinstance(k, tuple) else (k,)
            ax.set_title(("TTFT breakdown by APS " + " ".join(map(str, k))).strip(), fontsize=9)
            ax.legend(fontsize=7)
        fig.suptitle("bars: mean over seeds; error bars: total TTFT, 95% CI (Student t over seeds)", fontsize=8)
        fig.savefig(Path(path).with_name(Path(path).stem + "_ttft_breakdown.png"), dpi=110)
    return cap


def capacity(df, path):
    cap = capacity_table(df)
    _capacity_plot(df, cap, path, "TTFT breakdown at capacity (s)",
                   title="online capacity (TTFT <= 4 s, TPOT <= 50 ms)")
    return cap


def large_scale(df, path):
    return _bars(df.assign(run="run"), path, "run", ratios=[("basic", "dualpath")])


def headline(df, path):
    """One row: each system's JCT (mean over seeds and interval) and the JCT ratios paired per seed."""
    import pandas as pd
    d = _ok(df)
    t = _bars(d.assign(run="ds660b 2P4D 64K"), path, "run", title="DS 660B 2P4D 64K offline",
              ratios=[("dualpath", "basic"), ("oracle", "dualpath")])
    out = {}
    for _, r in t.iterrows():
        for col, v in r.items():
            if col == "run":
                continue
            name = col
            for s in ("basic", "dualpath", "oracle"):
                if col == s or col.startswith(f"{s}_ci_"):
                    name = f"{s}_jct_s" + col[len(s):]
            for a, b in (("dualpath", "basic"), ("oracle", "dualpath")):
                if col.startswith(f"{a}/{b}"):
                    name = f"{a}/{b} JCT" + col[len(f"{a}/{b}"):]
            out[name] = v
    return pd.DataFrame([out])


PLOTS = {"headline": headline, "offline_grid": offline_grid, "pd_ratio": pd_ratio, "scaling": scaling,
         "ablation": ablation, "balance": balance, "online": online, "capacity": capacity,
         "large_scale": large_scale}


OFFLINE_METRICS = ["jct_s", "ttft_s.mean", "ttft_s.p99", "tpot_s.mean", "trajectory_jct_s.mean"]
ONLINE_METRICS = ["ttft_s.mean", "ttft_s.p90", "ttft_s.p99", "tpot_s.mean", "ttst_s.mean", "trajectory_jct_s.mean",
                  *TTFT_PARTS, "slo_met"]
TIDY_METRICS = {"balance": OFFLINE_METRICS + ["snic_balance_max_over_avg", "attention_balance_max_over_avg"],
                "online": ONLINE_METRICS, "capacity": ONLINE_METRICS}


def tidy(d, metrics, derived=None):
    """The tidy table of a figure: one row per configuration (``system`` and every config key that
    varies across the runs; seeds are the replicates, never a key) and ``metric``: ``mean`` over the
    seeds, ``ci_low``/``ci_high`` (95% Student t, :func:`dpsim.analysis.stats.mean_ci`; NaN with one
    seed) and ``n_seeds``.  ``derived`` (the figure's wide summary): its paired per-seed ratios
    (columns ``a/b...`` with ``_ci_lo``/``_ci_hi``) and capacities are added as rows too, with
    ``system`` empty for a ratio."""
    import pandas as pd

    from .analysis.stats import mean_ci
    d = _ok(d) if "jct_s" in d else d[d.error == ""]
    keys = ["system"] + [k for k in _other_keys(d, [])]
    rows = []
    if len(d):
        for k, g in d.groupby(keys, sort=True, dropna=False):
            k = k if isinstance(k, tuple) else (k,)
            for m in metrics:
                if m not in g:
                    continue
                iv = mean_ci(pd.to_numeric(g[m].astype(float) if m == "slo_met" else g[m], errors="coerce"))
                rows.append({**dict(zip(keys, k)), "metric": m, "mean": iv.mean, "ci_low": iv.lo, "ci_high": iv.hi,
                             "n_seeds": iv.n})
    if derived is not None and len(derived):
        stats = [c[:-len("_ci_lo")] for c in derived.columns if c.endswith("_ci_lo")]
        extra = [c for c in stats if "/" in c or c == "max_aps_within_slo"]
        ids = [c for c in derived.columns if c not in stats and not c.endswith(("_ci_lo", "_ci_hi"))
               and c not in ("n_seeds", "runs", "min_aps_violating", "converged", "seeds")]
        for _, r in derived.iterrows():
            for m in extra:
                rows.append({**{c: r[c] for c in ids}, "metric": m, "mean": r[m], "ci_low": r[f"{m}_ci_lo"],
                             "ci_high": r[f"{m}_ci_hi"], "n_seeds": r.get("n_seeds")})
    out = pd.DataFrame(rows)
    if len(out) and "system" in out:
        out["system"] = out["system"].where(out["system"].notna(), "")
    return out


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
    adaptive capacity figure: one per search, each without its ``workload.aps``).  ``overrides`` act
    as on ``dpsim -m``'s command line: a task override (``seed=0,1``, ``model=ds27b``) replaces the
    grids' and the sweeper params' values of its key in every job; ``hydra.*`` ones set the sweeper."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from .sweep import expand_grids

    ovs = list(overrides)
    parsed = OverridesParser.create().parse_overrides(ovs)
    hydra_ = [o for o, p in zip(ovs, parsed) if p.get_key_element().lstrip("+~").startswith(("hydra.", "hydra/"))]
    task = [o for o in ovs if o not in hydra_]
    fixed = [o for o, p in zip(ovs, parsed) if o in task and not p.is_sweep_override()]
    sw = sweeper_config(name, scale, hydra_ + fixed)
    return expand_grids(sw.get("grids") or [], [f"{k}={v}" for k, v in (sw.get("params") or {}).items()] + task)


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
    if "_run_dir" not in df and "job" in df:  # the run directories (time series read by some figures)
        df = df.assign(_run_dir=[str(d / j) for j in df["job"]])
    t = table(df)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    derived = PLOTS[fig["plot"]](t, out / f"{name}.png")
    files = [f"{name}.png"]
    if derived is not None:
        derived.to_csv(out / f"{name}_summary.csv", index=False)
        files.append(f"{name}_summary.csv")
    tidy(t, TIDY_METRICS.get(fig["plot"], OFFLINE_METRICS), derived).to_csv(out / f"{name}_tidy.csv", index=False)
    files.append(f"{name}_tidy.csv")
    files += sorted(p.name for p in out.iterdir() if p.name not in files and p.suffix in (".png", ".csv")
                    and before.get(p.name) != p.stat().st_mtime_ns)  # what the plot wrote besides
    return files
