"""Validation of the resolved configuration: every impossible value is rejected with one message
naming the key and the fix, before anything runs or is written."""
from __future__ import annotations

import math
from typing import Any, Mapping


class ConfigError(ValueError):
    pass


def _get(cfg: Mapping, key: str):
    cur: Any = cfg
    for part in key.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            raise ConfigError(f"missing config key {key!r}")
        cur = cur[part]
    return cur


def _num(cfg, key, *, lo=None, hi=None, lo_open=False, integer=False, fix=""):
    """A cross-field requirement on a number (types and ranges of each key: the schema)."""
    v = _get(cfg, key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ConfigError(f"{key}={v!r} must be a number{('; ' + fix) if fix else ''}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        rel = ">" if lo_open else ">="
        raise ConfigError(f"{key}={v!r} must be {rel} {lo}{('; ' + fix) if fix else ''}")
    if hi is not None and v > hi:
        raise ConfigError(f"{key}={v!r} must be <= {hi}{('; ' + fix) if fix else ''}")
    return int(v) if integer else float(v)


# Keys that make an option of a config group what its name says.  A system is defined by every
# key its own file sets (dpsim/conf/system/<name>.yaml, on top of _common.yaml); an experiment by
# its mode.  Overriding one of them while keeping the option's name would label the results with
# a system or experiment that did not run.
_DEFINING = {"system": None, "experiment": ("mode",)}


def _option_file(group: str, name) -> dict | None:
    """The keys the packaged option file ``conf/<group>/<name>.yaml`` sets itself (None if
    ``name`` is not a packaged option, e.g. a user-named variant)."""
    import yaml
    from pathlib import Path

    if not isinstance(name, str) or name.startswith("_") or "/" in name:
        return None
    p = Path(__file__).resolve().parent / "conf" / group / f"{name}.yaml"
    if not p.is_file():
        return None
    d = yaml.safe_load(p.read_text()) or {}
    if group in d and isinstance(d[group], dict):  # a @package _global_ file (experiment/*.yaml)
        d = d[group]
    return {k: v for k, v in d.items() if k not in ("defaults", "name")}


def _packaged(group: str) -> list[str]:
    from pathlib import Path
    d = Path(__file__).resolve().parent / "conf" / group
    return sorted(p.stem for p in d.glob("*.yaml") if not p.stem.startswith("_"))


def check_labels(cfg: Mapping) -> None:
    """A packaged system/experiment keeps its name only with the keys that define it."""
    for group, keys in _DEFINING.items():
        sub = cfg.get(group) or {}
        name = sub.get("name")
        own = _option_file(group, name)
        if not own:
            continue
        for k, want in own.items():
            if keys is not None and k not in keys:
                continue
            if isinstance(want, dict) or k not in sub:
                continue
            got = sub[k]
            if got != want:
                alt = [n for n in _packaged(group) if (_option_file(group, n) or {}).get(k) == got]
                pick = f"{group}={' or '.join(alt)}" if alt else f"a {group} that runs {k}={got}"
                raise ConfigError(
                    f"{group}.{k}={got} contradicts {group}={name} (which sets {k}: {want}), so the results "
                    f"would be labelled {name}: use {pick}, or name the variant: {group}.name=<new name>")


def check_layout(cfg: Mapping) -> None:
    """The model's expert-parallel layout must fit the cluster it runs on.

    * Each role's EP group fits that role's nodes, counted in the model's own GPUs per node
      (``model.parallel.gpus_per_node``): ``ep_size_<role> <= cluster.<role>_nodes x
      model.parallel.gpus_per_node``.  (DS 660B's EP16/EP32 need 2P4D.)
    * ``cluster.gpus_per_node`` may differ from ``model.parallel.gpus_per_node``: a reduced cluster
      (tests, the one-GPU HIL replay) simulates fewer engines per node with the model's layout, and
      ``cluster.gpus_per_node`` still sets how many engines run.  What it cannot change is the
      share of the EP all-to-all that leaves a node, which the model's layout sets
      (``1 - model.parallel.gpus_per_node / ep_size``, dpsim/engines/compute.py): when that share is
      not zero (an EP group spanning nodes, model traffic on, a MoE model) a different
      ``cluster.gpus_per_node`` would be ignored for it, so it is refused.
    """
    par = cfg["model"]["parallel"]  # types and ranges: the schema
    mg, cg = int(par["gpus_per_node"]), int(cfg["cluster"]["gpus_per_node"])
    eps = {}
    for role in ("prefill", "decode"):
        ep = eps[role] = int(par[f"ep_size_{role}"])
        n = int(cfg["cluster"][f"{role}_nodes"])
        if ep > n * mg:
            need = -(-ep // mg)
            raise ConfigError(f"model.parallel.ep_size_{role}={ep} needs {ep} {role} GPUs but the cluster has "
                              f"cluster.{role}_nodes={n} x model.parallel.gpus_per_node={mg} = {n * mg}: set "
                              f"cluster.{role}_nodes={need} or model.parallel.ep_size_{role}<={n * mg} "
                              f"(if the weights still fit)")
    moe = (cfg.get("model") or {}).get("moe") is not None
    traffic = bool((cfg.get("system") or {}).get("model_traffic", False))
    spanning = [r for r, ep in eps.items() if ep > mg]
    if cg != mg and moe and traffic and spanning:
        r = spanning[0]
        raise ConfigError(
            f"cluster.gpus_per_node={cg} differs from model.parallel.gpus_per_node={mg}, which sets the share of "
            f"the {r} EP group's all-to-all (model.parallel.ep_size_{r}={eps[r]}) that leaves a node, so "
            f"cluster.gpus_per_node would be ignored for it: set model.parallel.gpus_per_node={cg} (with EP "
            f"sizes that fit), or cluster.gpus_per_node={mg}, or system.model_traffic=false")


def validate(cfg: Mapping) -> dict:
    """Check the resolved config (a plain dict).  Returns it unchanged when valid."""
    from .conf.schema import DpsimSchema, SchemaError, check

    try:  # every key's type and range (dpsim/conf/schema.py)
        check(DpsimSchema, cfg)
    except SchemaError as e:
        raise ConfigError(str(e)) from None

    bs, kvb = cfg["system"]["block_size"], cfg["model"]["kv_bytes_per_token"]
    full_block = bs * kvb
    if cfg["cluster"]["dram_buffer_bytes"] < full_block:
        raise ConfigError(f"cluster.dram_buffer_bytes={cfg['cluster']['dram_buffer_bytes']:.4g} is smaller "
                          f"than one Full Block ({bs} tokens x {kvb:.0f} B = {full_block:.4g} B): raise it")

    if cfg["experiment"]["mode"] == "online":  # keys only an online experiment has
        e = "experiment"
        _num(cfg, "workload.aps", lo=0, lo_open=True,
             fix="set workload.aps=<agents per second> for experiment=online")
        for k in ("slo_ttft_s", "slo_tpot_s", "window_s", "steady_lag_s", "steady_tol", "check_dt_s",
                  "min_sim_s"):
            if cfg[e].get(k) is None:
                raise ConfigError(f"{e}.{k} is not set but experiment.mode=online needs it: use experiment=online "
                                  f"(dpsim/conf/experiment/online.yaml), or set {e}.{k}")
    check_layout(cfg)
    check_labels(cfg)
    return cfg
