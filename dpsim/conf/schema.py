"""Typed schemas of dpsim's config groups (Hydra structured configs), registered in the ConfigStore.

One place for every key's type and range.  The values live in the YAML files of ``dpsim/conf/``
(each with its source or "assumption"); a schema carries no values: every field is ``MISSING``
(the YAML supplies it) except ``None`` for the optional keys that only some options set (an
online experiment's SLO, ``workload.aps``, ...), which the YAML of those options sets.

* At composition (``dpsim ...``, ``hydra.compose``): ``config.yaml``'s defaults list starts with
  ``dpsim_schema``, so Hydra merges every group's YAML onto its schema: a value of the wrong type
  (``output.plots=maybe``) or an unknown key fails there, naming the key.
* :func:`check` (called by :func:`dpsim.config.validate`, ``load_workload`` and
  ``ModelShape.from_config``, which also get plain dicts) checks the same types on a plain mapping
  and the ranges in the fields' metadata (``ge``/``gt``/``le``, ``choices``), raising
  :class:`SchemaError` with the dotted key and the fix.

Cross-field rules (EP groups vs the cluster, a system's label vs its keys, a DRAM buffer of at
least one Full Block, online needs ``workload.aps`` ...) stay as code in :mod:`dpsim.config`.
A new config key goes into its group's YAML (with its source) and a field here.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from omegaconf import MISSING

# A number (int or float, kept as written).  For OmegaConf it is Any: a float node would turn
# `experiment.max_sim_s=1` into 1.0 (and change the outputs that echo it), and Union[int, float]
# fails in Hydra 1.3's composition.  :func:`check` checks it is a finite number (a field with a
# range, or number=True).
Num = Any


def F(*, ge=None, gt=None, le=None, choices=None, fix: str = "", optional: bool = False, number: bool = False):
    """A schema field: no value (``MISSING``: the YAML supplies it; ``None`` for an optional key
    that only some options set), its range and the fix to print in ``metadata``."""
    md = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("choices", choices)) if v is not None}
    if fix:
        md["fix"] = fix
    if number or any(k in md for k in ("ge", "gt", "le")):
        md["number"] = True
    return field(default=None if optional else MISSING, metadata=md)


def _registry(module: str, name: str):
    def get():
        import importlib
        obj = getattr(importlib.import_module(module), name)
        return set(obj() if callable(obj) else obj)
    get.__name__ = f"{module}.{name}"
    return get


POS = dict(gt=0)
BW = dict(gt=0, fix="bandwidths are bytes/s and must be positive")
SHARE = dict(gt=0, le=1.0, fix="a fraction of the line rate or bandwidth, in (0, 1]")


# ------------------------------------------------------------------------------------ cluster
@dataclass
class ClusterSchema:
    name: str = F()
    prefill_nodes: int = F(ge=1, fix="a P/D cluster needs at least one prefill node")
    decode_nodes: int = F(ge=1, fix="a P/D cluster needs at least one decode node")
    gpus_per_node: int = F(ge=1)
    cnic_Bps: Num = F(**BW)
    cnic_efficiency: Num = F(**SHARE)
    snic_Bps: Num = F(**BW)
    snic_efficiency: Num = F(**SHARE)
    snic_duplex: str = F(choices={"full", "half"})
    storage_Bps: Optional[Num] = F(gt=0, fix="null means the storage backend is not a bottleneck (§S2)")
    storage_latency_s: Num = F(ge=0)
    storage_queue_depth: int = F(ge=0, fix="reads outstanding at once per request per node; 0 = unlimited (one latency round)")
    net_latency_s: Num = F(ge=0)
    dram_Bps: Num = F(**BW)
    dram_buffer_bytes: Num = F(**POS)
    pcie_Bps: Optional[Num] = F(**POS)
    high_priority_share: Num = F(**SHARE)
    link_profile: Optional[str] = F()
    link_mapping: str = F()


@dataclass
class GpuSchema:
    name: str = F()
    peak_flops_bf16: Num = F(**POS)
    peak_flops_fp8: Num = F(**POS)
    hbm_bytes: Num = F(**POS)
    hbm_bw_bytes_per_s: Num = F(**POS)
    nvlink_bw_bytes_per_s: Num = F(**POS)
    pcie_bw_bytes_per_s: Num = F(**POS)


# ------------------------------------------------------------------------------------ model
@dataclass
class MlaSchema:
    q_lora_rank: Optional[int] = F(ge=1)
    kv_lora_rank: int = F(ge=1)
    qk_rope_dim: int = F(ge=0)
    qk_nope_dim: int = F(ge=1)
    v_head_dim: int = F(ge=1)
    prefill_mode: str = F(choices={"mqa", "mha"})


@dataclass
class GqaSchema:
    n_kv_heads: int = F(ge=1)
    head_dim: int = F(ge=1)
    qkv_bias: bool = F()


@dataclass
class SparseSchema:
    topk: int = F(ge=1)
    indexer_heads: int = F(ge=1)
    indexer_dim: int = F(ge=1)


@dataclass
class MoeSchema:
    n_routed_experts: int = F(ge=1)
    n_active_experts: int = F(ge=1)
    n_shared_experts: int = F(ge=0)
    moe_intermediate: int = F(ge=1)
    n_dense_layers: int = F(ge=0)


@dataclass
class KvCacheSchema:
    main_bytes_per_layer: Num = F(**POS)
    indexer_bytes_per_layer: Num = F(ge=0)


@dataclass
class ParallelSchema:
    gpus_per_node: int = F(ge=1)
    ep_size_prefill: int = F(ge=1)
    ep_size_decode: int = F(ge=1)


@dataclass
class EpSchema:
    dispatch_bytes_per_elem: Num = F(**POS)
    dispatch_scale_bytes_per_elem: Num = F(ge=0)
    combine_bytes_per_elem: Num = F(**POS)


@dataclass
class ModelSchema:
    name: str = F()
    n_layers: int = F(ge=1)
    hidden: int = F(ge=1)
    n_heads: int = F(ge=1)
    vocab_size: int = F(ge=1)
    tie_embeddings: bool = F()
    attention: str = F(choices={"mla", "gqa"})
    mla: Optional[MlaSchema] = F()
    gqa: Optional[GqaSchema] = F()
    sparse: Optional[SparseSchema] = F()
    dense_intermediate: int = F(ge=1)
    moe: Optional[MoeSchema] = F()
    kv_cache: KvCacheSchema = F()
    kv_bytes_per_token: int = F(ge=1)
    weight_bytes: Num = F(**POS)
    embed_bytes: Num = F(**POS)
    gemm_dtype: str = F(choices={"fp8", "bf16"})
    attn_dtype: str = F(choices={"fp8", "bf16"})
    total_params: Optional[Num] = F(**POS)
    active_params: Optional[Num] = F(**POS)
    parallel: ParallelSchema = F()
    ep: Optional[EpSchema] = F(optional=True)  # MoE models only (DeepEP payload); absent for a dense model
    ep_bytes_per_token_layer: Optional[Num] = F(ge=0)
    host_buffer_bytes: Num = F(**POS)  # host DRAM per node for KV buffers (cluster.dram_buffer_bytes reads it)
    hbm_reserved_bytes: Num = F(ge=0)
    # name -> value; names and bounds: dpsim.engines.compute.KNOB_KEYS (checked by ComputeModel)
    knobs: Dict[str, Num] = F()
    # GPU-measured compute tables (directory; null: the analytic roofline) and the model whose
    # rows to read (default: name) -- dpsim.engines.compute "Table mode", docs/compute_tables.md
    compute_tables: Optional[str] = F(optional=True)
    compute_tables_model: Optional[str] = F(optional=True)


# ------------------------------------------------------------------------------------ system
@dataclass
class SubmissionSchema:
    layer_block_s: Num = F(ge=0)
    full_block_s: Num = F(ge=0)
    storage_block_s: Num = F(ge=0)


@dataclass
class BatchingSchema:
    max_prefill_tokens: int = F(ge=1)
    chunked_prefill: bool = F()
    quota_s: Num = F(**POS)
    quota_scope: str = F(choices={"forward", "layer"})
    use_quota: bool = F()


@dataclass
class DualpathSchema:
    fetch_period_s: Num = F(**POS)
    alpha_s: Num = F(**POS)
    beta_s: Num = F(**POS)
    z_factor: Num = F(**POS)


@dataclass
class CostsSchema:
    """Per-request fixed costs (seconds; 0 = not modelled).  docs/fixed_costs.md."""
    sched_decision_s: Num = F(ge=0, fix="seconds; 0 turns the cost off")
    sched_rpc_s: Num = F(ge=0, fix="seconds; 0 turns the cost off")
    buffer_alloc_s: Num = F(ge=0, fix="seconds; 0 turns the cost off")
    handoff_s: Num = F(ge=0, fix="seconds; 0 turns the cost off")


@dataclass
class BasicSchema:
    prefetch_batches: int = F(ge=1)


@dataclass
class SystemSchema:
    name: str = F()
    scheduler: str = F(choices=_registry("dpsim.scheduling", "POLICIES"))
    engine_choice: str = F()
    read_path: str = F(choices=_registry("dpsim.scheduling", "READ_PATHS"))
    layerwise: bool = F()
    prefill_mode: str = F(choices=_registry("dpsim.engines.prefill_modes", "mode_names"))
    route_transform: str = F(choices=_registry("dpsim.cluster.routes", "TRANSFORMS"))
    isolation: bool = F()
    skip_persist: bool = F()
    block_size: int = F(ge=1)
    submission: SubmissionSchema = F()
    batching: BatchingSchema = F()
    dualpath: DualpathSchema = F()
    basic: BasicSchema = F()
    costs: CostsSchema = F()
    model_traffic: bool = F()


# ------------------------------------------------------------------------------------ workload
@dataclass
class WorkloadSchema:
    source: str = F(choices={"bundled", "synthetic", "file"})
    path: Optional[str] = F()
    format: Optional[str] = F()
    mal: Any = F()              # tokens (int) or "32k"/"48k"/"64k" or null (dpsim.workload.synthetic.parse_mal)
    n_trajectories: int = F(ge=1)
    agents: Optional[int] = F(ge=1)
    append_scale: Num = F(gt=0, fix="1.0 = as recorded")
    gen_scale: Num = F(gt=0, fix="1.0 = as recorded")
    think: Any = F()            # zero | trace | a number (dpsim.workload.replay.check_think)
    seed: Optional[int] = F(ge=0, fix="an integer pins the workload; null derives it from the top-level seed "
                                     "(dpsim.runner.effective_seeds)")
    aps: Optional[Num] = F(gt=0, optional=True, fix="agents per second (experiment=online sets it)")
    prefix_tokens: Optional[List[int]] = F(optional=True, fix="[lo, hi] integers with 1 <= lo <= hi, or null")
    spread: Optional[Num] = F(gt=0, optional=True, fix="synthetic only: multiplier on the generator's fixed "
                              "log-normal spreads; 1.0 = the calibrated shape (workload/synthetic.yaml)")
    knobs: Optional[Dict[str, Any]] = F(optional=True, fix="synthetic only: {p0_frac, append_med, gen_med, "
                                        "sigma_append, finish_frac} overrides (dpsim.workload.synthetic.Knobs), or null")
    name: Optional[str] = F(optional=True)
    description: Optional[str] = F(optional=True)


# ------------------------------------------------------------------------------------ experiment
@dataclass
class ExperimentSchema:
    name: str = F()
    mode: str = F(choices={"offline", "online"})
    max_sim_s: Optional[Num] = F(gt=0)
    # online only (experiment/online.yaml)
    slo_ttft_s: Optional[Num] = F(gt=0, optional=True)
    slo_tpot_s: Optional[Num] = F(gt=0, optional=True)
    window_s: Optional[Num] = F(gt=0, optional=True)
    steady_lag_s: Optional[Num] = F(gt=0, optional=True)
    steady_tol: Optional[Num] = F(gt=0, le=1.0, optional=True)
    check_dt_s: Optional[Num] = F(gt=0, optional=True)
    min_sim_s: Optional[Num] = F(ge=0, optional=True)


@dataclass
class MetricsSchema:
    sample_dt: Num = F(**POS)


@dataclass
class PathsSchema:
    shared_traces: str = F()


@dataclass
class LimitsSchema:
    memory_bytes: Optional[Num] = F(gt=0, fix="bytes, or null for the machine's available memory")
    bytes_per_agent: Num = F(ge=0)
    bytes_per_request: Num = F(ge=0)
    min_free_disk_bytes: Num = F(ge=0)


@dataclass
class OutputSchema:
    parquet: bool = F()
    plots: bool = F()
    timeline: bool = F()
    timeline_max_agents: int = F(ge=0)
    progress: bool = F()
    progress_log_s: Num = F(**POS)


@dataclass
class ObjectiveSchema:
    metric: str = F()
    direction: str = F(choices={"maximize", "minimize"})
    require_slo: bool = F()
    require_complete: bool = F()
    penalty: Optional[Num] = F(number=True)


@dataclass
class FigureSchema:
    """A paper experiment (``+figure=<name>``, dpsim/conf/figure/*.yaml); its runs are the grids
    of its sweeper, its figure is drawn from the sweep table (dpsim.figures)."""
    name: str = F()
    scale: str = F(choices={"paper", "small"})
    plot: str = F(choices=_registry("dpsim.figures", "PLOTS"))
    pd: Dict[str, Any] = F()   # model name -> {P, D}: its default P/D (figure/_paper.yaml, §S9)


@dataclass
class DpsimSchema:
    cluster: ClusterSchema = F()
    model: ModelSchema = F()
    gpu: GpuSchema = F()
    system: SystemSchema = F()
    workload: WorkloadSchema = F()
    experiment: ExperimentSchema = F()
    seed: int = F(ge=0)
    check_invariants: bool = F()
    metrics: MetricsSchema = F()
    paths: PathsSchema = F()
    limits: LimitsSchema = F()
    output: OutputSchema = F()
    # add-ons (+search=..., +figure=...): absent unless selected
    objective: Optional[ObjectiveSchema] = F(optional=True)
    search: Optional[Dict[str, Any]] = F(optional=True)
    figure: Optional[FigureSchema] = F(optional=True)


GROUPS = {"cluster": ClusterSchema, "model": ModelSchema, "gpu": GpuSchema, "system": SystemSchema,
          "workload": WorkloadSchema, "experiment": ExperimentSchema, "metrics": MetricsSchema,
          "paths": PathsSchema, "limits": LimitsSchema, "output": OutputSchema,
          "objective": ObjectiveSchema, "figure": FigureSchema}


def register() -> None:
    """Put the schemas in Hydra's ConfigStore: ``dpsim_schema`` (the whole config; first in
    config.yaml's defaults list) and ``schema/<group>`` for each group."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="dpsim_schema", node=DpsimSchema)
    for g, cls in GROUPS.items():
        cs.store(group="schema", name=g, node=cls)


# ------------------------------------------------------------------------------------ checking
class SchemaError(ValueError):
    """A value that its schema refuses: ``key`` (dotted, from the group), ``value``, ``problem``
    (what it must be, with the fix)."""

    def __init__(self, key: str, value: Any, problem: str):
        self.key, self.value, self.problem = key, value, problem
        super().__init__(f"{key}={value!r}: {problem}")


_NO = object()


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float or tp == Num:
        return "a number"
    if tp is str:
        return "a string"
    if origin in (list, List):
        return "a list"
    if origin in (dict, Dict) or dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def _unopt(tp):
    """(type without Optional, optional?)"""
    if typing.get_origin(tp) is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True
    return tp, False


def _is(v, tp) -> bool:
    if tp is Any:
        return True
    if tp is bool:
        return isinstance(v, bool)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if tp is float or tp == Num:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if tp is str:
        return isinstance(v, str)
    origin = typing.get_origin(tp)
    if origin in (list, List):
        (a,) = typing.get_args(tp) or (Any,)
        return isinstance(v, (list, tuple)) and all(_is(x, a) for x in v)
    if origin in (dict, Dict):
        a = (typing.get_args(tp) or (str, Any))[1]
        return isinstance(v, typing.Mapping) and all(_is(x, a) for x in v.values())
    return True


def check(schema, cfg: typing.Mapping, prefix: str = "", *, partial: bool = False) -> None:
    """Check the plain mapping ``cfg`` against the dataclass ``schema``: every key known, present
    (unless ``partial``) and of its type, numbers within their ranges, names among their choices.
    Raises :class:`SchemaError` naming ``prefix + key``."""
    hints = typing.get_type_hints(schema)
    names = {f.name: f for f in dataclasses.fields(schema)}
    if not isinstance(cfg, typing.Mapping):
        raise SchemaError(prefix.rstrip(".") or schema.__name__, cfg, "must be a mapping")
    for k in cfg:
        if k not in names and not str(k).startswith("_"):
            raise SchemaError(f"{prefix}{k}", cfg[k], f"unknown key; known keys are {', '.join(sorted(names))}")
    for name, f in names.items():
        key = f"{prefix}{name}"
        v = cfg.get(name, _NO)
        tp, optional = _unopt(hints[name])
        md = f.metadata
        if tp is Any and md.get("number"):
            tp = float
        fix = f"; {md['fix']}" if md.get("fix") else ""
        if v is _NO or (v == "???" and f.default is not None):  # absent, or OmegaConf's MISSING
            if partial or f.default is None:
                continue
            raise SchemaError(key, None, f"missing key (set {key}=VALUE{fix})")
        if v is None:
            if optional or tp is Any:
                continue
            raise SchemaError(key, v, f"must not be null: must be {_type_name(tp)}{fix}")
        if dataclasses.is_dataclass(tp):
            check(tp, v, f"{key}.", partial=partial)
            continue
        if not _is(v, tp):
            raise SchemaError(key, v, f"must be {_type_name(tp)}{' or null' if optional else ''}{fix}")
        if "choices" in md:
            ch = md["choices"]
            ch = ch() if callable(ch) else ch
            if v not in ch:
                raise SchemaError(key, v, f"is not one of {sorted(ch)}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if "ge" in md and v < md["ge"]:
                raise SchemaError(key, v, f"must be >= {md['ge']}{fix}")
            if "gt" in md and not v > md["gt"]:
                raise SchemaError(key, v, f"must be > {md['gt']}{fix}")
            if "le" in md and v > md["le"]:
                raise SchemaError(key, v, f"must be <= {md['le']}{fix}")


def check_group(group: str, cfg: typing.Mapping, *, partial: bool = False) -> None:
    """:func:`check` of one group's mapping, keys named ``<group>.<key>``."""
    check(GROUPS[group], cfg, f"{group}.", partial=partial)


def expected(key: str) -> str | None:
    """What the schema wants at the dotted ``key`` of the whole config ("true or false", "an
    integer >= 1; <fix>" ...), or None for a key it does not know."""
    cls: Any = DpsimSchema
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(cls):
            return None
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            return None
        tp, optional = _unopt(typing.get_type_hints(cls)[part])
        if i < len(parts) - 1:
            cls = tp
            continue
        md = fields[part].metadata
        if tp is Any and md.get("number"):
            tp = float
        what = _type_name(tp) + (" or null" if optional else "")
        rng = [f"{op} {md[k]}" for k, op in (("ge", ">="), ("gt", ">"), ("le", "<=")) if k in md]
        if rng:
            what += " " + " and ".join(rng)
        return what + (f"; {md['fix']}" if md.get("fix") else "")
    return None
