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


def _num(cfg, key, *, lo=None, hi=None, lo_open=False, integer=False, allow_none=False, fix=""):
    v = _get(cfg, key)
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{key}={v!r} must be a number{('; ' + fix) if fix else ''}")
    if not math.isfinite(float(v)):
        raise ConfigError(f"{key}={v!r} must be finite")
    if integer and float(v) != int(v):
        raise ConfigError(f"{key}={v!r} must be an integer")
    if lo is not None and (v <= lo if lo_open else v < lo):
        rel = ">" if lo_open else ">="
        raise ConfigError(f"{key}={v!r} must be {rel} {lo}{('; ' + fix) if fix else ''}")
    if hi is not None and v > hi:
        raise ConfigError(f"{key}={v!r} must be <= {hi}{('; ' + fix) if fix else ''}")
    return int(v) if integer else float(v)


def _choice(cfg, key, choices):
    v = _get(cfg, key)
    if v not in choices:
        raise ConfigError(f"{key}={v!r} is not one of {sorted(choices)}")
    return v


def validate(cfg: Mapping) -> dict:
    """Check the resolved config (a plain dict).  Returns it unchanged when valid."""
    from .cluster.routes import TRANSFORMS
    from .engines.prefill_modes import mode_names
    from .scheduling import POLICIES, READ_PATHS

    c = "cluster"
    _num(cfg, f"{c}.prefill_nodes", lo=1, integer=True,
         fix="a P/D cluster needs at least one prefill node (cluster.prefill_nodes)")
    _num(cfg, f"{c}.decode_nodes", lo=1, integer=True,
         fix="a P/D cluster needs at least one decode node (cluster.decode_nodes)")
    _num(cfg, f"{c}.gpus_per_node", lo=1, integer=True)
    for k in ("cnic_Bps", "snic_Bps", "dram_Bps"):
        _num(cfg, f"{c}.{k}", lo=0, lo_open=True, fix="bandwidths are bytes/s and must be positive")
    _num(cfg, f"{c}.pcie_Bps", lo=0, lo_open=True, allow_none=True)
    _num(cfg, f"{c}.storage_Bps", lo=0, lo_open=True, allow_none=True,
         fix="null means the storage backend is not a bottleneck (§S2)")
    for k in ("cnic_efficiency", "snic_efficiency"):
        _num(cfg, f"{c}.{k}", lo=0, lo_open=True, hi=1.0)
    _num(cfg, f"{c}.high_priority_share", lo=0, lo_open=True, hi=1.0)
    _num(cfg, f"{c}.storage_latency_s", lo=0)
    _num(cfg, f"{c}.net_latency_s", lo=0)
    _num(cfg, f"{c}.dram_buffer_bytes", lo=0, lo_open=True)
    _choice(cfg, f"{c}.snic_duplex", {"full", "half"})

    s = "system"
    _choice(cfg, f"{s}.scheduler", set(POLICIES))
    _choice(cfg, f"{s}.read_path", set(READ_PATHS))
    _choice(cfg, f"{s}.prefill_mode", mode_names())
    _choice(cfg, f"{s}.route_transform", set(TRANSFORMS))
    bs = _num(cfg, f"{s}.block_size", lo=1, integer=True)
    for k in ("layer_block_s", "full_block_s", "storage_block_s"):
        _num(cfg, f"{s}.submission.{k}", lo=0)
    _num(cfg, f"{s}.batching.max_prefill_tokens", lo=1, integer=True)

    kvb = _num(cfg, "model.kv_bytes_per_token", lo=0, lo_open=True)
    full_block = bs * kvb
    if cfg["cluster"]["dram_buffer_bytes"] < full_block:
        raise ConfigError(f"cluster.dram_buffer_bytes={cfg['cluster']['dram_buffer_bytes']:.4g} is smaller "
                          f"than one Full Block ({bs} tokens x {kvb:.0f} B = {full_block:.4g} B): raise it")

    e = "experiment"
    mode = _choice(cfg, f"{e}.mode", {"offline", "online"})
    _num(cfg, f"{e}.max_sim_s", lo=0, lo_open=True, allow_none=True)
    if mode == "online":
        _num(cfg, "workload.aps", lo=0, lo_open=True,
             fix="set workload.aps=<agents per second> for experiment=online")
        for k in ("slo_ttft_s", "slo_tpot_s", "window_s", "steady_lag_s"):
            _num(cfg, f"{e}.{k}", lo=0, lo_open=True)
        _num(cfg, f"{e}.steady_tol", lo=0, lo_open=True, hi=1.0)
    _num(cfg, "metrics.sample_dt", lo=0, lo_open=True)
    _num(cfg, "seed", lo=0, integer=True)
    return cfg
