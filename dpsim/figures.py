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
    df = df.copy()
    df["P/D"] = df["prefill_nodes"].astype(int).astype(str) + "P" + df["decode_nodes"].astype(int).astype(str) + "D"
    return _bars(df.drop(columns=[c for c in ("prefill_nodes", "decode_nodes", "cluster.prefill_nodes",
                                              "cluster.decode_nodes") if c in df]),
                 path, "P/D", title="DS 27B, 64K: JCT by P/D", ratios=[("basic", "dualpath")])


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
        ax.legend(fontsize=7)
        out.append(t.assign(kind=kind))
    fig.savefig(path, dpi=110)
    return pd.concat(out) if out else None


ABLATION_STEPS = [("basic_layer", "basic"), ("basic_layer_dpl", "basic_layer"), ("dualpath", "basic_layer_dpl"),
                  ("oracle", "dualpath")]


def ablation(df, path):
    """Bars per step; the summary also has each step's JCT relative to the step before it, paired
    per seed (the issue's test: each step moves JCT by more than the interval)."""
    return _bars(df.assign(step="ds660b 64K"), path, "step", title="Ablation", ratios=ABLATION_STEPS)


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


def balance(df, path):
    d = _ok(df)
    metrics = ["snic_balance_max_over_avg", "attention_balance_max_over_avg", "jct_s"]
    t = _by_system(d, metrics, _other_keys(d, []))
    fig = _fig((8, 3.4))
    axes = fig.subplots(1, 2)
    lab = _label_rows(t, [c for c in t.columns if c == "system" or c in _other_keys(d, [])])
    for ax, m, title in zip(axes, metrics, ("storage NIC max/avg (3 nodes)", "attention time max/avg")):
        v, e = _err(t, m)
        ax.bar(range(len(t)), v, yerr=e, capsize=3)
        ax.set_xticks(range(len(t)))
        ax.set_xticklabels(lab, fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.suptitle(_ci_note(t), fontsize=8)
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
    derived = PLOTS[fig["plot"]](table(df), out / f"{name}.png")
    files = [f"{name}.png"]
    if derived is not None:
        derived.to_csv(out / f"{name}_summary.csv", index=False)
        files.append(f"{name}_summary.csv")
    return files
