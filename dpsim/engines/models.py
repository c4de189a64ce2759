"""Model-architecture arithmetic: parameter counts, FLOPs, KV bytes, weights per GPU.

Everything here is derived from the dimensions in a ``conf/model/*.yaml`` mapping; nothing is
fitted.  :class:`dpsim.engines.compute.ComputeModel` turns these quantities into seconds with
the GPU's peaks and the efficiency knobs.

Conventions
-----------
* A *pair* is one (query token, key token) of causal attention in one layer.
* FLOPs count a multiply-add as 2.
* ``gemm_flops_per_token`` excludes the LM head (computed only for the sampled position of a
  request: once per prefill request, once per decode sequence and step) and the embedding
  lookup (no FLOPs).
* MLA attention (DeepSeek) has two execution modes:
  ``mqa`` (absorbed; keys/values are the 512-d latent + 64-d rope shared by all heads; used
  for decode, and for DSA prefill since DeepSeek Sparse Attention is built on MLA's MQA mode)
  and ``mha`` (keys/values up-projected per head; what V3 used for dense prefill; the cached
  prefix then also pays the up-projection once per cached token and chunk).

Config validation: types and ranges by the schema (:class:`dpsim.conf.schema.ModelSchema`),
cross-key rules here; both raise :class:`ValueError` naming the offending key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["ModelShape", "cfg_get", "to_plain"]

_MISSING = object()


def to_plain(cfg: Any) -> Any:
    """Recursively convert an OmegaConf container (or any Mapping/list) to plain dict/list."""
    try:  # pragma: no cover - only when omegaconf objects are passed
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, (DictConfig, ListConfig)):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(cfg, Mapping):
        return {k: to_plain(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_plain(v) for v in cfg]
    return cfg


def cfg_get(
    cfg: Mapping,
    key: str,
    *,
    where: str,
    kind: type = float,
    min_value: float | None = 0.0,
    strict_min: bool = False,
    max_value: float | None = None,
    default: Any = _MISSING,
    allow_none: bool = False,
) -> Any:
    """Fetch a dotted ``key`` from ``cfg`` and validate it.

    ``kind`` is ``int``, ``float``, ``str`` or ``bool``.  Numbers must be real numbers (bools
    rejected) and satisfy the bounds.  Raises ``ValueError("<where>: key '<key>' ...")``.
    """
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is not _MISSING:
                return default
            raise ValueError(f"{where}: missing required key '{key}'")
        node = node[part]
    v = node
    if v is None:
        if allow_none:
            return None
        raise ValueError(f"{where}: key '{key}' must not be null")
    if kind is str:
        if not isinstance(v, str):
            raise ValueError(f"{where}: key '{key}' must be a string, got {v!r}")
        return v
    if kind is bool:
        if not isinstance(v, bool):
            raise ValueError(f"{where}: key '{key}' must be true/false, got {v!r}")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{where}: key '{key}' must be a number, got {v!r}")
    if kind is int:
        if float(v) != int(v):
            raise ValueError(f"{where}: key '{key}' must be an integer, got {v!r}")
        v = int(v)
    else:
        v = float(v)
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"{where}: key '{key}' must be finite, got {v!r}")
    if min_value is not None:
        if strict_min and not v > min_value:
            raise ValueError(f"{where}: key '{key}' must be > {min_value}, got {v!r}")
        if not strict_min and not v >= min_value:
            raise ValueError(f"{where}: key '{key}' must be >= {min_value}, got {v!r}")
    if max_value is not None and v > max_value:
        raise ValueError(f"{where}: key '{key}' must be <= {max_value}, got {v!r}")
    return v


@dataclass(frozen=True)
class ModelShape:
    """Derived per-model quantities (all plain numbers)."""

    name: str
    n_layers: int
    n_dense_layers: int
    n_moe_layers: int
    hidden: int
    n_heads: int
    vocab_size: int
    attention: str  # "mla" | "gqa"
    prefill_mode: str  # "mqa" | "mha" (MLA) | "gqa"
    # parameters
    attn_params_layer: float
    indexer_params_layer: float
    dense_mlp_params: float  # one dense-FFN layer
    moe_shared_params: float  # shared experts of one MoE layer
    moe_routed_params: float  # all routed experts of one MoE layer
    moe_active_routed_params: float  # the top-k routed experts of one MoE layer
    router_params: float  # one MoE layer's gate
    n_routed_experts: int
    n_active_experts: int
    embed_params: float
    lm_head_params: float
    total_params: float
    active_params: float  # per token, incl. embedding table and LM head (HF convention)
    # compute
    gemm_flops_per_token: float  # whole forward, excl. LM head
    head_flops: float  # LM head, per sampled position
    attn_flops_pair_layer: float  # prefill attention, per (query, key) pair per layer
    attn_dec_flops_key_layer: float  # decode attention, per context key per layer
    up_flops_cached_layer: float  # MLA "mha" prefill: per cached token per layer
    idx_flops_pair_layer: float  # DSA lightning indexer, per pair per layer (0 if dense)
    topk: int | None
    # KV cache
    kv_main_bytes_layer: float  # attention KV per token per layer, as stored
    kv_idx_bytes_layer: float  # indexer key per token per layer (0 if dense)
    kv_bytes_per_token: int  # from config (authoritative), see kv_bytes_per_token_derived
    kv_bytes_per_token_derived: int
    # weights
    weight_bytes: float  # bytes per parameter of linear layers
    embed_bytes: float  # bytes per parameter of embedding / LM head
    # EP
    ep_bytes_per_token_layer: float  # dispatch + combine, one MoE layer, all top-k copies

    # ------------------------------------------------------------------ derived helpers
    @property
    def replicated_weight_bytes(self) -> float:
        """Weights every GPU holds (attention, indexer, dense FFN, shared experts, gates, embeddings)."""
        lin = (
            self.n_layers * (self.attn_params_layer + self.indexer_params_layer)
            + self.n_dense_layers * self.dense_mlp_params
            + self.n_moe_layers * (self.moe_shared_params + self.router_params)
        )
        return lin * self.weight_bytes + (self.embed_params + self.lm_head_params) * self.embed_bytes

    def weight_bytes_per_gpu(self, ep_size: int) -> float:
        """HBM bytes of weights on one GPU when routed experts are spread over ``ep_size`` GPUs."""
        routed = self.n_moe_layers * self.moe_routed_params * self.weight_bytes
        return self.replicated_weight_bytes + routed / max(1, ep_size)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, model: Mapping) -> "ModelShape":
        m = to_plain(model)
        if not isinstance(m, Mapping):
            raise ValueError("model config: expected a mapping")
        w = f"model config '{m.get('name', '?')}'"
        from ..conf.schema import ModelSchema, SchemaError, check

        try:  # types, ranges and names of every key present (dpsim/conf/schema.py)
            check(ModelSchema, m, partial=True)
        except SchemaError as e:
            raise ValueError(f"{w}: key '{e.key}' {e.problem} (got {e.value!r})") from None

        def g(key, kind=float, default=_MISSING):
            """The value at ``key`` (checked by the schema), as ``kind``; missing -> ``default``."""
            node: Any = m
            for part in key.split("."):
                if not isinstance(node, Mapping) or part not in node:
                    if default is not _MISSING:
                        return default
                    raise ValueError(f"{w}: missing required key '{key}'")
                node = node[part]
            return node if node is None or kind in (str, bool) else kind(node)

        name = g("name", kind=str)
        L = g("n_layers", kind=int)
        h = g("hidden", kind=int)
        H = g("n_heads", kind=int)
        vocab = g("vocab_size", kind=int)
        tied = g("tie_embeddings", kind=bool)
        attention = g("attention", kind=str)
        weight_bytes = g("weight_bytes")
        embed_bytes = g("embed_bytes")

        # ---------------- attention
        up_flops = 0.0
        if attention == "mla":
            qr = g("mla.q_lora_rank", kind=int)
            kvr = g("mla.kv_lora_rank", kind=int)
            rope = g("mla.qk_rope_dim", kind=int)
            nope = g("mla.qk_nope_dim", kind=int)
            vd = g("mla.v_head_dim", kind=int)
            mode = g("mla.prefill_mode", kind=str)
            q_params = (h * qr + qr * H * (nope + rope)) if qr else h * H * (nope + rope)
            kv_a = h * (kvr + rope)
            kv_b = kvr * H * (nope + vd)
            o = H * vd * h
            attn_params = float(q_params + kv_a + kv_b + o)
            # absorbed (MQA) attention: QK over kvr+rope dims, PV over kvr dims, all heads
            mqa_pair = 2.0 * H * (kvr + rope) + 2.0 * H * kvr
            if mode == "mqa":
                attn_pair = mqa_pair
            else:
                attn_pair = 2.0 * H * (nope + rope) + 2.0 * H * vd
                up_flops = 2.0 * kv_b  # up-project each cached latent to per-head K,V
            attn_dec_key = mqa_pair
            q_source = qr if qr else h
        elif attention == "gqa":
            Hkv = g("gqa.n_kv_heads", kind=int)
            d = g("gqa.head_dim", kind=int)
            bias = g("gqa.qkv_bias", kind=bool)
            attn_params = float(h * H * d + 2 * h * Hkv * d + H * d * h + ((H + 2 * Hkv) * d if bias else 0))
            attn_pair = 4.0 * H * d
            attn_dec_key = 4.0 * H * d
            mode = "gqa"
            q_source = h
        else:
            raise ValueError(f"{w}: key 'attention' must be 'mla' or 'gqa', got {attention!r}")

        # ---------------- sparse attention (DSA lightning indexer)
        sparse = m.get("sparse")
        if sparse is not None:
            topk = g("sparse.topk", kind=int)
            ih = g("sparse.indexer_heads", kind=int)
            idim = g("sparse.indexer_dim", kind=int)
            # wq_b (q_lora -> ih*idim), wk (hidden -> idim), weights_proj (hidden -> ih)
            idx_params = float(q_source * ih * idim + h * idim + h * ih)
            # q.k logits (2*idim per head) + ReLU-weighted sum over heads (2 per head)
            idx_pair = 2.0 * ih * idim + 2.0 * ih
        else:
            topk = None
            idx_params = 0.0
            idx_pair = 0.0

        # ---------------- FFN / MoE
        dense_inter = g("dense_intermediate", kind=int)
        dense_mlp = 3.0 * h * dense_inter  # gate, up, down
        moe = m.get("moe")
        if moe is not None:
            E = g("moe.n_routed_experts", kind=int)
            k = g("moe.n_active_experts", kind=int)
            if k > E:
                raise ValueError(f"{w}: key 'moe.n_active_experts'={k} must be <= moe.n_routed_experts={E}")
            S = g("moe.n_shared_experts", kind=int)
            mi = g("moe.moe_intermediate", kind=int)
            nd = g("moe.n_dense_layers", kind=int)
            if nd > L:
                raise ValueError(f"{w}: key 'moe.n_dense_layers'={nd} must be <= n_layers={L}")
            expert = 3.0 * h * mi
            routed, active_routed, shared, router = E * expert, k * expert, S * expert, float(h * E)
            n_moe = L - nd
            dispatch = g("ep.dispatch_bytes_per_elem")
            scale = g("ep.dispatch_scale_bytes_per_elem")
            combine = g("ep.combine_bytes_per_elem")
            ep_bytes = float(h * (dispatch + scale + combine) * k)
        else:
            E = k = 0
            routed = active_routed = shared = router = 0.0
            nd, n_moe = L, 0
            ep_bytes = 0.0

        embed = float(vocab * h)
        lm_head = 0.0 if tied else float(vocab * h)
        head_params = float(vocab * h)  # the LM head GEMM exists even when tied

        per_layer = attn_params + idx_params
        total = L * per_layer + nd * dense_mlp + n_moe * (routed + shared + router) + embed + lm_head
        active = L * per_layer + nd * dense_mlp + n_moe * (active_routed + shared + router) + embed + lm_head
        gemm_params = L * per_layer + nd * dense_mlp + n_moe * (active_routed + shared + router)

        # ---------------- KV cache
        kv_main = g("kv_cache.main_bytes_per_layer")
        kv_idx = g("kv_cache.indexer_bytes_per_layer")
        if sparse is None and kv_idx:
            raise ValueError(f"{w}: key 'kv_cache.indexer_bytes_per_layer' must be 0 without sparse attention")
        kv_tok = g("kv_bytes_per_token", kind=int)
        kv_derived = int(round(L * (kv_main + kv_idx)))
        if abs(kv_tok - kv_derived) > 0.5 * L:
            raise ValueError(
                f"{w}: key 'kv_bytes_per_token'={kv_tok} disagrees with n_layers x "
                f"(kv_cache.main_bytes_per_layer + kv_cache.indexer_bytes_per_layer) = {kv_derived}"
            )
        # stated (documentation) values must match the derivation
        for key, derived, tol in (
            ("ep_bytes_per_token_layer", ep_bytes, 0.01),
            ("total_params", total, 0.02),
            ("active_params", active, 0.02),
        ):
            stated = g(key, default=None)
            if stated is not None and abs(stated - derived) > tol * max(derived, 1.0):
                raise ValueError(
                    f"{w}: key '{key}'={stated:.6g} disagrees with the value derived from the "
                    f"dimensions ({derived:.6g}); update the config"
                )

        return cls(
            name=name, n_layers=L, n_dense_layers=nd, n_moe_layers=n_moe, hidden=h, n_heads=H,
            vocab_size=vocab, attention=attention, prefill_mode=mode,
            attn_params_layer=attn_params, indexer_params_layer=idx_params,
            dense_mlp_params=dense_mlp, moe_shared_params=shared, moe_routed_params=routed,
            moe_active_routed_params=active_routed, router_params=router,
            n_routed_experts=E, n_active_experts=k,
            embed_params=embed, lm_head_params=lm_head, total_params=total, active_params=active,
            gemm_flops_per_token=2.0 * gemm_params, head_flops=2.0 * head_params,
            attn_flops_pair_layer=attn_pair, attn_dec_flops_key_layer=attn_dec_key,
            up_flops_cached_layer=up_flops, idx_flops_pair_layer=idx_pair, topk=topk,
            kv_main_bytes_layer=float(kv_main), kv_idx_bytes_layer=float(kv_idx),
            kv_bytes_per_token=kv_tok, kv_bytes_per_token_derived=kv_derived,
            weight_bytes=float(weight_bytes), embed_bytes=float(embed_bytes),
            ep_bytes_per_token_layer=ep_bytes,
        )
