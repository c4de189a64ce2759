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

Table mode (``model.compute_tables: <directory>``; null = the analytic model above, kept as the
reference).  The dependence on context, new tokens, batch and token count comes from GPU-measured
lookup tables (Vidur's approach; schema and interpolation: :mod:`dpsim.engines.compute_tables`;
how they are measured and the held-out errors: docs/compute_tables.md); config knobs only set
*levels* -- the paper's kernels' time relative to the measured ones (this also absorbs the
measured GPU not being the paper's H800: same SM count class and HBM3, other software)::

    prefill  t = fwd_overhead + L * layer_overhead + n_reqs * req_overhead
                 + prefill_level * head(n_reqs)
                 + smoothmax_p(prefill_level * lin(N), prefill_level * lin(prefill_sat_tokens))
                 + prefill_attn_level * sum_i L * A(cached_i, new_i)
                 + (1 - ep_overlap) * ep_time_per_token * N
    decode   t = t0 + t_seq * n + t_tok * S   (affine least squares of the tables, below)

* ``lin(N)`` = L * attn_proj(N) + n_dense * dense_mlp(N) + n_moe * moe(N) from ``gemm.csv`` (the
  model's GEMM dtype); ``head(n)`` = ``lm_head`` (BF16 rows when present).  ``moe`` was measured
  at one EP size E_t (meta.json, else the model's ``ep_size_prefill``); at EP e it is
  ``(E_t/e) * moe(N e / E_t)`` (balanced routing: per expert the rows scale with e, experts per
  GPU with 1/e).
* ``A(c, n)`` = attention + DSA indexer of one layer for one request (``prefill_attn.csv``).
  :meth:`attn_work` returns ``L * A`` (seconds per forward at level 1), so "attention work" is
  measured seconds and the §S6 quota compares ``prefill_attn_level * sum`` with 300 ms.
* The floor ``prefill_sat_tokens`` / ``prefill_sat_sharpness`` is kept: one GPU's tables cannot
  see what makes the paper's small forwards flat (EP all-to-all across the PE group, the two
  micro-batch overlap); C2's motivation curve sets it.
* Decode: each component is fitted by non-negative least squares on relative error over
  batches 1-128 and contexts 512-64K (``DECODE_FIT_BATCH`` x ``DECODE_FIT_CTX``): linear +
  LM head ``a0 + a1 n`` (EP-converted to ``ep_size_decode``); attention ``b0 + b1 n + b2 n keys``
  (keys = min(ctx, topk) for DSA -> ``t_tok_capped`` of :meth:`decode_coeffs_split`, else ctx);
  DSA indexer ``g0 + g1 n + g2 n ctx``.  ``t0 = decode_level (a0 + L b0 + decode_idx_level L g0) +
  decode_fwd_overhead + L decode_layer_overhead + n_moe decode_ep_layer_latency``; ``t_seq =
  decode_level (a1 + L b1 + decode_idx_level L g1) + decode_seq_overhead + exposed EP``; DSA
  ``t_tok = decode_level decode_idx_level L g2``, ``t_tok_capped = decode_level L b2``.
* Analytic-only knobs (ignored here; kept in the YAML as the reference's values): gemm_eff,
  attn_prefill_eff, attn_decode_eff, indexer_eff, hbm_bw_eff, prefill_sys_eff, decode_sys_eff,
  decode_idx_key_layer_s (the tables measure the indexer; decode_idx_level scales it).  ``decode_fit_max_err`` = worst relative error of the affine step vs the
  tables over that range.
* A variant whose attention differs from the measured model's (``compute_tables_model`` names
  the rows to read; C2's DeepSeek-V3 variant reads ds660b's) scales the attention by the ratio of
  the analytic attention FLOPs of the two (dense MHA-mode vs sparse MQA-mode), and prices decode
  attention over every key at the measured per-key cost.

Every number comes from config; this module holds no hardware or model facts.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .lstsq import lstsq
from .models import ModelShape, cfg_get, to_plain

__all__ = [
    "ComputeModel",
    "KNOB_KEYS",
    "LEVEL_KEYS",
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
# Table mode only (model.compute_tables set; see "Table mode" in the module docstring): levels =
# multipliers on GPU-measured times.  Optional (default 1.0); unused by the analytic model.
LEVEL_KEYS: dict[str, tuple[float, bool, float | None]] = {
    "prefill_level": (0.0, True, None),  # prefill GEMMs + LM head: paper's time / measured time
    "prefill_attn_level": (0.0, True, None),  # prefill attention (+ DSA indexer): idem
    "decode_level": (0.0, True, None),  # decode step (GEMMs, LM head, attention, indexer): idem
    "decode_idx_level": (0.0, True, None),  # DSA decode indexer, on top of decode_level (per model)
}


_TABLE_BUILDS: dict = {}  # table mode: (tables, model, shapes, EP sizes, dtype) -> lookups


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
        for key, (lo, strict, hi) in LEVEL_KEYS.items():
            k[key] = cfg_get(kn, key, where="knobs", min_value=lo, strict_min=strict, max_value=hi, default=1.0)
        self.knobs = k
        tables = self.compute_tables = cfg_get(m, "compute_tables", where=wm, kind=str, default=None, allow_none=True)
        self.mode = "tables" if tables else "analytic"

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

        self.shape_gemm_dtype = cfg_get(m, "gemm_dtype", where=wm, kind=str)
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
        # attention time per up-projection FLOP relative to per attention FLOP (table-mode variants)
        self._up_rel_flops = (p_attn * k["attn_prefill_eff"]) / (p_gemm * k["gemm_eff"])
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
        if tables:
            self._init_tables(m, tables, ep_exposed)

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
            "compute_mode": self.mode,
            **(_table_summary(self) if self.mode == "tables" else {}),
        }

    def __repr__(self) -> str:  # pragma: no cover
        return f"ComputeModel({self.shape.name}, kv={self.kv_bytes_per_token} B/tok, hbm_kv={self.hbm_kv_bytes / 1e9:.1f} GB)"


# ====================================================================== table mode
# (module-level functions bound to ComputeModel below: keeps the class within issue #10's 300 lines)
def _init_tables(self, m: Mapping, path: str, ep_exposed: float) -> None:
    """Table mode: measured times (``compute_tables``) replace the roofline; see the module
    docstring ("Table mode").  Sets the same private constants the analytic methods read
    (``_c_pair``, ``_coeffs``, ``_split``) and instance-level ``attn_work``/``prefill_time``."""
    from .compute_tables import TableError, load_tables, make_2d, Interp1D

    shape, k = self.shape, self.knobs
    tm = m.get("compute_tables_model") or shape.name
    if not isinstance(tm, str):
        raise ValueError(f"model config '{shape.name}': key 'compute_tables_model' must be a string")
    try:
        tab = load_tables(path)
    except TableError as e:
        raise ValueError(f"model config '{shape.name}': key 'compute_tables': {e}") from None
    if tm not in tab.models():
        raise ValueError(f"model config '{shape.name}': compute tables {tab.dir} have no rows for "
                         f"model '{tm}' (have: {', '.join(sorted(tab.models()))})")
    # the shape the tables were measured for (differs only for variants such as C2's V3)
    if tm == shape.name:
        tshape, tcfg = shape, m
    else:
        from .models import ModelShape as _MS
        import yaml as _yaml
        from pathlib import Path as _P
        f = _P(__file__).resolve().parents[1] / "conf" / "model" / f"{tm}.yaml"
        if not f.is_file():
            raise ValueError(f"model config '{shape.name}': key 'compute_tables_model'={tm!r}: no {f}")
        sk = (str(f), f.stat().st_mtime_ns)
        if sk not in _TABLE_BUILDS:
            tc = _yaml.safe_load(f.read_text())
            _TABLE_BUILDS[sk] = (tc, _MS.from_config(tc))
        tcfg, tshape = _TABLE_BUILDS[sk]
    self.tables = tab
    self.tables_model = tm
    L, nd, nm = shape.n_layers, shape.n_dense_layers, shape.n_moe_layers
    # the lookups depend on the tables and the shape, never on the knobs: built once per
    # (tables, model, shape, EP sizes) -- the C2 fits build thousands of ComputeModels
    ckey = (id(tab), tm, shape, tshape, self.ep_size_prefill, self.ep_size_decode, self.shape_gemm_dtype)
    hit = _TABLE_BUILDS.get(ckey)
    if hit is None or hit[0] is not tab:
        filled: list[str] = []
        try:
            built = self._build_tables(tab, tm, shape, tshape, tcfg, filled)
        except TableError as e:
            raise ValueError(f"model config '{shape.name}': key 'compute_tables': {e}") from None
        built["filled"] = filled
        built["decode_fit_max_err"] = self.decode_fit_max_err
        built["moe_eps"] = self.tables_moe_eps
        hit = _TABLE_BUILDS[ckey] = (tab, built)
    self._tab = hit[1]
    self.tables_filled = self._tab["filled"]
    self.decode_fit_max_err = self._tab["decode_fit_max_err"]
    self.tables_moe_eps = self._tab["moe_eps"]
    T = self._tab
    lp, la = k["prefill_level"], k["prefill_attn_level"]
    ld, li = k["decode_level"], k["decode_idx_level"]

    # ---------------- prefill
    lin_p, head = T["lin_prefill"], T["head"]
    self._c_pair = la  # attn_work is in seconds per forward at level 1
    p, inv_p = k["prefill_sat_sharpness"], 1.0 / k["prefill_sat_sharpness"]
    sat = k["prefill_sat_tokens"]
    floor_p = (lp * lin_p(sat)) ** p if sat > 0 else 0.0
    self._g_floor = floor_p ** inv_p
    heads = [lp * head(n) for n in range(257)]
    p_fixed, p_req, ep_tok = self._p_fixed, k["prefill_req_overhead_s"], self._ep_prefill_tok

    from .attn_kernel import PrefillKernel

    pk = PrefillKernel(lp, lin_p, p, inv_p, floor_p, heads, head, p_fixed, p_req, la, ep_tok)
    self.prefill_time = pk.time
    self.attention_time_forward = pk.attention_forward  # (per forward and per batch formation)
    A = T["attn_prefill"]
    conv = T["attn_conv"]
    if conv is not None:
        def attn_work(cached: float, new: float) -> float:
            return L * A(cached, new) * conv(cached, new) if new > 0 else 0.0
    else:
        # Interp2D.__call__ as one compiled kernel (hot path: every request of every forward, and
        # the scheduler's quota search); same arithmetic, same bits (attn_kernel.py)
        from .. import _core
        from .attn_kernel import AttnKernel

        kern = AttnKernel(L, A.ua, A.ub, A.r, A.nb, A.a_min, A.a_max, A.b_min, A.b_max,
                          T["attn_topk"], T["attn_kappa"])
        work = kern.work
        if _core.IMPLEMENTATION == "compiled":
            attn_work = work
        else:
            memo: dict = {}  # pure function of (cached, new); ~half the calls of a run repeat

            def attn_work(cached: float, new: float) -> float:
                v = memo.get((cached, new))
                if v is None:
                    v = work(cached, new)
                    if len(memo) >= 262144:
                        memo.clear()
                    memo[(cached, new)] = v
                return v
    self.attn_work = attn_work

    # ---------------- decode (affine least squares, see _decode_fit)
    a0, a1 = T["dec_lin"]
    b0, b1, b2 = T["dec_attn"]
    g0, g1, g2 = T["dec_idx"]
    ep_lat = shape.n_moe_layers * k["decode_ep_layer_latency_s"] if self.ep_size_decode > 1 else 0.0
    t0 = (ld * (a0 + L * b0 + li * L * g0) + k["decode_fwd_overhead_s"] + L * k["decode_layer_overhead_s"]
          + ep_lat)
    t_seq = (ld * (a1 + L * b1 + li * L * g1) + k["decode_seq_overhead_s"]
             + self.ep_cnic_bytes_per_token_layer_decode * ep_exposed)
    if shape.topk is not None:
        t_idx = ld * li * L * g2  # (decode_idx_key_layer_s is analytic-only: the tables measure the indexer)
        t_cap = ld * L * b2
        self._split = (t0, t_seq, t_idx, t_cap, shape.topk)
        self._coeffs = (t0, t_seq + shape.topk * t_cap, t_idx)
    else:
        self._split = (t0, t_seq, ld * L * b2, 0.0, None)
        self._coeffs = (t0, t_seq, ld * L * b2)

def _build_tables(self, tab, tm: str, shape: ModelShape, tshape: ModelShape, tcfg: Mapping,
                  filled: list) -> dict:
    import math
    from .compute_tables import Interp1D, TableError, make_2d

    L, nd, nm = shape.n_layers, shape.n_dense_layers, shape.n_moe_layers
    gdt = self.shape_gemm_dtype
    out: dict = {}

    # ---------------- GEMMs: one forward's linear layers (excl. LM head) vs tokens per GPU
    def op(name: str, dtype: str) -> Interp1D:
        pts = tab.points("gemm", tm, (name, dtype))
        return Interp1D(list(pts), list(pts.values()))

    ops = {"attn_proj": op("attn_proj", gdt)}
    if nd:
        ops["dense_mlp"] = op("dense_mlp", gdt)
    # moe: gemm.csv holds it at one EP size (meta.json, else the measured model's decode EP:
    # calibration/layers.py); moe_ep.csv, when present, at several
    moes = {}
    if nm:
        tep = tab.ep_size(tm) or int(tcfg["parallel"]["ep_size_decode"])
        moes[tep] = op("moe", gdt)
        for e in tab.moe_eps(tm, gdt):
            pts = tab.points("moe_ep", tm, (e, gdt))
            moes[e] = Interp1D(list(pts), list(pts.values()))
    self.tables_moe_eps = sorted(moes)
    grid = sorted({x for n in ops for x in tab.points("gemm", tm, (n, gdt))})

    def lin_for(ep: int) -> Interp1D:
        # EP e not measured: from the nearest measured E, balanced routing: EP e for N tokens
        # = (E/e) x EP E for N*e/E tokens (per expert the rows scale with e, experts per GPU 1/e)
        if nm:
            E = min(moes, key=lambda v: abs(math.log(v / ep)))
            f = ep / E
            moe = moes[E]
        ys = []
        for x in grid:
            y = L * ops["attn_proj"](x)
            if nd:
                y += nd * ops["dense_mlp"](x)
            if nm:
                y += nm * moe(x * f) / f
            ys.append(y)
        return Interp1D(grid, ys)

    out["lin_prefill"] = lin_for(self.ep_size_prefill)
    lin_d = lin_for(self.ep_size_decode)
    hd = "bf16" if tab.has("gemm", tm, ("lm_head", "bf16")) else gdt
    out["head"] = head = op("lm_head", hd)

    # ---------------- prefill attention: seconds per layer per request (attn + indexer)
    ttopk = tshape.topk

    def dense(c, n):
        return n * (c + 0.5 * n)

    if ttopk is not None:
        def sparse(c, n):
            return attn_work_sparse(c, n, ttopk)
    else:
        sparse = dense
    att = tab.points("prefill_attn", tm, "attn")
    use_idx = shape.topk is not None and tab.has("prefill_attn", tm, "indexer")
    if shape.topk is not None and not use_idx:
        raise TableError(f"{tab.dir / 'prefill_attn.csv'}: no 'train' rows for model={tm} component=indexer (DSA model)")
    if use_idx:
        idx = tab.points("prefill_attn", tm, "indexer")
        ia = make_2d(att, sparse, "prefill_attn attn", filled)
        ii = make_2d(idx, dense, "prefill_attn indexer", filled)
        keys = sorted(set(att) | set(idx))
        pts = {key: ia(*key) + ii(*key) for key in keys}
        # one lookup for both: basis = sparse pairs + kappa x dense pairs, kappa = median ratio
        # of the indexer's to the attention's time per pair (keeps time/basis nearly flat)
        ks = sorted((ii(*key) / dense(*key)) / (ia(*key) / sparse(*key)) for key in keys)
        kappa = ks[len(ks) // 2]
        out["attn_prefill"] = make_2d(pts, lambda c, n: sparse(c, n) + kappa * dense(c, n), "prefill_attn", filled)
        out["attn_topk"], out["attn_kappa"] = ttopk, kappa
    else:
        out["attn_prefill"] = make_2d(att, sparse, "prefill_attn attn", filled)
        out["attn_topk"], out["attn_kappa"] = ttopk, 0.0
    # variant whose attention differs from the measured model's (C2's V3: dense MHA-mode MLA):
    # scale by the ratio of analytic attention FLOPs (documented assumption)
    same = (shape.attention == tshape.attention and shape.prefill_mode == tshape.prefill_mode
            and shape.topk == tshape.topk and shape.attn_flops_pair_layer == tshape.attn_flops_pair_layer)
    if same:
        out["attn_conv"] = None
    else:
        # the MHA-mode up-projection of cached latents is a GEMM: its FLOPs count at the
        # analytic model's GEMM / attention speed ratio (peaks x gemm_eff / attn_prefill_eff)
        fo, ft = shape.attn_flops_pair_layer, tshape.attn_flops_pair_layer
        uo = shape.up_flops_cached_layer * self._up_rel_flops
        otopk = shape.topk

        def conv(c, n):
            wo = fo * (attn_work_sparse(c, n, otopk) if otopk is not None else dense(c, n)) + uo * c
            return wo / (ft * sparse(c, n))
        out["attn_conv"] = conv

    # ---------------- decode: affine least squares over the paper's batch / context range
    datt = make_2d(tab.points("decode_attn", tm, "attn"),
                   (lambda c, b: b * (min(c, ttopk) + 1.0)) if ttopk is not None else (lambda c, b: b * (c + 1.0)),
                   "decode_attn attn", filled)
    didx = None
    if shape.topk is not None:
        didx = make_2d(tab.points("decode_attn", tm, "indexer"), lambda c, b: b * (c + 1.0),
                       "decode_attn indexer", filled)
    out.update(self._decode_fit(lin_d, head, datt, didx, ttopk, shape, tshape))
    return out

# batch sizes and contexts of the decode least squares (the paper's range: up to ~128
# sequences per DE GPU, contexts up to the 64K dataset's MAL)
DECODE_FIT_BATCH = (1, 2, 4, 8, 16, 32, 64, 128)
DECODE_FIT_CTX = (512, 1024, 2048, 4096, 8192, 16384, 32768, 49152, 65536)

def _decode_fit(self, lin_d, head, datt, didx, ttopk, shape, tshape) -> dict:
    """Affine coefficients of each decode component by non-negative least squares on relative
    error over ``DECODE_FIT_BATCH x DECODE_FIT_CTX``: linear+head ``a0 + a1*n``; attention
    ``b0 + b1*n + b2*n*keys`` (keys = min(ctx, topk) for DSA, ctx otherwise); indexer
    ``g0 + g1*n + g2*n*ctx``.  Also records the worst relative error of the affine step time
    against the table step time (level 1) in ``self.decode_fit_max_err``."""
    B, C = self.DECODE_FIT_BATCH, self.DECODE_FIT_CTX

    def nnls_rel(X, y):
        # Plain-Python least squares (dpsim.engines.lstsq), not numpy's: LAPACK/BLAS kernels
        # chosen by processor made these coefficients, so every result, machine-dependent.
        w = [1.0 / float(v) for v in y]
        Xw = [[float(v) * wi for v in row] for row, wi in zip(X, w)]
        yw = [float(v) * wi for v, wi in zip(y, w)]
        act = list(range(len(X[0])))
        while True:
            c = lstsq([[row[j] for j in act] for row in Xw], yw)
            if min(c) >= 0.0 or len(act) == 1:
                full = [0.0] * len(X[0])
                for j, v in zip(act, c):
                    full[j] = v if v > 0.0 else 0.0
                return full
            act.pop(c.index(min(c)))

    a = nnls_rel([[1.0, n] for n in B], [lin_d(n) + head(n) for n in B])
    dense_own = shape.topk is None and ttopk is not None  # e.g. V3 priced from DSA tables
    kf = (shape.attn_dec_flops_key_layer / tshape.attn_dec_flops_key_layer) if dense_own else 1.0
    X, y = [], []
    for n in B:
        for c in C:
            keys = min(c, ttopk) if ttopk is not None else c
            X.append([1.0, n, n * keys])
            y.append(datt(c, n))
    b = nnls_rel(X, y)
    if dense_own:
        b[2] *= kf  # dense over the whole context; the regressor becomes n*ctx (decode_coeffs)
    g = [0.0, 0.0, 0.0]
    if didx is not None:
        g = nnls_rel([[1.0, n, n * c] for n in B for c in C], [didx(c, n) for n in B for c in C])
    # worst error of the affine form (level 1, all layers) over the grid
    L = shape.n_layers
    worst = 0.0
    for n in B:
        for c in C:
            keys = c if (ttopk is None or dense_own) else min(c, ttopk)
            tab_t = lin_d(n) + head(n) + L * datt(c, n) * (kf if dense_own else 1.0)
            aff = a[0] + a[1] * n + L * (b[0] + b[1] * n + b[2] * n * keys)
            if didx is not None:
                tab_t += L * didx(c, n)
                aff += L * (g[0] + g[1] * n + g[2] * n * c)
            worst = max(worst, abs(aff / tab_t - 1.0))
    self.decode_fit_max_err = worst
    return {"dec_lin": tuple(a), "dec_attn": tuple(b), "dec_idx": tuple(g), "lin_decode": lin_d,
            "attn_decode": datt, "idx_decode": didx}

def table_errors(self, split: str = "heldout") -> list[dict]:
    """Relative error of this model's table lookups (level 1, per layer / per op) at the
    tables' ``split`` points: [{table, key, at, measured, predicted, rel_err}]."""
    if self.mode != "tables":
        raise ValueError("table_errors: the model is analytic (compute_tables is null)")
    from .compute_tables import make_2d, Interp1D

    tab, tm, rows = self.tables, self.tables_model, []
    ttopk = self.shape.topk if self.tables_model == self.shape.name else None
    for (kind, model, key, sp), pts in sorted(tab._pts.items(), key=lambda kv: str(kv[0])):
        if model != tm or sp != split or not tab.has(kind, tm, key, "train"):
            continue
        train = tab.points(kind, tm, key, "train")
        if kind in ("gemm", "moe_ep"):
            f = Interp1D(list(train), list(train.values()))
        else:
            if kind == "prefill_attn":
                basis = ((lambda c, n: attn_work_sparse(c, n, ttopk)) if (key == "attn" and ttopk)
                         else (lambda c, n: n * (c + 0.5 * n)))
            else:
                basis = ((lambda c, b: b * (min(c, ttopk) + 1.0)) if (key == "attn" and ttopk)
                         else (lambda c, b: b * (c + 1.0)))
            f = make_2d(train, basis, kind, [])
        for at, t in sorted(pts.items()):
            got = f(at) if kind in ("gemm", "moe_ep") else f(*at)
            rows.append({"table": kind, "key": key if isinstance(key, str) else "/".join(map(str, key)), "at": at,
                         "measured": t, "predicted": got, "rel_err": got / t - 1.0})
    return rows


def _table_summary(self) -> dict:
    return {"compute_tables": str(self.tables.dir), "compute_tables_model": self.tables_model,
            "prefill_s_per_token_gemm": self.prefill_time(16384, 0.0, 1) / 16384, "prefill_s_per_attn_pair": None,
            "decode_affine_max_rel_err": self.decode_fit_max_err,
            "levels": {kk: self.knobs[kk] for kk in LEVEL_KEYS}}


ComputeModel._init_tables = _init_tables
ComputeModel._build_tables = _build_tables
ComputeModel._decode_fit = _decode_fit
ComputeModel.table_errors = table_errors
ComputeModel.DECODE_FIT_BATCH = DECODE_FIT_BATCH
ComputeModel.DECODE_FIT_CTX = DECODE_FIT_CTX
