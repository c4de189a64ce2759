"""Per-engine compute-time model (one engine = one GPU; §S2, §S6, §S9, §S10).

``ComputeModel(model, gpu, knobs)`` maps a prefill batch or a decode step to seconds with a
roofline-style model whose efficiencies are config knobs (``conf/model/*.yaml: knobs``),
fitted to the public calibration points C2 by ``calibration/fit_compute_c2.py``.

Prefill (one forward pass of a PE over a batch; DP attention + EP MoE for DeepSeek)::

    t = fwd_overhead + L * layer_overhead + n_reqs * (req_overhead + t_head)
        + smoothmax_p(c_lin * N, G_floor)                        # GEMMs
        + c_pair * attn_work                                     # attention (+ indexer)
        + (1 - ep_overlap) * ep_time_per_token * N               # exposed EP all-to-all

* ``N`` = new tokens in the batch; ``c_lin`` = GEMM FLOPs per token / (peak * gemm_eff *
  prefill_sys_eff).  With EP every GPU of the group processes on average its own tokens'
  share of expert work, so the per-GPU GEMM cost is that of its own N tokens.
* ``G_floor = max(c_lin * prefill_sat_tokens, weights_per_gpu / (HBM_BW * hbm_bw_eff))``:
  GEMMs do not get faster below ``prefill_sat_tokens`` tokens per forward (few tokens per
  expert: memory-bound grouped GEMMs, tile/wave quantisation, EP latency not hidden by
  compute), and never faster than reading the GPU's weights once.  ``smoothmax_p(a, b) =
  (a^p + b^p)^(1/p)`` with ``p = prefill_sat_sharpness`` blends the two regimes.  This is
  the shape the paper's motivation curve (C2) implies: a forward costs about the same up to
  ~``prefill_sat_tokens`` new tokens (fitted: ~1.9K), then cost grows linearly, so
  throughput saturates near 3K new tokens per batch.  An additive "fixed + per-token" model
  cannot fit it (same asymptote -> 1.50x at 2 requests instead of 1.66x).
* ``attn_work`` is in *attention-pair equivalents* (see :meth:`ComputeModel.attn_work`):
  causal (query, key) pairs, capped at top-k keys per query for DSA sparse attention, plus
  the lightning indexer's dense O(new x context) scoring converted at its relative cost.
  Attention is not floored: with long cached contexts its kernels already have plenty of
  work per request.

Decode (one iteration of a DE: one token for each of ``n`` sequences, ``S`` = sum of their
context lengths)::

    t = t0 + t_seq * n + t_tok * S          (see decode_coeffs())

* ``t0`` = weights per GPU read once per step (EP: the GPU's share of routed experts + all
  replicated weights) / (HBM_BW * hbm_bw_eff) + decode_fwd_overhead + L * decode_layer_overhead
  + n_moe_layers * decode_ep_layer_latency (EP dispatch/combine latency; DP-attention sync).
* ``t_seq`` = GEMM FLOPs per token / (peak * gemm_eff * decode_sys_eff) + LM head +
  decode_seq_overhead + exposed EP bytes; for DSA models also the sparse attention over the
  top-k selected keys (``topk`` keys per sequence: see "sparse decode" below).
* ``t_tok`` = per context key and all layers, the roofline max of reading its KV bytes and its
  attention FLOPs (MLA decode with 128 heads is compute-bound; GQA decode is memory-bound).
  For DSA models ``t_tok`` is the lightning indexer only (dense over the whole context: it
  reads every indexer key), plus ``L * decode_idx_key_layer_s``: a fixed cost per context key
  per layer that the roofline misses.  In decode each sequence brings one query row per layer,
  so the indexer's score materialisation and the top-k selection over the whole context are
  long, thin, latency-bound reductions rather than bandwidth-bound kernels; the knob is an
  effective cost fitted to C1 (``calibration/fit_c1.py``), not derived from kernel specs.  It
  does not apply to prefill (thousands of query rows per forward amortise it) nor to dense
  attention (no per-key selection).

Sparse decode: the attention term of a DSA model is ``t_attn_key * min(ctx_i, topk)`` per
sequence, which is not affine in ``S``.  ``decode_coeffs()`` folds it into ``t_seq`` as
``topk * t_attn_key`` (exact for every sequence with ``ctx >= topk``, an over-estimate of at
most ``topk * t_attn_key`` per shorter sequence; agentic contexts are tens of thousands of
tokens), so the affine form stays exact in ``S`` and ``decode_ctx_cap`` is ``None``.  Callers
that want the exact split use :meth:`ComputeModel.decode_coeffs_split` and pass
``S_capped = sum(min(ctx_i, topk))`` themselves.

The §S6 compute quota (300 ms) -- our reading: it bounds the attention time of a whole
forward (all layers), :meth:`attention_time_forward`.  Read per layer it would admit, with
the fitted knobs, ~220 requests of 30K context + 300 new tokens on DS 660B (~67K new tokens;
a forward of ~29 s, seven times the 4 s TTFT SLO); read per forward it admits ~3.6 such
requests on DS 660B and ~43 on DS 27B.  ``attention_time_layer`` (= ``attention_time``, the
brief's name) serves the other reading; the choice belongs to the scheduler's config.

Every number comes from config; this module holds no hardware or model facts.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .models import ModelShape, cfg_get, to_plain

__all__ = [
    "ComputeModel",
    "KNOB_KEYS",
    "attn_work",
    "attn_work_dense",
    "attn_work_sparse",
]

# name -> (lower bound, strict, upper bound); documented in conf/model/*.yaml: knobs
KNOB_KEYS: dict[str, tuple[float, bool, float | None]] = {
    "gemm_eff": (0.0, True, 1.0),  # kernel GEMM efficiency vs dense peak of the GEMM dtype
    "attn_prefill_eff": (0.0, True, 1.0),  # prefill attention kernel efficiency vs attn-dtype peak
    "attn_decode_eff": (0.0, True, 1.0),  # decode attention kernel efficiency (compute-bound case)
    "indexer_eff": (0.0, True, 1.0),  # DSA lightning-indexer kernel efficiency vs FP8 peak
    "hbm_bw_eff": (0.0, True, 1.0),  # achieved / peak HBM bandwidth (weights, KV reads)
    "prefill_sys_eff": (0.0, True, 1.0),  # system-level factor on all prefill compute effs
    "prefill_sat_tokens": (0.0, False, None),  # GEMM floor: tokens/forward below which cost is flat
    "prefill_sat_sharpness": (0.5, False, 64.0),  # p of the smooth max (large p -> hard max)
    "prefill_fwd_overhead_s": (0.0, False, None),  # fixed per prefill forward (launch, scheduling)
    "prefill_layer_overhead_s": (0.0, False, None),  # non-overlapped per layer per forward
    "prefill_req_overhead_s": (0.0, False, None),  # per request in a prefill batch
    "decode_sys_eff": (0.0, True, 1.0),  # system-level factor on decode compute effs
    "decode_fwd_overhead_s": (0.0, False, None),  # fixed per decode step
    "decode_layer_overhead_s": (0.0, False, None),  # per layer per decode step (launch, norms)
    "decode_ep_layer_latency_s": (0.0, False, None),  # per MoE layer per step with EP>1
    "decode_seq_overhead_s": (0.0, False, None),  # per sequence per step (sampling, bookkeeping)
    "decode_idx_key_layer_s": (0.0, False, None),  # DSA decode: per context key per layer per step (top-k select)
    "ep_overlap": (0.0, False, 1.0),  # fraction of EP all-to-all transfer time hidden by compute
    "ep_net_bw_bytes_per_s": (0.0, True, None),  # bandwidth for the exposed EP bytes (CNIC)
}


# --------------------------------------------------------------------- attention work
def attn_work_dense(cached: float, new: float) -> float:
    """Causal attention pairs of one request chunk: ``new * (cached + new / 2)``.

    (Continuous form of sum_{i=1..new} (cached + i); the +new/2 difference is immaterial.)
    """
    return new * (cached + 0.5 * new)


attn_work = attn_work_dense  # module-level helper: dense causal pairs of one request


def attn_work_sparse(cached: float, new: float, topk: float) -> float:
    """Attention pairs when each query attends to at most ``topk`` keys (DSA).

    Continuous form of sum_{i=1..new} min(cached + i, topk); equals :func:`attn_work_dense`
    when ``cached + new <= topk`` and ``new * topk`` when ``cached >= topk``.
    """
    if cached >= topk:
        return new * topk
    x = topk - cached  # queries before the cap is reached
    if new <= x:
        return new * (cached + 0.5 * new)
    return x * (cached + 0.5 * x) + (new - x) * topk


# --------------------------------------------------------------------- the model
class ComputeModel:
    """Compute time of one engine (GPU).  See the module docstring for the equations.

    Attributes (read-only by convention):
      n_layers, n_moe_layers, kv_bytes_per_token (int), kv_bytes_per_token_layer (float),
      hbm_kv_bytes (int; decode engine, the GPU that keeps KV resident),
      hbm_kv_bytes_prefill (int; a prefill engine's free HBM, what non-layerwise Basic
      batching is limited by), weight_bytes_per_gpu_prefill / _decode,
      ep_size_prefill / ep_size_decode,
      ep_bytes_per_token_layer (float; EP dispatch + combine bytes per token per MoE layer,
      all top-k copies; 0 for dense models),
      ep_cnic_bytes_per_token_layer_prefill / _decode (the part that leaves the node, i.e.
      crosses the CNICs: ep_bytes * (1 - gpus_per_node / ep_size), no per-node dedup;
      0 when the EP group is one node),
      topk (None for dense attention), decode_ctx_cap (None: see module docstring),
      shape (ModelShape), knobs (dict).
    """

    def __init__(self, model: Mapping, gpu: Mapping, knobs: Mapping | None = None) -> None:
        m = to_plain(model)
        gp = to_plain(gpu)
        if knobs is None:
            if not isinstance(m, Mapping) or "knobs" not in m:
                raise ValueError("model config: missing required key 'knobs'")
            knobs = m["knobs"]
        kn = to_plain(knobs)
        if not isinstance(kn, Mapping):
            raise ValueError("knobs: expected a mapping")
        if not isinstance(gp, Mapping):
            raise ValueError("gpu config: expected a mapping")
        shape = ModelShape.from_config(m)
        self.shape = shape
        wm = f"model config '{shape.name}'"
        wg = f"gpu config '{gp.get('name', '?')}'"

        # ---------------- knobs
        k: dict[str, float] = {}
        for key, (lo, strict, hi) in KNOB_KEYS.items():
            k[key] = cfg_get(kn, key, where="knobs", min_value=lo, strict_min=strict, max_value=hi)
        self.knobs = k

        # ---------------- GPU
        peaks = {
            "bf16": cfg_get(gp, "peak_flops_bf16", where=wg, strict_min=True),
            "fp8": cfg_get(gp, "peak_flops_fp8", where=wg, strict_min=True),
        }
        hbm = cfg_get(gp, "hbm_bytes", where=wg, strict_min=True)
        bw = cfg_get(gp, "hbm_bw_bytes_per_s", where=wg, strict_min=True)

        def peak(key: str) -> float:
            dt = cfg_get(m, key, where=wm, kind=str)
            if dt not in peaks:
                raise ValueError(f"{wm}: key '{key}' must be one of {sorted(peaks)}, got {dt!r}")
            return peaks[dt]

        p_gemm = peak("gemm_dtype")
        p_attn = peak("attn_dtype")
        p_idx = peaks["fp8"]  # DSA indexer runs in FP8 (DeepGEMM fp8 MQA logits)
        p_head = peaks["bf16"]  # LM head kept in BF16

        # ---------------- parallelism / memory
        gpn = cfg_get(m, "parallel.gpus_per_node", where=wm, kind=int, min_value=1)
        self.ep_size_prefill = cfg_get(m, "parallel.ep_size_prefill", where=wm, kind=int, min_value=1)
        self.ep_size_decode = cfg_get(m, "parallel.ep_size_decode", where=wm, kind=int, min_value=1)
        reserved = cfg_get(m, "hbm_reserved_bytes", where=wm, min_value=0.0)

        L = shape.n_layers
        self.n_layers = L
        self.n_moe_layers = shape.n_moe_layers
        self.kv_bytes_per_token = int(shape.kv_bytes_per_token)
        self.kv_bytes_per_token_layer = shape.kv_bytes_per_token / L
        self.topk = shape.topk
        self.decode_ctx_cap = None

        self.weight_bytes_per_gpu_prefill = shape.weight_bytes_per_gpu(self.ep_size_prefill)
        self.weight_bytes_per_gpu_decode = shape.weight_bytes_per_gpu(self.ep_size_decode)
        free_d = hbm - self.weight_bytes_per_gpu_decode - reserved
        free_p = hbm - self.weight_bytes_per_gpu_prefill - reserved
        for free, role, ep in ((free_d, "decode", self.ep_size_decode), (free_p, "prefill", self.ep_size_prefill)):
            if free <= 0:
                w = self.weight_bytes_per_gpu_decode if role == "decode" else self.weight_bytes_per_gpu_prefill
                raise ValueError(
                    f"{wm}: key 'parallel.ep_size_{role}'={ep} / 'hbm_reserved_bytes'={reserved:.3g}: "
                    f"weights {w / 1e9:.1f} GB + reserve exceed the GPU's HBM {hbm / 1e9:.1f} GB"
                )
        self.hbm_bytes = hbm
        self.hbm_reserved_bytes = reserved
        self.hbm_kv_bytes = int(free_d)
        self.hbm_kv_bytes_prefill = int(free_p)

        self.ep_bytes_per_token_layer = shape.ep_bytes_per_token_layer

        def remote(ep: int) -> float:
            return 0.0 if ep <= gpn else 1.0 - gpn / ep

        self.ep_cnic_bytes_per_token_layer_prefill = shape.ep_bytes_per_token_layer * remote(self.ep_size_prefill)
        self.ep_cnic_bytes_per_token_layer_decode = shape.ep_bytes_per_token_layer * remote(self.ep_size_decode)

        bw_eff = bw * k["hbm_bw_eff"]
        ep_exposed = (1.0 - k["ep_overlap"]) * shape.n_moe_layers / k["ep_net_bw_bytes_per_s"]

        # ---------------- prefill constants
        ps = k["prefill_sys_eff"]
        self._c_lin = shape.gemm_flops_per_token / (p_gemm * k["gemm_eff"] * ps)
        self._c_head = shape.head_flops / (p_head * k["gemm_eff"] * ps)
        self._c_pair = shape.attn_flops_pair_layer * L / (p_attn * k["attn_prefill_eff"] * ps)
        c_idx = shape.idx_flops_pair_layer * L / (p_idx * k["indexer_eff"] * ps)
        c_up = shape.up_flops_cached_layer * L / (p_gemm * k["gemm_eff"] * ps)
        self._idx_rel = c_idx / self._c_pair  # indexer pair in attention-pair equivalents
        self._up_rel = c_up / self._c_pair  # MLA-mha cached-token up-projection, same units
        self._w_prefill = self.weight_bytes_per_gpu_prefill / bw_eff
        self._g_floor = max(self._c_lin * k["prefill_sat_tokens"], self._w_prefill)
        self._p = k["prefill_sat_sharpness"]
        self._inv_p = 1.0 / self._p
        self._g_floor_p = self._g_floor ** self._p
        self._ep_prefill_tok = self.ep_cnic_bytes_per_token_layer_prefill * ep_exposed
        self._p_fixed = k["prefill_fwd_overhead_s"] + L * k["prefill_layer_overhead_s"]
        self._p_req = k["prefill_req_overhead_s"] + self._c_head

        # ---------------- decode constants
        ds = k["decode_sys_eff"]
        t_key_attn = L * max(
            shape.kv_main_bytes_layer / bw_eff,
            shape.attn_dec_flops_key_layer / (p_attn * k["attn_decode_eff"] * ds),
        )
        t_key_idx = (
            L * (max(shape.kv_idx_bytes_layer / bw_eff, shape.idx_flops_pair_layer / (p_idx * k["indexer_eff"] * ds))
                 + k["decode_idx_key_layer_s"])
            if shape.topk is not None
            else 0.0
        )
        ep_lat = shape.n_moe_layers * k["decode_ep_layer_latency_s"] if self.ep_size_decode > 1 else 0.0
        self._w_decode = self.weight_bytes_per_gpu_decode / bw_eff
        t0 = k["decode_fwd_overhead_s"] + L * k["decode_layer_overhead_s"] + ep_lat + self._w_decode
        t_seq_base = (
            shape.gemm_flops_per_token / (p_gemm * k["gemm_eff"] * ds)
            + shape.head_flops / (p_head * k["gemm_eff"] * ds)
            + k["decode_seq_overhead_s"]
            + self.ep_cnic_bytes_per_token_layer_decode * ep_exposed
        )
        if shape.topk is not None:
            self._split = (t0, t_seq_base, t_key_idx, t_key_attn, shape.topk)
            self._coeffs = (t0, t_seq_base + shape.topk * t_key_attn, t_key_idx)
        else:
            self._split = (t0, t_seq_base, t_key_attn, 0.0, None)
            self._coeffs = (t0, t_seq_base, t_key_attn)

    # ================================================================== prefill
    def attn_work(self, cached: float, new: float) -> float:
        """Attention work of one request chunk in attention-pair equivalents, for this model.

        Dense attention: causal pairs ``new * (cached + new/2)`` (+ MLA-mha up-projection of
        the cached latents).  DSA: pairs capped at top-k keys per query plus the lightning
        indexer's dense pairs weighted by its cost relative to an attention pair.
        Sum it over the requests of a batch and pass the sum to :meth:`prefill_time`.
        """
        dense = new * (cached + 0.5 * new)
        topk = self.topk
        if topk is None:
            return dense + self._up_rel * cached if self._up_rel else dense
        return attn_work_sparse(cached, new, topk) + self._idx_rel * dense

    def prefill_time(self, new_tokens_sum: float, attn_work: float, n_reqs: int) -> float:
        """Seconds for one prefill forward over a batch on one engine (GPU).

        ``new_tokens_sum`` = tokens computed now, ``attn_work`` = sum of
        :meth:`attn_work` over the batch's requests (chunks), ``n_reqs`` = requests in the batch.
        """
        if new_tokens_sum <= 0 and attn_work <= 0:
            return 0.0
        g = self._c_lin * new_tokens_sum
        gemm = (g ** self._p + self._g_floor_p) ** self._inv_p
        return (
            self._p_fixed
            + n_reqs * self._p_req
            + gemm
            + self._c_pair * attn_work
            + self._ep_prefill_tok * new_tokens_sum
        )

    def attention_time_forward(self, new_tokens_sum: float, attn_work: float, n_reqs: int) -> float:
        """Attention (+ indexer) time of the whole forward (all layers) -- what we compare with
        the §S6 300 ms quota (see module docstring)."""
        return self._c_pair * attn_work

    def attention_time_layer(self, new_tokens_sum: float, attn_work: float, n_reqs: int) -> float:
        """Attention (+ indexer) time of ONE layer: :meth:`attention_time_forward` / n_layers."""
        return self._c_pair * attn_work / self.n_layers

    attention_time = attention_time_layer  # brief's name: the one-layer attention time

    def attention_work_for_time(self, seconds: float, per_layer: bool = False) -> float:
        """Inverse of the attention-time fit: the attention work that takes ``seconds``
        (forward, or one layer if ``per_layer``).  Useful for the §S6 quota's binary search."""
        w = seconds / self._c_pair
        return w * self.n_layers if per_layer else w

    def prefill_tokens_per_s(
        self, ctx: float, append: float, n_reqs: int = 1, include_cached: bool = False
    ) -> float:
        """Prefill throughput of one engine for a batch of ``n_reqs`` identical requests, each
        with ``ctx`` cached tokens and ``append`` new tokens: new tokens per second (or input
        tokens incl. cached ones if ``include_cached``)."""
        t = self.prefill_time(n_reqs * append, n_reqs * self.attn_work(ctx, append), n_reqs)
        tokens = n_reqs * (append + ctx if include_cached else append)
        return tokens / t

    # ================================================================== decode
    def decode_coeffs(self) -> tuple[float, float, float]:
        """``(t0, t_seq, t_tok)``: one decode step for ``n`` sequences whose contexts sum to ``S``
        tokens takes ``t0 + t_seq * n + t_tok * S`` seconds (``decode_ctx_cap`` is None: pass the
        plain sum of context lengths)."""
        return self._coeffs

    def decode_coeffs_split(self) -> tuple[float, float, float, float, int | None]:
        """Exact split ``(t0, t_seq, t_tok, t_tok_capped, cap)``: step time =
        ``t0 + t_seq*n + t_tok*S + t_tok_capped*S_capped`` with ``S_capped = sum(min(ctx_i, cap))``.
        For dense models ``t_tok_capped == 0`` and ``cap is None``."""
        return self._split

    def decode_step_time(self, n: int, ctx_sum: float) -> float:
        """One decode step, affine form."""
        t0, ts, tt = self._coeffs
        return t0 + ts * n + tt * ctx_sum if n > 0 else 0.0

    def decode_step_time_exact(self, ctxs: Sequence[float]) -> float:
        """One decode step from the individual context lengths (top-k cap applied per sequence)."""
        if not ctxs:
            return 0.0
        t0, ts, tt, tc, cap = self._split
        s = sum(ctxs)
        sc = sum(min(c, cap) for c in ctxs) if cap is not None else 0.0
        return t0 + ts * len(ctxs) + tt * s + tc * sc

    def decode_time(self, n: int, ctx_sum0: float, steps: int) -> float:
        """Closed-form time of ``steps`` consecutive decode steps of a fixed set of ``n``
        sequences whose contexts sum to ``ctx_sum0`` at the first step and grow by one token
        per sequence per step: ``steps*(t0 + t_seq*n + t_tok*S0) + t_tok*n*steps*(steps-1)/2``."""
        if n <= 0 or steps <= 0:
            return 0.0
        t0, ts, tt = self._coeffs
        return steps * (t0 + ts * n + tt * ctx_sum0) + tt * n * steps * (steps - 1) * 0.5

    def decode_steps_within(self, n: int, ctx_sum0: float, seconds: float) -> int:
        """Largest number of whole decode steps (fixed batch, growing contexts) that finish
        within ``seconds``: inverse of :meth:`decode_time`."""
        if n <= 0 or seconds <= 0:
            return 0
        t0, ts, tt = self._coeffs
        a = 0.5 * tt * n
        b = t0 + ts * n + tt * ctx_sum0 - a
        if a <= 0:
            k = int(seconds // b)
        else:
            k = int((-b + (b * b + 4 * a * seconds) ** 0.5) / (2 * a))
        while k > 0 and self.decode_time(n, ctx_sum0, k) > seconds:
            k -= 1
        while self.decode_time(n, ctx_sum0, k + 1) <= seconds:
            k += 1
        return k

    # ================================================================== reporting
    def summary(self) -> dict[str, Any]:
        """Plain-number description (for run outputs and the validation report)."""
        t0, ts, tt = self._coeffs
        s = self.shape
        return {
            "model": s.name,
            "total_params": s.total_params,
            "active_params": s.active_params,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "weight_bytes_per_gpu_prefill": self.weight_bytes_per_gpu_prefill,
            "weight_bytes_per_gpu_decode": self.weight_bytes_per_gpu_decode,
            "hbm_kv_bytes": self.hbm_kv_bytes,
            "hbm_kv_bytes_prefill": self.hbm_kv_bytes_prefill,
            "hbm_kv_tokens": self.hbm_kv_bytes // self.kv_bytes_per_token,
            "ep_bytes_per_token_layer": self.ep_bytes_per_token_layer,
            "ep_cnic_bytes_per_token_layer_prefill": self.ep_cnic_bytes_per_token_layer_prefill,
            "ep_cnic_bytes_per_token_layer_decode": self.ep_cnic_bytes_per_token_layer_decode,
            "decode_t0_s": t0,
            "decode_t_seq_s": ts,
            "decode_t_tok_s": tt,
            "prefill_s_per_token_gemm": self._c_lin,
            "prefill_s_per_attn_pair": self._c_pair,
            "prefill_gemm_floor_s": self._g_floor,
        }

    def __repr__(self) -> str:  # pragma: no cover
        return f"ComputeModel({self.shape.name}, kv={self.kv_bytes_per_token} B/tok, hbm_kv={self.hbm_kv_bytes / 1e9:.1f} GB)"
