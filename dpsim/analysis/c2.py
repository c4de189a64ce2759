"""What the compute model predicts for the C2 points (the numbers are in
:mod:`dpsim.analysis.points`).

``dpsim validate`` reports these predictions beside the published rates, and
``calibration/fit_compute_c2.py`` fits the compute model's free knobs to them.  The
assumptions (none of them is in C2; each is flagged where it is set):

* motivation curve: DS 660B on one PE, compute only (KV already in HBM);
* DeepSeek's public H800 rates are for DeepSeek-V3 (dense MLA, BF16 KV, no DSA), priced with
  a V3 variant of ds660b (:func:`v3_variant`): EP32 prefill / EP144 decode, a mean prompt
  (= decode context) given by the caller (4096 tokens by default in the fit) with
  ``DS_CACHE_HIT`` of it cached, compute-saturated prefill batches of ``PROD_PREFILL_CHUNK``
  new tokens per GPU, decode with as large a batch as a ``PROD_TPOT`` step allows and one
  token per step (MTP ignored);
* low-load TPOT: one sequence per DE at the 64K dataset's mean context (``MEAN_CTX_64K``).
"""
from __future__ import annotations

import copy
from pathlib import Path

from .points import (DS_CACHE_HIT, GPUS_PER_NODE, MOTIVATION, MOTIVATION_APPEND,
                     MOTIVATION_CTX)

__all__ = ["CONF", "load", "v3_variant", "motivation_ratios", "prod_prefill_node",
           "prod_decode_node", "tpot_low_load", "MEAN_CTX_64K", "PROD_PREFILL_CHUNK", "PROD_TPOT",
           "V3_EP_PREFILL", "V3_EP_DECODE", "V3_ATTN_PREFILL_EFF", "V3_ATTN_DECODE_EFF"]

CONF = Path(__file__).resolve().parents[1] / "conf"

# ---------------------------------------------------------------- assumptions
MEAN_CTX_64K = 32_721  # §S8 context tokens, MAL 64K (low-load TPOT context)
PROD_PREFILL_CHUNK = 16_384  # new tokens per GPU per forward in production (saturated)
PROD_TPOT = 0.050  # decode operating point (§S8 SLO), assumption
V3_EP_PREFILL = 32  # DeepSeek V3/R1 deployment: prefill EP32 (4 nodes)
V3_EP_DECODE = 144  # decode EP144 (18 nodes)
V3_ATTN_PREFILL_EFF = 0.6  # dense MHA-mode prefill attention (FA3-class BF16), assumption
V3_ATTN_DECODE_EFF = 0.667  # dense FlashMLA decode: 660 TFLOPS on H800 / 989.4 (FlashMLA README)


def load(group: str, name: str) -> dict:
    """dpsim/conf/<group>/<name>.yaml as a dict (e.g. ``load("model", "ds660b")``)."""
    import yaml

    return yaml.safe_load((CONF / group / f"{name}.yaml").read_text())


def v3_variant(ds660b: dict) -> dict:
    """DeepSeek-V3 as served in DeepSeek's public numbers: ds660b without DSA, BF16 MLA KV
    (576 dims x 2 B per layer), MHA-mode dense prefill, EP32 / EP144."""
    m = copy.deepcopy(ds660b)
    m["name"] = "dsv3-prod"
    m["sparse"] = None
    m["mla"]["prefill_mode"] = "mha"
    kv = (m["mla"]["kv_lora_rank"] + m["mla"]["qk_rope_dim"]) * 2
    m["kv_cache"] = {"main_bytes_per_layer": kv, "indexer_bytes_per_layer": 0}
    m["kv_bytes_per_token"] = kv * m["n_layers"]
    m["total_params"] = m["active_params"] = None  # no indexer: not the stated ds660b values
    m["parallel"] = dict(m["parallel"], ep_size_prefill=V3_EP_PREFILL, ep_size_decode=V3_EP_DECODE)
    m["knobs"] = dict(m["knobs"], attn_prefill_eff=V3_ATTN_PREFILL_EFF, attn_decode_eff=V3_ATTN_DECODE_EFF)
    return m


# ---------------------------------------------------------------- predictions (cm: a ComputeModel)
def motivation_ratios(cm) -> dict[int, float]:
    """Batch size -> PE throughput relative to batch size 1 (30K context + 300 new tokens)."""
    w1 = cm.attn_work(MOTIVATION_CTX, MOTIVATION_APPEND)
    t1 = cm.prefill_time(MOTIVATION_APPEND, w1, 1)
    return {b: b * t1 / cm.prefill_time(b * MOTIVATION_APPEND, b * w1, b) for b in MOTIVATION}


def prod_prefill_node(cm, prompt: float) -> float:
    """Prefill input tokens/s per node (incl. cache hits) at a mean prompt of ``prompt`` tokens."""
    ctx = DS_CACHE_HIT * prompt
    new = prompt - ctx
    n = max(1, round(PROD_PREFILL_CHUNK / new))
    return GPUS_PER_NODE * cm.prefill_tokens_per_s(ctx, new, n_reqs=n, include_cached=True)


def prod_decode_node(cm, ctx: float) -> float:
    """Decode output tokens/s per node at mean context ``ctx``, batch filling a PROD_TPOT step."""
    t0, ts, tt = cm.decode_coeffs()
    n = (PROD_TPOT - t0) / (ts + tt * ctx)  # sequences per GPU at a PROD_TPOT step
    return GPUS_PER_NODE * max(n, 0.0) / PROD_TPOT


def tpot_low_load(cm) -> float:
    """Decode step time of one sequence at the 64K dataset's mean context."""
    return cm.decode_step_time(1, MEAN_CTX_64K)
