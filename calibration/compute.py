"""Compute calibration on a GPU (PyTorch): GEMMs and attention.

Measured (``python -m dpsim.calibration compute --out DIR``):

* GEMM ``y = x @ W.T`` (a linear layer) for token counts M = 1..16384 and
  three weight shapes, in bf16 and (where ``torch._scaled_mm`` runs) fp8
  e4m3 with bf16 output.  Several weight copies are rotated when a weight
  would fit in L2, so small-M runs stream weights from HBM as decode does.
* Attention: FlashAttention forward (``aten._scaled_dot_product_flash_attention``
  with causal=True, which FlashAttention aligns lower-right -- the prefix-cache
  case: ``new`` queries attend to ``cached + new`` keys) over a grid of
  (cached, new), bf16, ``heads`` x ``head_dim``.
* HBM copy bandwidth (one large device-to-device copy).

Each point: warm-up, then a CUDA graph of R repetitions (plain loop if
capture fails) timed with CUDA events, 5 trials, median.

Fitted (``fit_compute``):

* GEMM roofline ``t = overhead + max(2MNK / flops_per_s, bytes / mem_Bps)``
  per dtype (Nelder-Mead on log-parameters, relative error); held out:
  M in {48, 384, 3072}.
* Attention ``t = a + b*F + c*new + d*KV`` with ``F = 4*heads*head_dim*new*
  (cached + new/2)`` FLOPs and ``KV = 4*heads*head_dim*(cached + new)`` bytes
  of K and V read (non-negative least squares on relative error); held out:
  cached = 8192 and new = 512.
* decode: weight-streaming bandwidth (= the GEMM fit's ``mem_Bps``) and
  per-launch overhead, plus the raw HBM copy bandwidth.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from ..hw.base import TransportUnavailable

from .numerics import nelder_mead, nnls, score

GEMM_SHAPES = [(5120, 5120), (27648, 5120), (5120, 27648)]  # (N, K): Qwen2.5-32B o_proj, up, down
GEMM_M_TRAIN = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
GEMM_M_HELDOUT = [48, 384, 3072]
ATT_CACHED = [0, 1024, 4096, 16384, 32768, 65536]
ATT_NEW = [1, 16, 64, 256, 1024, 4096, 8192]
ATT_HELDOUT = [(8192, 1), (8192, 64), (8192, 512), (8192, 2048), (1024, 512), (32768, 512), (0, 512)]


def _need_torch():
    try:
        import torch
    except ImportError:
        raise TransportUnavailable("compute", "PyTorch is not installed",
                                   "pip install dpsim-dualpath[torch] on a machine with an NVIDIA GPU") from None
    if not torch.cuda.is_available():
        raise TransportUnavailable("compute", "no CUDA GPU visible to PyTorch",
                                   "run on a machine with an NVIDIA GPU and a CUDA build of torch")
    return torch


def _bench(torch, fn, target_s=2e-3, trials=5, max_reps=200):
    """(median, q25, q75, reps, method) GPU seconds per call of ``fn``, graph-replayed when
    possible: the one CUDA timing loop of the calibration package, :class:`calibration.layers.Timer`
    (any size may be graph-captured here: ``big_s`` infinite)."""
    from .layers import Timer

    dev = f"cuda:{torch.cuda.current_device()}"
    return Timer(torch, dev, trials=trials, target_s=target_s, max_reps=max_reps, big_s=math.inf)(fn)


def run_compute(quick: bool = False, device: int = 0, heads: int = 32, head_dim: int = 128, log=print) -> tuple[pd.DataFrame, dict]:
    torch = _need_torch()
    torch.cuda.set_device(device)
    dev = f"cuda:{device}"
    torch.manual_seed(0)
    rows = []
    meta = {"gpu": torch.cuda.get_device_name(device), "torch": torch.__version__,
            "cuda_runtime": torch.version.cuda, "heads": heads, "head_dim": head_dim}
    l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 << 20)
    ms = GEMM_M_TRAIN + GEMM_M_HELDOUT
    shapes = GEMM_SHAPES
    if quick:
        ms = [1, 16, 48, 256, 384, 2048, 3072, 8192]
        shapes = GEMM_SHAPES[:2]
    t0 = time.perf_counter()
    # ---------------------------------------------------------------- GEMMs
    fp8_ok = hasattr(torch, "float8_e4m3fn") and hasattr(torch, "_scaled_mm")
    for dtype in ("bf16", "fp8"):
        if dtype == "fp8" and not fp8_ok:
            meta["fp8_note"] = "torch has no float8_e4m3fn/_scaled_mm"
            continue
        for (N, K) in shapes:
            elt = 2 if dtype == "bf16" else 1
            wbytes = N * K * elt
            ncopies = int(min(4, max(1, math.ceil(4 * l2 / wbytes))))
            Ws = [torch.randn(N, K, device=dev, dtype=torch.bfloat16) * 0.02 for _ in range(ncopies)]
            if dtype == "fp8":
                Ws = [w.to(torch.float8_e4m3fn) for w in Ws]
                one = torch.ones((), device=dev, dtype=torch.float32)
            for M in ms:
                M_eff = M if dtype == "bf16" else max(16, int(math.ceil(M / 16) * 16))
                x = torch.randn(M_eff, K, device=dev, dtype=torch.bfloat16)
                if dtype == "fp8":
                    x = x.to(torch.float8_e4m3fn)
                it = [0]

                if dtype == "bf16":
                    def fn(x=x):
                        w = Ws[it[0] % ncopies]
                        it[0] += 1
                        return torch.nn.functional.linear(x, w)
                else:
                    def fn(x=x):
                        w = Ws[it[0] % ncopies]
                        it[0] += 1
                        return torch._scaled_mm(x, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
                try:
                    med, q25, q75, reps, method = _bench(torch, fn)
                except Exception as e:  # e.g. fp8 unsupported for this shape
                    meta.setdefault("errors", []).append(f"gemm {dtype} M={M} N={N} K={K}: {e!r}"[:300])
                    continue
                rows.append(dict(op="gemm", dtype=dtype, M=M, M_eff=M_eff, N=N, K=K, cached=0, new=0,
                                 heads=0, head_dim=0, median_s=med, q25_s=q25, q75_s=q75, reps=reps,
                                 method=method, flops=2.0 * M_eff * N * K,
                                 bytes=float((M_eff * K + N * K) * elt + M_eff * N * 2),
                                 split="heldout" if M in GEMM_M_HELDOUT else "train"))
                del x
            del Ws
            torch.cuda.empty_cache()
        if log:
            log(f"[compute] gemm {dtype} done ({time.perf_counter() - t0:.1f} s)")
    # ------------------------------------------------------------ attention
    cached_l = ATT_CACHED if not quick else [0, 4096, 32768]
    new_l = ATT_NEW if not quick else [1, 64, 1024, 4096]
    grid = [(c, n, "train") for c in cached_l for n in new_l]
    grid += [(c, n, "heldout") for (c, n) in ATT_HELDOUT]
    backend = "flash"
    for c, n, split in grid:
        L = c + n
        q = torch.randn(1, heads, n, head_dim, device=dev, dtype=torch.bfloat16)
        k = torch.randn(1, heads, L, head_dim, device=dev, dtype=torch.bfloat16)
        v = torch.randn(1, heads, L, head_dim, device=dev, dtype=torch.bfloat16)
        scale = 1.0 / math.sqrt(head_dim)

        def fn(q=q, k=k, v=v):
            return torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, True, False, scale=scale)[0]
        try:
            med, q25, q75, reps, method = _bench(torch, fn)
        except Exception as e:
            meta.setdefault("errors", []).append(f"attention cached={c} new={n}: {e!r}"[:300])
            continue
        rows.append(dict(op="attention", dtype="bf16", M=0, M_eff=0, N=0, K=0, cached=c, new=n, heads=heads,
                         head_dim=head_dim, median_s=med, q25_s=q25, q75_s=q75, reps=reps, method=method,
                         flops=4.0 * heads * head_dim * n * (c + n / 2.0),
                         bytes=4.0 * heads * head_dim * (c + n), split=split))
        del q, k, v
    meta["attention_backend"] = backend
    if log:
        log(f"[compute] attention done ({time.perf_counter() - t0:.1f} s)")
    # ------------------------------------------------------------------ HBM
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device=dev).random_(0, 255)
    b = torch.empty_like(a)
    med, q25, q75, reps, method = _bench(torch, lambda: b.copy_(a), target_s=5e-3, max_reps=10)
    rows.append(dict(op="hbm_copy", dtype="u8", M=0, M_eff=0, N=0, K=0, cached=0, new=0, heads=0, head_dim=0,
                     median_s=med, q25_s=q25, q75_s=q75, reps=reps, method=method, flops=0.0, bytes=float(n),
                     split="train"))
    del a, b
    torch.cuda.empty_cache()
    meta["seconds"] = time.perf_counter() - t0
    return pd.DataFrame(rows), meta


# --------------------------------------------------------------------- fits


def _gemm_pred(params, flops, nbytes):
    c0, F, B = params
    return c0 + np.maximum(flops / F, nbytes / B)


def fit_gemm(df: pd.DataFrame) -> dict:
    tr = df[df["split"] == "train"]
    ho = df[df["split"] == "heldout"]
    f, b, t = tr["flops"].to_numpy(), tr["bytes"].to_numpy(), tr["median_s"].to_numpy()
    x0 = np.log([max(t.min() * 0.5, 1e-7), (f / t).max(), (b / t).max()])

    def loss(lx):
        p = np.exp(lx)
        return float(np.mean(((_gemm_pred(p, f, b) - t) / t) ** 2))

    best = None
    for s in (0.3, 1.0):
        lx, v = nelder_mead(loss, x0, step=s, iters=2000)
        if best is None or v < best[1]:
            best = (lx, v)
    c0, F, B = (float(v) for v in np.exp(best[0]))
    s_ho = score(_gemm_pred((c0, F, B), ho["flops"].to_numpy(), ho["bytes"].to_numpy()), ho["median_s"]) if len(ho) else score([], [])
    s_tr = score(_gemm_pred((c0, F, B), f, b), t)
    big = df[(df["N"] == df["N"].max())].sort_values("M")
    table = [{"M": int(r.M), "N": int(r.N), "K": int(r.K), "tflops": float(r.flops / r.median_s / 1e12),
              "seconds": float(r.median_s)} for r in big.itertuples()]
    return {"overhead_s": c0, "flops_per_s": F, "mem_Bps": B,
            "formula": "overhead_s + max(2*M*N*K / flops_per_s, ((M*K + N*K)*elt + 2*M*N) / mem_Bps)",
            "fit": {"mape": s_ho["mape"], "max_err": s_ho["max_err"], "train_mape": s_tr["mape"],
                    "train_max_err": s_tr["max_err"], "n_train": int(len(tr)), "n_heldout": int(len(ho)),
                    "heldout": f"M in {sorted(set(int(m) for m in ho['M']))}",
                    "residuals_train": [float(v) for v in (_gemm_pred((c0, F, B), f, b) - t) / t]},
            "shapes_NK": sorted({(int(r.N), int(r.K)) for r in df.itertuples()}),
            "throughput_vs_tokens": table}


def _att_features(df):
    return np.stack([np.ones(len(df)), df["flops"].to_numpy(), df["new"].to_numpy(float),
                     df["bytes"].to_numpy()], axis=1)


def fit_attention(df: pd.DataFrame, meta: dict) -> dict:
    tr = df[df["split"] == "train"]
    ho = df[df["split"] == "heldout"]
    X = _att_features(tr)
    t = tr["median_s"].to_numpy()
    colscale = X.max(axis=0)
    colscale[colscale == 0] = 1
    coef = nnls((X / colscale) / t[:, None], np.ones_like(t)) / colscale
    pred_tr = X @ coef
    s_tr = score(pred_tr, t)
    s_ho = score(_att_features(ho) @ coef, ho["median_s"]) if len(ho) else score([], [])
    return {"backend": meta.get("attention_backend", "flash"), "dtype": "bf16",
            "heads": int(tr["heads"].iloc[0]), "head_dim": int(tr["head_dim"].iloc[0]),
            "a_s": float(coef[0]), "b_s_per_flop": float(coef[1]), "c_s_per_new_token": float(coef[2]),
            "d_s_per_kv_byte": float(coef[3]),
            "formula": ("a_s + b_s_per_flop*4*heads*head_dim*new*(cached+new/2) + c_s_per_new_token*new "
                        "+ d_s_per_kv_byte*4*heads*head_dim*(cached+new)"),
            "effective_tflops": float(1 / coef[1] / 1e12) if coef[1] > 0 else None,
            "effective_kv_GBps": float(1 / coef[3] / 1e9) if coef[3] > 0 else None,
            "fit": {"mape": s_ho["mape"], "max_err": s_ho["max_err"], "train_mape": s_tr["mape"],
                    "train_max_err": s_tr["max_err"], "n_train": int(len(tr)), "n_heldout": int(len(ho)),
                    "residuals_train": [float(v) for v in (pred_tr - t) / t]}}


def fit_compute(df: pd.DataFrame, meta: dict | None = None) -> tuple[dict, pd.DataFrame]:
    meta = dict(meta or {})
    out: dict = {"meta": {k: meta.get(k) for k in ("gpu", "torch", "cuda_runtime", "date", "host") if k in meta}}
    g = df[df["op"] == "gemm"]
    if not g.empty:
        out["gemm"] = {dt: fit_gemm(gg) for dt, gg in g.groupby("dtype") if len(gg[gg["split"] == "train"]) >= 3}
    a = df[df["op"] == "attention"]
    if len(a[a["split"] == "train"]) >= 4:
        out["attention"] = fit_attention(a, meta)
    h = df[df["op"] == "hbm_copy"]
    dec = {}
    if not h.empty:
        dec["hbm_copy_Bps"] = float((h["bytes"] / h["median_s"]).median())
        dec["hbm_copy_note"] = "bytes copied / time (each byte read once and written once)"
    if "gemm" in out and "bf16" in out["gemm"]:
        dec["weight_stream_Bps"] = out["gemm"]["bf16"]["mem_Bps"]
        dec["step_overhead_s"] = out["gemm"]["bf16"]["overhead_s"]
        dec["formula"] = "decode step ~ n_kernels*step_overhead_s + (weight bytes + KV bytes) / weight_stream_Bps"
    if dec:
        out["decode"] = dec
    # prediction table for plots
    rows = []
    for r in df.itertuples():
        if r.op == "gemm" and "gemm" in out and r.dtype in out["gemm"]:
            gg = out["gemm"][r.dtype]
            p = float(_gemm_pred((gg["overhead_s"], gg["flops_per_s"], gg["mem_Bps"]), r.flops, r.bytes))
        elif r.op == "attention" and "attention" in out:
            at = out["attention"]
            p = at["a_s"] + at["b_s_per_flop"] * r.flops + at["c_s_per_new_token"] * r.new + at["d_s_per_kv_byte"] * r.bytes
        else:
            continue
        rows.append({"op": r.op, "dtype": r.dtype, "M": r.M, "N": r.N, "K": r.K, "cached": r.cached, "new": r.new,
                     "split": r.split, "measured_s": r.median_s, "predicted_s": p,
                     "rel_err": abs(p - r.median_s) / r.median_s})
    return out, pd.DataFrame(rows)
