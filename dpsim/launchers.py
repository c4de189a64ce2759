"""Sweeps on real engines: optional Hydra launcher/sweeper plugins, and the search objective.

* :func:`missing_plugin_message` -- ``dpsim -m hydra/launcher=ray ...`` with the Ray launcher not
  installed would end in Hydra's generic "Could not find 'hydra/launcher/ray'" listing; ``dpsim``
  calls this first and prints ONE line naming the install command instead (exit status 2).  It
  looks at ``hydra/launcher=X`` and ``hydra/sweeper=X`` overrides and at the defaults lists of the
  package configs selected on the command line (``+search=pd_policy`` selects the Optuna sweeper).
* :func:`objective_value` -- the value a run returns to a sweeper that optimises (Hydra's Optuna
  sweeper reads the task function's return value): ``objective.metric`` of the run's summary, or
  ``objective.penalty`` when the run failed, missed its SLO (online) or did not finish (offline).
* :class:`SearchResults` -- a Hydra callback (added by ``dpsim/conf/search/*.yaml``) that writes
  ``search.parquet``/``search.csv`` (the sweep table with an ``objective`` column, best first) and
  ``best.yaml`` (the best run: its overrides, objective and headline metrics) into the sweep dir.

See docs/sweeps.md.
"""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object

# (hydra/<kind>, option) -> (what it is, modules that must import, dpsim extra or pip package)
PLUGINS: dict[tuple[str, str], tuple[str, tuple[str, ...], str]] = {
    ("launcher", "joblib"): ("the joblib launcher", ("hydra_plugins.hydra_joblib_launcher", "joblib"),
                             "pkg:hydra-joblib-launcher"),
    ("launcher", "ray"): ("the Ray launcher", ("hydra_plugins.hydra_ray_launcher", "ray"), "ray"),
    ("launcher", "ray_cluster"): ("the Ray launcher", ("hydra_plugins.hydra_ray_launcher", "ray"), "ray"),
    ("launcher", "ray_aws"): ("the Ray AWS launcher", ("hydra_plugins.hydra_ray_launcher", "ray", "boto3"),
                              "ray"),
    ("launcher", "submitit_local"): ("the submitit launcher", ("hydra_plugins.hydra_submitit_launcher",
                                                               "submitit"), "submitit"),
    ("launcher", "submitit_slurm"): ("the submitit launcher", ("hydra_plugins.hydra_submitit_launcher",
                                                               "submitit"), "submitit"),
    ("sweeper", "optuna"): ("the Optuna sweeper", ("hydra_plugins.hydra_optuna_sweeper", "optuna"), "optuna"),
}

_CONF = Path(__file__).parent / "conf"
# The distribution's name (pyproject.toml [project].name): PyPI's `dpsim` is an unrelated power-system
# simulator, so install commands must name this one.  The import package and the command stay `dpsim`.
DIST = "dpsim-dualpath"


def _available(module: str) -> bool:
    """True when ``module`` can be imported (without importing it; a ``None`` entry in
    ``sys.modules`` -- how tests hide a package -- counts as missing)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _config_defaults(group: str, option: str) -> list:
    """The defaults list of dpsim/conf/<group>/<option>.yaml ([] when there is none)."""
    p = _CONF / group / f"{option}.yaml"
    if "/" in option or not p.is_file():
        return []
    try:
        import yaml
        d = yaml.safe_load(p.read_text()) or {}
    except Exception:  # noqa: BLE001 -- a broken file is Hydra's to report
        return []
    return list(d.get("defaults") or []) if isinstance(d, dict) else []


def requested_plugins(argv: Iterable[str]) -> list[tuple[str, str, str]]:
    """(kind, option, how) of every launcher/sweeper plugin the command line asks for, directly
    (``hydra/launcher=ray``) or through a package config it selects (``+search=pd_policy``, whose
    defaults list overrides /hydra/sweeper); ``how`` is the command-line argument that did it."""
    out: list[tuple[str, str, str]] = []
    for a in argv:
        if a.startswith("-") or "=" not in a:
            continue
        key, _, val = a.partition("=")
        key = key.lstrip("+~")
        if key in ("hydra/launcher", "hydra/sweeper"):
            out.append((key.split("/")[1], val, a))
            continue
        if key.startswith("hydra"):
            continue
        for v in val.split(","):  # a group sweep (experiment=offline,online): every option
            for entry in _config_defaults(key, v):
                if not isinstance(entry, dict):
                    continue
                for k, opt in entry.items():
                    k = str(k).replace("override ", "").strip().lstrip("/")
                    if k in ("hydra/launcher", "hydra/sweeper") and isinstance(opt, str):
                        out.append((k.split("/")[1], opt, f"{key}={v}"))
    return out


def missing_plugin_message(argv: Iterable[str]) -> str | None:
    """One message naming the missing plugin(s) and the install command, or None when every
    plugin the command line asks for is importable (or unknown to dpsim: Hydra reports those)."""
    what: list[str] = []
    extras: list[str] = []
    pkgs: list[str] = []
    for kind, opt, how in requested_plugins(argv):
        spec = PLUGINS.get((kind, opt))
        if spec is None:
            continue
        label, mods, extra = spec
        absent = [m for m in mods if not _available(m)]
        if not absent:
            continue
        via = "" if how == f"hydra/{kind}={opt}" else f", selected by {how}"
        what.append(f"{label} (hydra/{kind}={opt}{via}; no module {', '.join(absent)})")
        bucket, name = (pkgs, extra[4:]) if extra.startswith("pkg:") else (extras, extra)
        if name not in bucket:
            bucket.append(name)
    if not what:
        return None
    cmd = " ".join(([f"'{DIST}[{','.join(sorted(extras))}]'"] if extras else []) + pkgs)
    src = (f" (in a source checkout: pip install -e '.[{','.join(sorted(extras))}]'"
           + (f" {' '.join(pkgs)})" if pkgs else ")")) if extras else ""
    verb = "is" if len(what) == 1 else "are"
    return (f"dpsim: error: {' and '.join(what)} {verb} not installed; "
            f"install with: pip install {cmd}{src}")


# --------------------------------------------------------------------------------------------
# search objective

def _lookup(summ: Mapping, key: str):
    cur: Any = summ
    for part in key.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _penalty(obj: Mapping) -> float:
    p = obj.get("penalty")
    if p is not None:
        return float(p)
    return -1.0e30 if str(obj.get("direction", "maximize")) == "maximize" else 1.0e30


def objective_value(objective: Mapping | None, summ: Mapping | None) -> float | None:
    """The objective of one run for an optimising sweeper.

    ``objective`` is the ``objective`` config node (None: no objective -> None, the run returns
    nothing as before).  ``summ`` is the run's summary (None: the run failed).  A run scores
    ``objective.penalty`` when it failed, when ``require_slo`` and its summary says
    ``slo_met: false`` (online), when ``require_complete`` and an offline run was truncated or left
    requests unfinished, or when the metric is missing or not finite.
    """
    if not objective:
        return None
    obj = dict(objective)
    if summ is None:
        return _penalty(obj)
    if obj.get("require_slo", True) and summ.get("slo_met") is False:
        return _penalty(obj)
    if obj.get("require_complete", True) and summ.get("mode") == "offline" and (
            summ.get("truncated") or (summ.get("requests_unfinished") or 0) > 0):
        return _penalty(obj)
    v = _lookup(summ, str(obj.get("metric", "prompt_tokens_per_s")))
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        return _penalty(obj)
    return float(v)


# --------------------------------------------------------------------------------------------
# search results

_HEADLINE = ("system", "model", "mode", "prefill_nodes", "decode_nodes", "gpus_per_node", "agents",
             "prompt_tokens_per_s", "jct_s", "aps", "slo_met", "requests_completed", "requests_total")


def _plain(v):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_search_results(sweep_dir: str | Path, objective: Mapping) -> dict | None:
    """Score every run of ``sweep_dir`` with ``objective``; write search.parquet/search.csv (best
    first) and best.yaml.  Returns the best.yaml content (None when the sweep has no runs)."""
    import yaml

    from .sweep import collect

    d = Path(sweep_dir)
    df = collect(d)
    if not len(df):
        return None
    obj = dict(objective)
    vals = []
    for job in df["job"]:
        p = d / str(job) / "summary.json"
        vals.append(objective_value(obj, json.loads(p.read_text()) if p.exists() else None))
    df = df.copy()
    df.insert(3, "objective", vals)
    maximize = str(obj.get("direction", "maximize")) == "maximize"
    df = df.sort_values("objective", ascending=not maximize, kind="stable").reset_index(drop=True)
    df.insert(4, "best", [i == 0 for i in range(len(df))])
    df.to_parquet(d / "search.parquet", index=False)
    df.to_csv(d / "search.csv", index=False)
    top = df.iloc[0]
    best: dict[str, Any] = {
        "metric": str(obj.get("metric")),
        "direction": "maximize" if maximize else "minimize",
        "value": _plain(top["objective"]),
        "feasible": bool(top["objective"] != _penalty(obj)),
        "job": str(top["job"]),
        "dir": str(d / str(top["job"])),
        "overrides": {c[len("override."):]: _plain(top[c]) for c in df.columns
                      if c.startswith("override.") and top[c] is not None and top[c] == top[c]},
        "summary": {k: _plain(top[k]) for k in _HEADLINE if k in df.columns},
        "trials": int(len(df)),
        "feasible_trials": int(sum(v != _penalty(obj) for v in vals)),
    }
    opt = d / "optimization_results.yaml"
    if opt.exists():
        best["optuna"] = yaml.safe_load(opt.read_text())
    (d / "best.yaml").write_text(yaml.safe_dump(best, sort_keys=False))
    return best


class SearchResults(Callback):
    """Hydra callback: after a multirun, write search.parquet/search.csv and best.yaml."""

    def on_multirun_end(self, config, **kwargs) -> None:
        from omegaconf import OmegaConf

        objective = config.get("objective")
        d = Path(str(config.hydra.sweep.dir))
        if objective is None or not d.exists():
            return
        best = write_search_results(d, OmegaConf.to_container(objective, resolve=True))
        if best is not None:
            print(f"search: best {best['metric']} = {best['value']} (job {best['job']}: "
                  f"{' '.join(f'{k}={v}' for k, v in best['overrides'].items())}); "
                  f"{d / 'best.yaml'}, {d / 'search.parquet'}")
