"""Per-layer compute tables of the three paper models, measured on one GPU (PyTorch).

    python -m dpsim.calibration layers --out DIR [--quick] [--device cpu] [--deadline-s 480]
    python3 calibration/layers.py --out DIR ...        (same, as a plain file: no install needed)

GPU side: torch + the standard library only.  Writes ``DIR/<gpu_tag>/`` (gpu_tag ``h100``/``h200``
from the device name; ``cpu`` for ``--device cpu``) with the tables described in
``calibration/profiles/compute_tables/SCHEMA.md``: ``prefill_attn.csv``, ``decode_attn.csv``,
``gemm.csv`` (+ ``moe_ep.csv``, ``timings_raw.csv``) and ``meta.json``; rows are appended as they
are measured, so a run cut short by ``--deadline-s`` still leaves usable tables.

What is timed (one layer, one GPU holding all attention heads -- DP attention):

* DSA models (ds660b, ds27b; MLA in absorbed/MQA mode, following the public DeepSeek-V3.2-Exp
  inference code; torch re-implementation, not FlashMLA/DeepGEMM):
  - ``indexer``: the lightning indexer -- scores ``sum_h w[q,h] * relu(q_h . k)`` of every query
    over every cached+new key (index_n_heads x index_head_dim; FP8 e4m3 via ``torch._scaled_mm``
    on a GPU that has it in prefill, BF16 bmm in decode), the causal mask, and top-k selection.
  - ``attn``: sparse MQA attention of each query (n_heads x (kv_lora 512 + rope 64)) over its
    top-k selected latent keys (gather + bmm + fp32 softmax + bmm), BF16.
* qwen32b (GQA 40/8 x 128): ``attn`` = FlashAttention forward (the first implementation that
  passes a lower-right-causal float64 check among: aten flash with GQA heads, SDPA with
  ``causal_lower_right``, explicit math).  Decode folds the 5 query heads of a group into the
  query axis (exact for one token).
* Linear work (``gemm.csv``) in BF16 and FP8 (e4m3 per-tensor scales, BF16 out, activations cast
  to FP8 inside the timed region): ``attn_proj`` (MLA q/kv down+up projections, the absorbed
  W_UK/W_UV bmm in BF16, o_proj, and the indexer's q/k/weight projections; Qwen: QKV with bias +
  O), ``dense_mlp`` (SwiGLU gate_up + silu*mul + down), ``moe`` (router gate + sigmoid + top-k,
  the shared expert(s) on all T tokens, and the n_routed/EP local experts, each receiving
  T*top_k*EP/n_routed tokens -- balanced routing with every EP rank holding T tokens, i.e. the
  GPU's experts process T*top_k token copies in all), ``lm_head`` (T x hidden -> vocab).
  Norms, RoPE and the indexer's Hadamard rotation are not timed (elementwise, small).

Timing: warm-up, then (op under 20 ms) a CUDA graph of R repetitions sized to ~2 ms (plain loop if
capture fails), CUDA events, median of ``--trials`` (>= 5) trials; ops over 20 ms run eagerly
once per trial.  Small weights are rotated among copies (>= 4x L2 in all) so that weight reads
come from HBM.  Every op is checked first against a float64 reference at small shapes on fresh
random inputs (relative Frobenius error; thresholds in ``TOL``).
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time

if __name__ == "__main__" and sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    # run as a file: calibration/ must not shadow the standard library (calibration/profile.py vs
    # the stdlib ``profile`` that torch._dynamo imports through cProfile)
    sys.path.pop(0)

# ----------------------------------------------------------------------------- models
# Mirrors dpsim/conf/model/*.yaml (tests/test_layers.py checks these numbers against the yaml).
MODELS = {
    "ds660b": dict(kind="dsa", hidden=7168, n_heads=128, vocab=129280, q_lora=1536, kv_lora=512, rope=64,
                   nope=128, v_dim=128, topk=2048, idx_heads=64, idx_dim=128, dense_inter=18432,
                   n_routed=256, top_k=8, n_shared=1, moe_inter=2048, ep_prefill=16, ep_decode=32,
                   gemm_dtype="fp8"),
    "ds27b": dict(kind="dsa", hidden=2560, n_heads=32, vocab=129280, q_lora=None, kv_lora=512, rope=64,
                  nope=128, v_dim=128, topk=1024, idx_heads=32, idx_dim=64, dense_inter=12288,
                  n_routed=72, top_k=6, n_shared=2, moe_inter=1536, ep_prefill=8, ep_decode=8,
                  gemm_dtype="fp8"),
    "qwen32b": dict(kind="gqa", hidden=5120, n_heads=40, n_kv_heads=8, head_dim=128, vocab=152064,
                    dense_inter=27648, gemm_dtype="fp8"),
}
MODEL_NAMES = list(MODELS)

# ----------------------------------------------------------------------------- grids
PREFILL_CACHED = [0, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
PREFILL_NEW = [128, 256, 512, 1024, 2048, 4096, 8192, 16384]
PREFILL_HELDOUT = [(0, 3072), (3072, 384), (12288, 1536), (49152, 6144), (3072, 12288), (24576, 192), (6144, 3072)]
DECODE_BATCH = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
DECODE_CTX = [1024, 2048, 4096, 8192, 16384, 32768, 65536]
DECODE_HELDOUT = [(3, 3072), (12, 12288), (48, 49152), (96, 3072), (192, 12288), (24, 24576), (384, 6144)]
DECODE_MAX_KEYS = 1 << 22  # batch*ctx cap: above every model's per-GPU KV capacity (<= 3.35M tokens)
GEMM_TOKENS = [1 << i for i in range(16)]  # 1 .. 32768
GEMM_HELDOUT = [3, 48, 384, 3072, 24576]
OPS = ["attn_proj", "dense_mlp", "moe", "lm_head"]

QUICK = dict(prefill_cached=[0, 4096, 32768], prefill_new=[128, 2048, 8192], prefill_heldout=[(8192, 1024)],
             decode_batch=[1, 16, 256], decode_ctx=[1024, 8192, 65536], decode_heldout=[(32, 4096)],
             gemm_tokens=[1, 16, 256, 4096, 16384], gemm_heldout=[48, 3072])
CPU_QUICK = dict(prefill_cached=[0, 64], prefill_new=[16, 64], prefill_heldout=[(32, 32)],
                 decode_batch=[1, 4], decode_ctx=[32, 128], decode_heldout=[(2, 64)],
                 gemm_tokens=[1, 4, 16], gemm_heldout=[8])

TOL = {"bf16": 2e-2, "fp8": 1e-1, "fp32": 1e-3}
SCHEMA_COLS = {
    "prefill_attn.csv": ["model", "component", "cached", "new", "split", "seconds"],
    "decode_attn.csv": ["model", "component", "batch", "ctx", "split", "seconds"],
    "gemm.csv": ["model", "op", "dtype", "tokens", "split", "seconds"],
    "moe_ep.csv": ["model", "ep", "dtype", "tokens", "split", "seconds"],
    "timings_raw.csv": ["table", "model", "what", "dtype", "a", "b", "split", "median_s", "q25_s", "q75_s",
                        "reps", "method", "trials", "note"],
}


def shrink(spec: dict, f: int = 16) -> dict:
    """Tiny version of a model (CPU smoke runs): dimensions divided by ``f``, structure kept."""
    s = dict(spec)
    d = lambda v, lo=8: None if v is None else max(lo, int(v) // f)  # noqa: E731
    s["hidden"] = d(spec["hidden"], 32)
    s["vocab"] = d(spec["vocab"], 64)
    s["dense_inter"] = d(spec["dense_inter"], 32)
    s["n_heads"] = max(2, spec["n_heads"] // 8)
    if spec["kind"] == "dsa":
        s.update(q_lora=d(spec["q_lora"], 16), kv_lora=32, rope=8, nope=16, v_dim=16, topk=16,
                 idx_heads=max(2, spec["idx_heads"] // 8), idx_dim=16, moe_inter=d(spec["moe_inter"], 16),
                 n_routed=max(8, spec["n_routed"] // 8), ep_prefill=min(spec["ep_prefill"], 4),
                 ep_decode=min(spec["ep_decode"], 4))
    else:
        s.update(n_heads=10, n_kv_heads=2, head_dim=16)
    return s


def gpu_tag(name: str) -> str:
    n = name.lower()
    for t in ("h200", "h100", "h800", "h20", "a100", "b200", "gb200", "l40s"):
        if t in n:
            return t
    return "".join(c if c.isalnum() else "_" for c in n).strip("_")[:32] or "gpu"


# ----------------------------------------------------------------------------- timing
class Timer:
    def __init__(self, torch, device: str, trials: int = 5, target_s: float = 2e-3, max_reps: int = 100,
                 big_s: float = 0.02):
        self.torch, self.device, self.trials = torch, device, max(5, int(trials))
        self.target_s, self.max_reps, self.big_s = target_s, max_reps, big_s
        self.cuda = device.startswith("cuda")

    def __call__(self, fn):
        """(median, q25, q75, reps, method) seconds per call of ``fn``."""
        if not self.cuda:
            return self._cpu(fn)
        torch = self.torch
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(s):
            fn()
            e0.record(s)
            fn()
            e1.record(s)
        e1.synchronize()
        est = max(e0.elapsed_time(e1) * 1e-3, 1e-7)
        g, method, reps = None, "eager", 1
        if est < self.big_s:
            reps = int(max(1, min(self.max_reps, math.ceil(self.target_s / est))))
            try:
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g, stream=s):
                    for _ in range(reps):
                        fn()
                torch.cuda.synchronize()
                g.replay()  # warm replay
                torch.cuda.synchronize()
                method = "graph"
            except Exception:
                g = None
                torch.cuda.synchronize()
        out = []
        with torch.cuda.stream(s):
            for _ in range(self.trials):
                e0.record(s)
                if g is not None:
                    g.replay()
                else:
                    for _ in range(reps):
                        fn()
                e1.record(s)
                e1.synchronize()
                out.append(e0.elapsed_time(e1) * 1e-3 / reps)
        del g
        return _summary(out) + (reps, method)

    def _cpu(self, fn):
        fn()
        t0 = time.perf_counter()
        fn()
        est = max(time.perf_counter() - t0, 1e-7)
        reps = int(max(1, min(self.max_reps, math.ceil(self.target_s / est))))
        out = []
        for _ in range(self.trials):
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            out.append((time.perf_counter() - t0) / reps)
        return _summary(out) + (reps, "cpu-loop")


def _summary(xs):
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
    return float(statistics.median(xs)), float(q[0]), float(q[2])


# ----------------------------------------------------------------------------- kernels
class Ops:
    """The torch implementations (shared by the timed runs and the float64 checks)."""

    def __init__(self, torch, device: str):
        self.torch, self.dev = torch, device
        self.F = torch.nn.functional
        self.fp8 = None
        self.fp8_note = None
        if not device.startswith("cuda"):
            self.fp8_note = "fp8 skipped: torch._scaled_mm (e4m3) needs a CUDA GPU of compute capability >= 8.9"
        elif not (hasattr(torch, "float8_e4m3fn") and hasattr(torch, "_scaled_mm")):
            self.fp8_note = "fp8 skipped: this torch has no float8_e4m3fn/_scaled_mm"
        elif torch.cuda.get_device_capability(torch.device(device)) < (8, 9):
            self.fp8_note = "fp8 skipped: GPU compute capability < 8.9"
        else:
            self.fp8 = torch.float8_e4m3fn
        self.one = torch.ones((), device=device, dtype=torch.float32)
        self.qwen_prefill_impl = None
        self.qwen_decode_impl = None
        self.idx_fp8 = False

    # ---- linear layers ------------------------------------------------------
    def weight(self, n, k, dtype, scale=0.02):
        w = self.torch.randn(n, k, device=self.dev, dtype=self.torch.bfloat16) * scale
        return w.to(self.fp8) if dtype == "fp8" else w

    def linear(self, x, w, dtype, bias=None):
        """y = x @ w.T; fp8: x cast to e4m3 here (per-tensor scale 1), bf16 out."""
        if dtype == "fp8":
            y = self.torch._scaled_mm(x.to(self.fp8), w.t(), scale_a=self.one, scale_b=self.one,
                                      out_dtype=self.torch.bfloat16)
            return y if bias is None else y + bias
        return self.F.linear(x, w, bias)

    def mlp(self, x, w_gu, w_d, dtype):
        """SwiGLU: gate_up fused weight (2I x H), down (H x I)."""
        gu = self.linear(x, w_gu, dtype)
        i = gu.shape[-1] // 2
        h = self.F.silu(gu[:, :i]) * gu[:, i:]
        return self.linear(h, w_d, dtype)

    # ---- DSA: lightning indexer + sparse MLA (absorbed) ------------------------
    def indexer_scores(self, q, kc, w, cached, r0=0, r1=None):
        """Index scores of queries r0:r1 (masked, [rows, Lp]): sum_h w * relu(q_h . k).

        q: [new, Hi, D] (bf16 or e4m3), kc: [Lp, D] (Lp >= cached+new, padded to 16), w: [new, Hi]."""
        torch = self.torch
        r1 = q.shape[0] if r1 is None else r1
        qc = q[r0:r1]
        c, hi, d = qc.shape
        if qc.dtype == torch.bfloat16 or qc.dtype == torch.float64 or qc.dtype == torch.float32:
            s = torch.matmul(qc.reshape(c * hi, d), kc.t())
        else:  # fp8
            s = torch._scaled_mm(qc.reshape(c * hi, d), kc.t(), scale_a=self.one, scale_b=self.one,
                                 out_dtype=torch.bfloat16)
        s = torch.relu_(s.view(c, hi, -1))
        sc = torch.bmm(w[r0:r1].unsqueeze(1).to(s.dtype), s).squeeze(1)  # [c, Lp]
        pos = cached + torch.arange(r0, r1, device=q.device).unsqueeze(1)
        col = torch.arange(sc.shape[1], device=q.device).unsqueeze(0)
        return sc.masked_fill_(col > pos, float("-inf"))

    def indexer_prefill(self, q, kc, w, cached, topk, idx_out, chunk):
        """Top-k key indices of every query into ``idx_out`` [new, k]."""
        new = q.shape[0]
        k = idx_out.shape[1]
        for r0 in range(0, new, chunk):
            r1 = min(new, r0 + chunk)
            sc = self.indexer_scores(q, kc, w, cached, r0, r1)
            idx_out[r0:r1].copy_(sc.topk(k, dim=-1)[1])
        return idx_out

    def sparse_attn_prefill(self, q, kv, idx, cached, v_dim, scale, out, chunk):
        """q: [new, H, Dk] (latent+rope), kv: [L, Dk], idx: [new, k] -> out [new, H, v_dim]."""
        torch = self.torch
        new, h, dk = q.shape
        k = idx.shape[1]
        for r0 in range(0, new, chunk):
            r1 = min(new, r0 + chunk)
            c = r1 - r0
            ii = idx[r0:r1]
            g = kv.index_select(0, ii.reshape(-1)).view(c, k, dk)
            s = torch.bmm(q[r0:r1], g.transpose(1, 2)).float().mul_(scale)  # [c, H, k]
            pos = cached + torch.arange(r0, r1, device=q.device).unsqueeze(1)
            s.masked_fill_((ii > pos).unsqueeze(1), float("-inf"))
            p = torch.softmax(s, dim=-1).to(q.dtype)
            out[r0:r1].copy_(torch.bmm(p, g[:, :, :v_dim]))
        return out

    def indexer_decode(self, q, kc, w, k):
        """q: [B, Hi, D], kc: [B, C, D], w: [B, Hi] -> top-k indices [B, k] (no mask: one new token)."""
        torch = self.torch
        s = torch.relu_(torch.bmm(q, kc.transpose(1, 2)))  # [B, Hi, C]
        sc = torch.bmm(w.unsqueeze(1).to(s.dtype), s).squeeze(1)
        return sc.topk(k, dim=-1)[1]

    def indexer_decode_scores(self, q, kc, w):
        s = self.torch.relu(self.torch.bmm(q, kc.transpose(1, 2)))
        return self.torch.bmm(w.unsqueeze(1).to(s.dtype), s).squeeze(1)

    def sparse_attn_decode(self, q, kv, idx, v_dim, scale):
        """q: [B, H, Dk], kv: [B, C, Dk], idx: [B, k] -> [B, H, v_dim]."""
        torch = self.torch
        b, c, dk = kv.shape
        g = torch.gather(kv, 1, idx.unsqueeze(-1).expand(-1, -1, dk))  # [B, k, Dk]
        s = torch.bmm(q, g.transpose(1, 2)).float().mul_(scale)
        p = torch.softmax(s, dim=-1).to(q.dtype)
        return torch.bmm(p, g[:, :, :v_dim])

    # ---- GQA (qwen) ----------------------------------------------------------
    def gqa_prefill_candidates(self):
        torch, F = self.torch, self.F
        cands = []
        if self.dev.startswith("cuda"):
            def aten_flash_gqa(q, k, v, scale):
                return torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, True, False, scale=scale)[0]
            cands.append(("aten_flash_gqa_causal", aten_flash_gqa))
        try:
            from torch.nn.attention.bias import causal_lower_right

            def sdpa_lower_right(q, k, v, scale):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(q.shape[2], k.shape[2]),
                                                      scale=scale, enable_gqa=True)
            cands.append(("sdpa_causal_lower_right_gqa", sdpa_lower_right))
        except Exception:  # pragma: no cover - old torch
            pass
        if self.dev.startswith("cuda"):
            def aten_flash_expanded(q, k, v, scale):  # K/V heads repeated inside the timed region
                rep = q.shape[1] // k.shape[1]
                return torch.ops.aten._scaled_dot_product_flash_attention(
                    q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), 0.0, True, False, scale=scale)[0]
            cands.append(("aten_flash_expanded_kv_causal", aten_flash_expanded))
        cands.append(("math", self.gqa_math))
        return cands

    def gqa_decode_candidates(self):
        torch, F = self.torch, self.F
        cands = []
        if self.dev.startswith("cuda"):
            def aten_flash_fold(q, k, v, scale):
                b, hq, _, d = q.shape
                hk = k.shape[1]
                qf = q.reshape(b, hk, hq // hk, d)  # the group's query heads as query positions
                o = torch.ops.aten._scaled_dot_product_flash_attention(qf, k, v, 0.0, False, False, scale=scale)[0]
                return o.reshape(b, hq, 1, d)
            cands.append(("aten_flash_folded_heads", aten_flash_fold))

        def sdpa_gqa(q, k, v, scale):
            return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=True)
        cands.append(("sdpa_gqa", sdpa_gqa))
        cands.append(("math", self.gqa_math))
        return cands

    def gqa_math(self, q, k, v, scale):
        """Explicit lower-right-causal GQA attention (reference algorithm, any dtype)."""
        torch = self.torch
        b, hq, n, d = q.shape
        hk, L = k.shape[1], k.shape[2]
        rep = hq // hk
        kk = k.repeat_interleave(rep, dim=1)
        vv = v.repeat_interleave(rep, dim=1)
        s = torch.matmul(q, kk.transpose(-1, -2)).float() * scale
        pos = (L - n) + torch.arange(n, device=q.device).unsqueeze(1)
        s = s.masked_fill(torch.arange(L, device=q.device).unsqueeze(0) > pos, float("-inf"))
        return torch.matmul(torch.softmax(s, dim=-1).to(v.dtype), vv)


def relerr(torch, out, ref):
    out = out.double()
    ref = ref.double()
    if not bool(torch.isfinite(out).all()):
        return float("nan")
    return float((out - ref).norm() / ref.norm().clamp_min(1e-300))


# ----------------------------------------------------------------------------- checks
def topk_gap(torch, ref, idx, k):
    """Selection error of top-k indices ``idx`` against float64 scores ``ref`` [rows, n]: max over rows
    of (k-th best ref score - worst selected ref score) / max |finite ref| of the row (0 = exact set
    up to ties; rounding of the scores can swap near-ties only, so the gap stays at rounding level)."""
    kth = ref.topk(k, dim=1)[0][:, -1]
    sel = ref.gather(1, idx).min(1)[0]
    fin = torch.where(torch.isfinite(ref), ref.abs(), torch.zeros_like(ref)).amax(1).clamp_min(1e-300)
    gap = torch.where(torch.isneginf(kth), torch.zeros_like(kth), kth - sel)  # rows with < k visible keys
    return float((gap / fin).max())


def topk_sumratio(torch, ref, idx, k):
    """Sum of the selected ref scores / the best possible sum, min over rows (informational: unstable
    when a row's top-k sum is near zero, which signed head weights allow)."""
    return float((ref.gather(1, idx).sum(1) / ref.topk(k, 1)[0].sum(1)).min())


def run_checks(torch, ops: Ops, log) -> dict:
    """Float64 checks at small shapes, fresh random inputs; also picks the GQA implementations."""
    dev = ops.dev
    res = {}
    g = torch.Generator(device="cpu").manual_seed(1234)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dev)

    bf = torch.bfloat16

    def _check_gemm():  # GEMM + MLP, bf16 and fp8
        nonlocal new, cached, hi, d, k, L, Lp, q, kc, w, idx
        for dtype in ["bf16"] + (["fp8"] if ops.fp8 else []):
            M, N, K = 48, 256, 512
            x = rnd(M, K).to(bf)
            w = ops.weight(N, K, dtype, scale=0.05)
            xq = x.to(ops.fp8).double() if dtype == "fp8" else x.double()
            y = torch.full((M, N), float("nan"), device=dev, dtype=bf)
            y.copy_(ops.linear(x, w, dtype))
            res[f"linear_{dtype}"] = relerr(torch, y, xq @ w.double().t())
            wgu = ops.weight(2 * 128, K, dtype, scale=0.05)
            wd = ops.weight(K, 128, dtype, scale=0.05)
            out = ops.mlp(x, wgu, wd, dtype)
            gu = xq @ wgu.double().t()
            h = torch.nn.functional.silu(gu[:, :128]) * gu[:, 128:]
            if dtype == "fp8":
                h = h.to(bf).to(ops.fp8).double()
            res[f"mlp_{dtype}"] = relerr(torch, out, h @ wd.double().t())

    def _check_indexer_prefill():
        nonlocal new, cached, hi, d, k, L, Lp, q, kc, w, idx
        # indexer (prefill): scores vs float64, top-k selection gap
        new, cached, hi, d, k = 48, 80, 8, 64, 32
        L = cached + new
        Lp = (L + 15) // 16 * 16
        q = rnd(new, hi, d).to(bf)
        kc = rnd(Lp, d).to(bf)
        w = rnd(new, hi).float()
        for mode in ["bf16"] + (["fp8"] if ops.fp8 else []):
            qq, kk = (q.to(ops.fp8), kc.to(ops.fp8)) if mode == "fp8" else (q, kc)
            sc = ops.indexer_scores(qq, kk, w, cached)
            ref = torch.einsum("qhd,ld->qhl", qq.double(), kk.double()).clamp_min(0)
            ref = torch.einsum("qh,qhl->ql", w.to(bf).double(), ref)
            mask = torch.arange(Lp, device=dev)[None, :] > (cached + torch.arange(new, device=dev)[:, None])
            ok = ~mask
            e = relerr(torch, sc[ok], ref[ok])
            masked_ok = bool(torch.isneginf(sc[mask]).all())
            idx = torch.empty(new, k, dtype=torch.long, device=dev)
            ops.indexer_prefill(qq, kk, w, cached, k, idx, chunk=16)
            refm = ref.masked_fill(mask, float("-inf"))
            gap = topk_gap(torch, refm, idx, k)
            res[f"indexer_prefill_{mode}"] = e if masked_ok else float("nan")
            res[f"indexer_topk_gap_{mode}"] = gap
            if mode == "fp8" and e < TOL["fp8"] and masked_ok and gap < TOL["bf16"]:
                ops.idx_fp8 = True

    def _check_sparse_attn_prefill():
        nonlocal new, cached, hi, d, k, L, Lp, q, kc, w, idx
        # sparse attention (prefill) vs float64 attention over the selected keys
        h, dk, vd = 16, 96, 64
        qa = rnd(new, h, dk).to(bf)
        kv = rnd(L, dk).to(bf)
        idx = torch.stack([torch.randperm(L, generator=g)[:k] for _ in range(new)]).to(dev)
        out = torch.full((new, h, vd), float("nan"), device=dev, dtype=bf)
        ops.sparse_attn_prefill(qa, kv, idx, cached, vd, dk ** -0.5, out, chunk=16)
        s = torch.einsum("qhd,ld->qhl", qa.double(), kv.double()) * dk ** -0.5
        allow = torch.zeros(new, L, dtype=torch.bool, device=dev)
        allow.scatter_(1, idx, True)
        allow &= torch.arange(L, device=dev)[None, :] <= (cached + torch.arange(new, device=dev)[:, None])
        s = s.masked_fill(~allow[:, None, :], float("-inf"))
        ref = torch.einsum("qhl,ld->qhd", torch.softmax(s, -1), kv.double()[:, :vd])
        res["sparse_attn_prefill"] = relerr(torch, out, ref)

    def _check_decode_dsa():
        nonlocal new, cached, hi, d, k, L, Lp, q, kc, w, idx
        # decode indexer + sparse attention
        h, dk, vd = 16, 96, 64
        B, C = 4, 96
        qd = rnd(B, hi, d).to(bf)
        kcd = rnd(B, C, d).to(bf)
        wd_ = rnd(B, hi).float()
        sc = ops.indexer_decode_scores(qd, kcd, wd_)
        ref = torch.einsum("bhd,bcd->bhc", qd.double(), kcd.double()).clamp_min(0)
        ref = torch.einsum("bh,bhc->bc", wd_.to(bf).double(), ref)
        res["indexer_decode"] = relerr(torch, sc, ref)
        idx = ops.indexer_decode(qd, kcd, wd_, k)
        gaps, ratios = [topk_gap(torch, ref, idx, k)], [topk_sumratio(torch, ref, idx, k)]
        for _ in range(15):  # more draws: the selection check is per element, so sample widely
            q2, k2, w2 = rnd(B, hi, d).to(bf), rnd(B, C, d).to(bf), rnd(B, hi).float()
            r2 = torch.einsum("bh,bhc->bc", w2.to(bf).double(),
                              torch.einsum("bhd,bcd->bhc", q2.double(), k2.double()).clamp_min(0))
            i2 = ops.indexer_decode(q2, k2, w2, k)
            gaps.append(topk_gap(torch, r2, i2, k))
            ratios.append(topk_sumratio(torch, r2, i2, k))
        res["indexer_decode_topk_gap"] = max(gaps)
        res["indexer_decode_topk_sumratio_info"] = min(ratios)
        qa = rnd(B, h, dk).to(bf)
        kvd = rnd(B, C, dk).to(bf)
        o = ops.sparse_attn_decode(qa, kvd, idx, vd, dk ** -0.5)
        g64 = torch.gather(kvd.double(), 1, idx.unsqueeze(-1).expand(-1, -1, dk))
        s = torch.einsum("bhd,bkd->bhk", qa.double(), g64) * dk ** -0.5
        ref = torch.einsum("bhk,bkd->bhd", torch.softmax(s, -1), g64[:, :, :vd])
        res["sparse_attn_decode"] = relerr(torch, o, ref)

    def _check_gqa():
        nonlocal new, cached, hi, d, k, L, Lp, q, kc, w, idx
        # GQA prefill (lower-right causal, cached > 0) and decode: choose the first passing implementation
        hq, hk, hd, n, c0 = 10, 2, 128, 40, 72
        q = rnd(1, hq, n, hd).to(bf)
        kk = rnd(1, hk, c0 + n, hd).to(bf)
        vv = rnd(1, hk, c0 + n, hd).to(bf)
        ref = ops.gqa_math(q.double(), kk.double(), vv.double(), hd ** -0.5)
        for name, fn in ops.gqa_prefill_candidates():
            try:
                e = relerr(torch, fn(q, kk, vv, hd ** -0.5), ref)
            except Exception as ex:
                res[f"gqa_prefill[{name}]"] = f"error: {type(ex).__name__}: {str(ex)[:120]}"
                continue
            res[f"gqa_prefill[{name}]"] = e
            if e < TOL["bf16"]:
                ops.qwen_prefill_impl = (name, fn)
                break
        q = rnd(3, hq, 1, hd).to(bf)
        kk = rnd(3, hk, 130, hd).to(bf)
        vv = rnd(3, hk, 130, hd).to(bf)
        ref = ops.gqa_math(q.double(), kk.double(), vv.double(), hd ** -0.5)
        for name, fn in ops.gqa_decode_candidates():
            try:
                e = relerr(torch, fn(q, kk, vv, hd ** -0.5), ref)
            except Exception as ex:
                res[f"gqa_decode[{name}]"] = f"error: {type(ex).__name__}: {str(ex)[:120]}"
                continue
            res[f"gqa_decode[{name}]"] = e
            if e < TOL["bf16"]:
                ops.qwen_decode_impl = (name, fn)
                break

    new = cached = hi = d = k = L = Lp = 0
    q = kc = w = idx = None
    for nm, f in [("gemm", _check_gemm), ("indexer_prefill", _check_indexer_prefill),
                  ("sparse_attn_prefill", _check_sparse_attn_prefill), ("decode_dsa", _check_decode_dsa),
                  ("gqa", _check_gqa)]:
        try:
            f()
        except Exception as ex:
            res[f"{nm}_error"] = f"{type(ex).__name__}: {str(ex)[:200]}"
            if nm == "gemm" and ops.fp8 is not None:
                ops.fp8 = None
                ops.fp8_note = f"fp8 disabled: its check raised {type(ex).__name__}: {str(ex)[:150]}"
                res[nm + "_retry_bf16"] = "bf16 only"
                try:
                    f()
                except Exception as ex2:
                    res[f"{nm}_error_bf16"] = f"{type(ex2).__name__}: {str(ex2)[:200]}"
    failed = []
    for key, v in res.items():
        if "_error" in key:
            failed.append(key)
        if isinstance(v, str) or "[" in key:
            continue
        if key.endswith("_info"):
            continue
        else:
            tol = TOL["fp8"] if key.endswith("fp8") else TOL["bf16"]
            bad = not (v < tol)
        if bad:
            failed.append(key)
    res["failed"] = failed
    res["qwen_prefill_impl"] = ops.qwen_prefill_impl[0] if ops.qwen_prefill_impl else None
    res["qwen_decode_impl"] = ops.qwen_decode_impl[0] if ops.qwen_decode_impl else None
    res["indexer_prefill_dtype"] = "fp8" if ops.idx_fp8 else "bf16"
    for key, v in res.items():
        log(f"[check] {key}: {v}")
    return res


# ----------------------------------------------------------------------------- writers
class Tables:
    def __init__(self, outdir: str):
        self.outdir = outdir
        os.makedirs(outdir, exist_ok=True)
        self.files = {}
        for name, cols in SCHEMA_COLS.items():
            f = open(os.path.join(outdir, name), "w", newline="")
            wr = csv.writer(f)
            wr.writerow(cols)
            f.flush()
            self.files[name] = (f, wr)
        self.counts = {k: 0 for k in SCHEMA_COLS}

    def add(self, name, row):
        f, wr = self.files[name]
        wr.writerow(["%.6e" % v if isinstance(v, float) else v for v in row])
        f.flush()
        self.counts[name] += 1

    def close(self):
        for f, _ in self.files.values():
            f.close()


# ----------------------------------------------------------------------------- runner
class Runner:
    def __init__(self, torch, device, outdir, quick, trials, deadline_s, log, cpu_tiny):
        self.torch, self.dev, self.quick, self.log = torch, device, quick, log
        self.ops = Ops(torch, device)
        self.timer = Timer(torch, device, trials=trials, target_s=2e-3 if device != "cpu" else 5e-3)
        self.t_start = time.time()
        self.t_end = self.t_start + deadline_s
        self.tables = Tables(outdir)
        self.outdir = outdir
        self.notes = []
        self.skipped = []
        self.errors = []
        self.models = {m: (shrink(s) if cpu_tiny else s) for m, s in MODELS.items()}
        g = CPU_QUICK if cpu_tiny else (QUICK if quick else None)
        self.grid = dict(
            prefill_cached=g["prefill_cached"] if g else PREFILL_CACHED,
            prefill_new=g["prefill_new"] if g else PREFILL_NEW,
            prefill_heldout=g["prefill_heldout"] if g else PREFILL_HELDOUT,
            decode_batch=g["decode_batch"] if g else DECODE_BATCH,
            decode_ctx=g["decode_ctx"] if g else DECODE_CTX,
            decode_heldout=g["decode_heldout"] if g else DECODE_HELDOUT,
            gemm_tokens=g["gemm_tokens"] if g else GEMM_TOKENS,
            gemm_heldout=g["gemm_heldout"] if g else GEMM_HELDOUT,
            decode_max_keys=DECODE_MAX_KEYS,
        )
        self.cpu_tiny = cpu_tiny
        self.l2 = 50 << 20
        if device.startswith("cuda"):
            self.l2 = int(getattr(torch.cuda.get_device_properties(torch.device(device)), "L2_cache_size", self.l2))
        self.chunk_bytes = (2 << 30) if device.startswith("cuda") else (64 << 20)

    # -- helpers
    def _free(self):
        if self.dev.startswith("cuda"):
            self.torch.cuda.synchronize()
            self.torch.cuda.empty_cache()

    def _time(self, fn, table, model, what, dtype, a, b, split, section_end):
        if time.time() > section_end:
            self.skipped.append(f"{table}:{model}:{what}:{dtype}:{a}:{b} (deadline)")
            return None
        try:
            med, q25, q75, reps, method = self.timer(fn)
        except Exception as e:  # OOM or unsupported shape: note and go on
            msg = f"{table} {model} {what} {dtype} a={a} b={b}: {type(e).__name__}: {str(e)[:200]}"
            self.errors.append(msg)
            self.log("[error] " + msg)
            self._free()
            return None
        self.tables.add("timings_raw.csv", [table, model, what, dtype, a, b, split, med, q25, q75, reps, method,
                                            self.timer.trials, ""])
        return med

    def rnd(self, *shape, dtype=None, scale=1.0):
        torch = self.torch
        t = torch.randn(*shape, device=self.dev, dtype=torch.bfloat16)
        if scale != 1.0:
            t.mul_(scale)
        return t if dtype is None else t.to(dtype)

    def section_end(self, share):
        now = time.time()
        return now + share * max(0.0, self.t_end - now)

    # -- GEMM ops
    def build_op(self, m, spec, op, dtype, ep=None):
        """Weights for ``op`` (list of copies) and a function (x_bf16, T, weights) -> None."""
        ops = self.ops
        W = lambda n, k: ops.weight(n, k, dtype)  # noqa: E731
        Wb = lambda n, k: ops.weight(n, k, "bf16")  # noqa: E731
        H = spec["hidden"]
        torch = self.torch
        if op == "lm_head":
            def make():
                return {"w": W(spec["vocab"], H)}

            def run(x, ws):
                ops.linear(x, ws["w"], dtype)
        elif op == "dense_mlp":
            I_ = spec["dense_inter"]

            def make():
                return {"gu": W(2 * I_, H), "d": W(H, I_)}

            def run(x, ws):
                ops.mlp(x, ws["gu"], ws["d"], dtype)
        elif op == "attn_proj" and spec["kind"] == "gqa":
            hq, hk, hd = spec["n_heads"], spec["n_kv_heads"], spec["head_dim"]

            def make():
                return {"qkv": W((hq + 2 * hk) * hd, H),
                        "b": torch.randn((hq + 2 * hk) * hd, device=self.dev, dtype=torch.bfloat16) * 0.02,
                        "o": W(H, hq * hd)}

            def run(x, ws):
                ops.linear(x, ws["qkv"], dtype, bias=ws["b"])
                ops.linear(ws["_xo"], ws["o"], dtype)  # o_proj on the attention output
        elif op == "attn_proj":
            h, ql, kvl, r, nope, vd = (spec["n_heads"], spec["q_lora"], spec["kv_lora"], spec["rope"],
                                       spec["nope"], spec["v_dim"])
            hi, di = spec["idx_heads"], spec["idx_dim"]

            def make():
                d = {"wkv_a": W(kvl + r, H), "o": W(H, h * vd),
                     "uk": (torch.randn(h, nope, kvl, device=self.dev, dtype=torch.bfloat16) * 0.02),
                     "uv": (torch.randn(h, kvl, vd, device=self.dev, dtype=torch.bfloat16) * 0.02),
                     "idx_k": W(di, H), "idx_w": Wb(hi, H)}
                if ql:
                    d["wq_a"] = W(ql, H)
                    d["wq_b"] = W(h * (nope + r), ql)
                    d["idx_q"] = W(hi * di, ql)
                else:
                    d["wq"] = W(h * (nope + r), H)
                    d["idx_q"] = W(hi * di, H)
                return d

            def run(x, ws):
                T = x.shape[0]
                if ql:
                    qr = ops.linear(x, ws["wq_a"], dtype)
                    q = ops.linear(qr, ws["wq_b"], dtype)
                    ops.linear(qr, ws["idx_q"], dtype)
                else:
                    q = ops.linear(x, ws["wq"], dtype)
                    ops.linear(x, ws["idx_q"], dtype)
                ops.linear(x, ws["wkv_a"], dtype)
                ops.linear(x, ws["idx_k"], dtype)
                ops.linear(x, ws["idx_w"], "bf16")
                qn = q.view(T, h, nope + r)[:, :, :nope].transpose(0, 1)  # [h, T, nope]
                torch.bmm(qn, ws["uk"])  # absorb W_UK: [h, T, kv_lora]
                ol = ws["_ol"]  # attention output in latent space [h, T, kv_lora]
                o = torch.bmm(ol, ws["uv"])  # [h, T, v]
                ops.linear(o.transpose(0, 1).reshape(T, h * vd), ws["o"], dtype)
        elif op == "moe":
            n, k, ns, I_ = spec["n_routed"], spec["top_k"], spec["n_shared"], spec["moe_inter"]
            nloc = max(1, n // ep)

            def make():
                return {"gate": Wb(n, H), "sgu": W(2 * ns * I_, H), "sd": W(H, ns * I_),
                        "egu": [W(2 * I_, H) for _ in range(nloc)], "ed": [W(H, I_) for _ in range(nloc)]}

            def run(x, ws):
                logits = ops.linear(x, ws["gate"], "bf16")
                torch.sigmoid(logits.float()).topk(k, dim=-1)
                ops.mlp(x, ws["sgu"], ws["sd"], dtype)
                xe = ws["_xe"]
                for e in range(nloc):
                    ops.mlp(xe, ws["egu"][e], ws["ed"][e], dtype)
        else:
            raise ValueError(op)
        return make, run

    def per_expert_tokens(self, spec, T, ep):
        return max(1, int(round(T * spec["top_k"] * ep / spec["n_routed"])))

    def run_gemm(self, share):
        end = self.section_end(share)
        torch = self.torch
        dtypes = ["bf16"] + (["fp8"] if self.ops.fp8 else [])
        toks = sorted([(t, "train") for t in self.grid["gemm_tokens"]] + [(t, "heldout") for t in self.grid["gemm_heldout"]])
        jobs = []
        for m, spec in self.models.items():
            for op in OPS:
                if op == "moe" and spec["kind"] != "dsa":
                    continue
                eps = [None]
                if op == "moe":
                    eps = sorted({spec["ep_decode"], spec["ep_prefill"]}, key=lambda e: e != spec["ep_decode"])
                for ep in eps:
                    for dt in dtypes:
                        jobs.append((m, spec, op, dt, ep))
        for (m, spec, op, dt, ep) in jobs:
            if time.time() > end:
                self.skipped.append(f"gemm:{m}:{op}:{dt}:ep={ep} (deadline)")
                continue
            make, run = self.build_op(m, spec, op, dt, ep)
            try:
                w0 = make()
            except Exception as e:
                self.errors.append(f"gemm {m} {op} {dt}: weights: {type(e).__name__}: {str(e)[:200]}")
                self._free()
                continue
            nbytes = sum(t.numel() * t.element_size() for t in _tensors(w0))
            ncopies = int(min(4, max(1, math.ceil(4 * self.l2 / max(nbytes, 1))))) if self.dev != "cpu" else 1
            wsets = [w0] + [make() for _ in range(ncopies - 1)]
            for T, split in toks:
                T_eff = T if dt == "bf16" else max(16, (T + 15) // 16 * 16)
                x = self.rnd(T_eff, spec["hidden"])
                extra = {}
                if op == "attn_proj" and spec["kind"] == "gqa":
                    extra["_xo"] = self.rnd(T_eff, spec["n_heads"] * spec["head_dim"])
                if op == "attn_proj" and spec["kind"] == "dsa":
                    extra["_ol"] = self.rnd(spec["n_heads"], T_eff, spec["kv_lora"])
                if op == "moe":
                    me = self.per_expert_tokens(spec, T, ep)
                    if dt == "fp8":
                        me = max(16, (me + 15) // 16 * 16)
                    extra["_xe"] = self.rnd(me, spec["hidden"])
                for ws in wsets:
                    ws.update(extra)
                it = [0]

                def fn(x=x):
                    ws = wsets[it[0] % len(wsets)]
                    it[0] += 1
                    run(x, ws)
                sec = self._time(fn, "gemm", m, op if ep is None else f"moe_ep{ep}", dt, T, ep or 0, split, end)
                if sec is not None:
                    if op != "moe" or ep == spec["ep_decode"]:
                        self.tables.add("gemm.csv", [m, op, dt, T, split, sec])
                    if op == "moe":
                        self.tables.add("moe_ep.csv", [m, ep, dt, T, split, sec])
                del x, extra
                for ws in wsets:
                    for key in [k for k in ws if k.startswith("_")]:
                        del ws[key]
            del wsets, w0
            self._free()
            self.log(f"[gemm] {m} {op} {dt}{'' if ep is None else f' ep{ep}'} done ({time.time() - self.t_start:.0f} s)")

    # -- attention
    def run_decode(self, share):
        end = self.section_end(share)
        torch = self.torch
        pts = [(b, c, "train") for b in self.grid["decode_batch"] for c in self.grid["decode_ctx"]]
        pts += [(b, c, "heldout") for (b, c) in self.grid["decode_heldout"]]
        cap = self.grid["decode_max_keys"]
        skipped_cap = [(b, c) for b, c, _ in pts if b * c > cap]
        if skipped_cap:
            self.notes.append(f"decode points with batch*ctx > {cap} not measured (beyond any model's per-GPU KV "
                              f"capacity): {skipped_cap}")
        pts = sorted([p for p in pts if p[0] * p[1] <= cap], key=lambda p: (p[0] * p[1], p[0]))
        for (B, C, split) in pts:
            for m, spec in self.models.items():
                if time.time() > end:
                    self.skipped.append(f"decode:{m}:{B}:{C} (deadline)")
                    continue
                try:
                    self._decode_point(m, spec, B, C, split, end)
                except Exception as e:
                    self.errors.append(f"decode {m} B={B} C={C}: {type(e).__name__}: {str(e)[:200]}")
                self._free()
            self.log(f"[decode] B={B} ctx={C} {split} done ({time.time() - self.t_start:.0f} s)")

    def _decode_point(self, m, spec, B, C, split, end):
        torch, ops = self.torch, self.ops
        if spec["kind"] == "dsa":
            h, dk, vd = spec["n_heads"], spec["kv_lora"] + spec["rope"], spec["kv_lora"]
            hi, di, k = spec["idx_heads"], spec["idx_dim"], min(spec["topk"], C)
            q_i = self.rnd(B, hi, di)
            kc = self.rnd(B, C, di)
            w = torch.randn(B, hi, device=self.dev)
            sec = self._time(lambda: ops.indexer_decode(q_i, kc, w, k), "decode_attn", m, "indexer", "bf16", B, C,
                             split, end)
            if sec is not None:
                self.tables.add("decode_attn.csv", [m, "indexer", B, C, split, sec])
            idx = ops.indexer_decode(q_i, kc, w, k)
            del q_i, kc
            q = self.rnd(B, h, dk)
            kv = self.rnd(B, C, dk)
            sc = dk ** -0.5
            sec = self._time(lambda: ops.sparse_attn_decode(q, kv, idx, vd, sc), "decode_attn", m, "attn", "bf16",
                             B, C, split, end)
            if sec is not None:
                self.tables.add("decode_attn.csv", [m, "attn", B, C, split, sec])
        else:
            if not ops.qwen_decode_impl:
                return
            hq, hk, hd = spec["n_heads"], spec["n_kv_heads"], spec["head_dim"]
            q = self.rnd(B, hq, 1, hd)
            kk = self.rnd(B, hk, C, hd)
            vv = self.rnd(B, hk, C, hd)
            fn = ops.qwen_decode_impl[1]
            sc = hd ** -0.5
            sec = self._time(lambda: fn(q, kk, vv, sc), "decode_attn", m, "attn", "bf16", B, C, split, end)
            if sec is not None:
                self.tables.add("decode_attn.csv", [m, "attn", B, C, split, sec])

    def run_prefill(self, share):
        end = self.section_end(share)
        pts = [(c, n, "train") for c in self.grid["prefill_cached"] for n in self.grid["prefill_new"]]
        pts += [(c, n, "heldout") for (c, n) in self.grid["prefill_heldout"]]
        pts = sorted(pts, key=lambda p: (p[1] * (p[0] + p[1]), p[1]))
        for (c, n, split) in pts:
            for m, spec in self.models.items():
                if time.time() > end:
                    self.skipped.append(f"prefill:{m}:{c}:{n} (deadline)")
                    continue
                try:
                    self._prefill_point(m, spec, c, n, split, end)
                except Exception as e:
                    self.errors.append(f"prefill {m} cached={c} new={n}: {type(e).__name__}: {str(e)[:200]}")
                self._free()
            self.log(f"[prefill] cached={c} new={n} {split} done ({time.time() - self.t_start:.0f} s)")

    def _prefill_point(self, m, spec, c, n, split, end):
        torch, ops = self.torch, self.ops
        L = c + n
        if spec["kind"] == "dsa":
            h, dk, vd = spec["n_heads"], spec["kv_lora"] + spec["rope"], spec["kv_lora"]
            hi, di, k = spec["idx_heads"], spec["idx_dim"], min(spec["topk"], L)
            Lp = (L + 15) // 16 * 16
            fp8 = ops.idx_fp8
            dt = ops.fp8 if fp8 else None
            q_i = self.rnd(n, hi, di, dtype=dt)
            kc = self.rnd(Lp, di, dtype=dt)
            w = torch.randn(n, hi, device=self.dev)
            idx = torch.empty(n, k, dtype=torch.long, device=self.dev)
            chunk = int(max(1, min(n, self.chunk_bytes // (hi * Lp * 2 * 2))))
            sec = self._time(lambda: ops.indexer_prefill(q_i, kc, w, c, k, idx, chunk), "prefill_attn", m,
                             "indexer", "fp8" if fp8 else "bf16", c, n, split, end)
            if sec is not None:
                self.tables.add("prefill_attn.csv", [m, "indexer", c, n, split, sec])
            ops.indexer_prefill(q_i, kc, w, c, k, idx, chunk)
            del q_i, kc
            q = self.rnd(n, h, dk)
            kv = self.rnd(L, dk)
            out = torch.empty(n, h, vd, device=self.dev, dtype=torch.bfloat16)
            chunk = int(max(1, min(n, self.chunk_bytes // (k * (dk * 2 * 2 + h * 12)))))
            sc = dk ** -0.5
            sec = self._time(lambda: ops.sparse_attn_prefill(q, kv, idx, c, vd, sc, out, chunk), "prefill_attn", m,
                             "attn", "bf16", c, n, split, end)
            if sec is not None:
                self.tables.add("prefill_attn.csv", [m, "attn", c, n, split, sec])
        else:
            if not ops.qwen_prefill_impl:
                return
            hq, hk, hd = spec["n_heads"], spec["n_kv_heads"], spec["head_dim"]
            q = self.rnd(1, hq, n, hd)
            kk = self.rnd(1, hk, L, hd)
            vv = self.rnd(1, hk, L, hd)
            fn = ops.qwen_prefill_impl[1]
            sc = hd ** -0.5
            sec = self._time(lambda: fn(q, kk, vv, sc), "prefill_attn", m, "attn", "bf16", c, n, split, end)
            if sec is not None:
                self.tables.add("prefill_attn.csv", [m, "attn", c, n, split, sec])


def _tensors(d):
    for v in d.values():
        if isinstance(v, list):
            yield from v
        elif hasattr(v, "numel"):
            yield v


def _hbm_and_matmul_ceiling(torch, dev, timer):
    """The two ceilings of METHOD.md: a 1 GiB device copy and an 8192^3 bf16 matmul (random data)."""
    out = {}
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device=dev).random_(0, 255)
    b = torch.empty_like(a)
    med = timer(lambda: b.copy_(a))[0]
    out["hbm_copy_GBps_read_plus_write"] = 2 * n / med / 1e9
    del a, b
    x = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    y = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    med = timer(lambda: x @ y)[0]
    out["bf16_matmul_8192_TFLOPs"] = 2 * 8192 ** 3 / med / 1e12
    if hasattr(torch, "_scaled_mm") and torch.cuda.get_device_capability() >= (8, 9):
        one = torch.ones((), device=dev)
        x8, y8 = x.to(torch.float8_e4m3fn), y.to(torch.float8_e4m3fn)
        med = timer(lambda: torch._scaled_mm(x8, y8.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16))[0]
        out["fp8_matmul_8192_TFLOPs"] = 2 * 8192 ** 3 / med / 1e12
    del x, y
    torch.cuda.empty_cache()
    return out


def run_layers(out: str, quick: bool = False, device: str = "cuda", deadline_s: float = 480.0, trials: int = 5,
               sections: str = "gemm,decode,prefill", log=print) -> dict:
    """Measure and write the tables under ``out/<gpu_tag>/``; returns the meta dict."""
    import torch

    t0 = time.time()
    if device == "cuda" or device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("no CUDA GPU visible to torch (use --device cpu for the CPU smoke path)")
        dev = device if ":" in device else "cuda:0"
        torch.cuda.set_device(torch.device(dev))
        name = torch.cuda.get_device_name(torch.device(dev))
        tag = gpu_tag(name)
    else:
        dev, name, tag = "cpu", platform.processor() or "cpu", "cpu"
    cpu_tiny = dev == "cpu"
    torch.manual_seed(0)
    outdir = os.path.join(out, tag)
    r = Runner(torch, dev, outdir, quick, trials, deadline_s, log, cpu_tiny)
    meta = {"device": name, "gpu_tag": tag, "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": sys.version.split()[0], "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "host": platform.node(), "quick": quick, "cpu_tiny_dims": cpu_tiny,
            "timing": ("warm-up; ops < 20 ms: CUDA graph of R reps (~2 ms), else eager 1 rep; CUDA events; "
                       f"median of {r.timer.trials} trials" if dev != "cpu" else
                       f"perf_counter loop, median of {r.timer.trials} trials"),
            "trials": r.timer.trials, "deadline_s": deadline_s,
            "grids": {k: v for k, v in r.grid.items()},
            "models": r.models,
            "moe_ep_in_gemm_csv": {m: s.get("ep_decode") for m, s in r.models.items() if s["kind"] == "dsa"},
            "moe_tokens_per_expert": "round(tokens * top_k * EP / n_routed) (fp8: padded to 16); local experts = n_routed // EP",
            "fp8_note": r.ops.fp8_note, "notes": r.notes, "skipped": r.skipped, "errors": r.errors}
    if cpu_tiny:
        r.notes.append("cpu smoke run: model dimensions shrunk (shrink(spec, 16)); numbers are not GPU timings")
    if r.ops.fp8_note:
        r.notes.append(r.ops.fp8_note)

    def dump():
        meta["table_rows"] = dict(r.tables.counts)
        meta["elapsed_s"] = time.time() - t0
        with open(os.path.join(outdir, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1, default=str)

    meta["checks"] = run_checks(torch, r.ops, log)
    meta["fp8_note"] = r.ops.fp8_note
    if r.ops.fp8_note and r.ops.fp8_note not in r.notes:
        r.notes.append(r.ops.fp8_note)
    meta["implementations"] = {
        "qwen_prefill_attn": meta["checks"].get("qwen_prefill_impl"),
        "qwen_decode_attn": meta["checks"].get("qwen_decode_impl"),
        "dsa_indexer_prefill_scores": meta["checks"].get("indexer_prefill_dtype"),
        "dsa_indexer_decode_scores": "bf16",
        "dsa_sparse_attn": "bf16 gather + bmm + fp32 softmax + bmm (torch; not FlashMLA)",
        "gemm_fp8": "torch._scaled_mm e4m3 x e4m3 -> bf16, per-tensor scales" if r.ops.fp8 else None,
    }
    if meta["checks"]["failed"]:
        r.notes.append(f"numerics checks FAILED: {meta['checks']['failed']} (timings of those ops are suspect)")
    dump()
    if dev != "cpu":
        try:
            meta["ceilings"] = _hbm_and_matmul_ceiling(torch, dev, r.timer)
            log(f"[ceilings] {meta['ceilings']}")
        except Exception as e:
            r.errors.append(f"ceilings: {type(e).__name__}: {str(e)[:200]}")
        dump()
    secs = [s for s in sections.split(",") if s]
    shares = {"gemm": 0.25, "decode": 0.3, "prefill": 1.0}
    for i, s in enumerate(secs):
        share = 1.0 if i == len(secs) - 1 else shares[s]
        getattr(r, f"run_{s}")(share)
        dump()
    r.tables.close()
    dump()
    log(f"[layers] rows: {r.tables.counts}; skipped {len(r.skipped)}; errors {len(r.errors)}; "
        f"{time.time() - t0:.0f} s -> {outdir}")
    return meta


def add_args(ap):
    ap.add_argument("--out", required=True, help="output root; tables go to OUT/<gpu_tag>/")
    ap.add_argument("--quick", action="store_true", help="small grids")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu: tiny dims, no fp8)")
    ap.add_argument("--deadline-s", type=float, default=480.0, help="wall-clock budget of the whole run")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--sections", default="gemm,decode,prefill")
    return ap


def main(argv=None) -> int:
    ap = add_args(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    a = ap.parse_args(argv)
    meta = run_layers(a.out, quick=a.quick, device=a.device, deadline_s=a.deadline_s, trials=a.trials,
                      sections=a.sections, log=lambda s: print(s, flush=True))
    return 1 if meta["checks"]["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
