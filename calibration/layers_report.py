"""Report on the per-layer compute tables (``calibration/profiles/compute_tables/<gpu_tag>/``).

    python -m dpsim.calibration.layers_report [TABLES_DIR] [--out calibration/reports/compute_tables]

Per op: how time grows with context / new tokens / batch / tokens (slopes), and for the held-out
points the error of log-log linear interpolation from the training grid (median and max), plus
figures.  The interpolation helpers (``interp1_loglog``, ``interp2_loglog``, ``heldout_errors``)
are the reference for whoever builds lookup tables from these files.

Axes: prefill ``cached`` is interpolated on log(cached + CACHED_OFFSET) (cached = 0 is on the grid),
every other axis on log(x); the value on log(seconds).  2-D: bilinear in those coordinates inside
the grid cell holding the point (no extrapolation: points outside the grid, or whose cell misses a
corner, are reported as not interpolable).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import pandas as pd

CACHED_OFFSET = 1024.0
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TABLES = os.path.join(HERE, "profiles", "compute_tables")
DEFAULT_OUT = os.path.join(HERE, "reports", "compute_tables")


# ----------------------------------------------------------------------------- interpolation
def _bracket(grid, x):
    """Indices (i, i+1) of the grid interval holding x (grid ascending), or None outside."""
    g = np.asarray(grid, float)
    if len(g) == 0 or x < g[0] - 1e-12 or x > g[-1] + 1e-12:
        return None
    if len(g) == 1:
        return (0, 0)
    i = int(np.searchsorted(g, x, side="right") - 1)
    i = min(max(i, 0), len(g) - 2)
    return (i, i + 1)


def interp1_loglog(xs, ys, x, offset=0.0):
    """Piecewise-linear interpolation of log(y) on log(x + offset); nan outside the grid."""
    xs = np.asarray(xs, float)
    ys = np.asarray(ys, float)
    o = np.argsort(xs)
    xs, ys = xs[o], ys[o]
    u = np.log(xs + offset)
    b = _bracket(u, math.log(x + offset))
    if b is None:
        return float("nan")
    i, j = b
    if i == j:
        return float(ys[i])
    t = (math.log(x + offset) - u[i]) / (u[j] - u[i])
    return float(math.exp((1 - t) * math.log(ys[i]) + t * math.log(ys[j])))


def interp2_loglog(points: dict, a, b, off_a=0.0, off_b=0.0):
    """Bilinear interpolation of log(value) on (log(a + off_a), log(b + off_b)).

    ``points``: {(a_i, b_j): value} on a (possibly incomplete) rectangular grid.  nan when the point
    lies outside the grid or a corner of its cell is missing."""
    A = sorted({k[0] for k in points})
    B = sorted({k[1] for k in points})
    ua = np.log(np.asarray(A, float) + off_a)
    ub = np.log(np.asarray(B, float) + off_b)
    xa, xb = math.log(a + off_a), math.log(b + off_b)
    ba, bb = _bracket(ua, xa), _bracket(ub, xb)
    if ba is None or bb is None:
        return float("nan")
    corners = [(A[i], B[j]) for i in ba for j in bb]
    if any(c not in points or not (points[c] > 0) for c in corners):
        return float("nan")
    ta = 0.0 if ba[0] == ba[1] else (xa - ua[ba[0]]) / (ua[ba[1]] - ua[ba[0]])
    tb = 0.0 if bb[0] == bb[1] else (xb - ub[bb[0]]) / (ub[bb[1]] - ub[bb[0]])
    l = lambda i, j: math.log(points[(A[i], B[j])])  # noqa: E731,E741
    v = ((1 - ta) * (1 - tb) * l(ba[0], bb[0]) + ta * (1 - tb) * l(ba[1], bb[0])
         + (1 - ta) * tb * l(ba[0], bb[1]) + ta * tb * l(ba[1], bb[1]))
    return float(math.exp(v))


def heldout_errors(df: pd.DataFrame, keys, axes, offsets=None) -> pd.DataFrame:
    """Relative error of log-log interpolation at every held-out row.

    ``keys``: columns identifying one curve/surface (e.g. model, component); ``axes``: one or two
    grid columns; ``offsets``: per-axis offsets (default 0)."""
    offsets = offsets or [0.0] * len(axes)
    rows = []
    for kv, g in df.groupby(list(keys)):
        kv = kv if isinstance(kv, tuple) else (kv,)
        tr = g[g["split"] == "train"]
        for r in g[g["split"] == "heldout"].itertuples(index=False):
            r = r._asdict()
            if len(axes) == 1:
                pred = interp1_loglog(tr[axes[0]], tr["seconds"], r[axes[0]], offsets[0])
            else:
                pts = {(a, b): s for a, b, s in zip(tr[axes[0]], tr[axes[1]], tr["seconds"])}
                pred = interp2_loglog(pts, r[axes[0]], r[axes[1]], offsets[0], offsets[1])
            rows.append({**dict(zip(keys, kv)), **{a: r[a] for a in axes}, "measured_s": r["seconds"],
                         "interp_s": pred, "rel_err": abs(pred - r["seconds"]) / r["seconds"]})
    return pd.DataFrame(rows)


def summarize_errors(err: pd.DataFrame, keys) -> pd.DataFrame:
    if err.empty:
        return err
    ok = err[np.isfinite(err["rel_err"])]
    g = ok.groupby(list(keys))["rel_err"]
    out = pd.DataFrame({"n": g.size(), "median_err": g.median(), "max_err": g.max()}).reset_index()
    return out


# ----------------------------------------------------------------------------- slopes
def _flops_per_token(model: str, op: str, spec: dict) -> float:
    H = spec["hidden"]
    if op == "lm_head":
        return 2.0 * H * spec["vocab"]
    if op == "dense_mlp":
        return 2.0 * 3 * H * spec["dense_inter"]
    if op == "moe":
        return 2.0 * (3 * H * spec["moe_inter"] * (spec["top_k"] + spec["n_shared"]) + H * spec["n_routed"])
    if op == "attn_proj":
        if spec["kind"] == "gqa":
            hq, hk, hd = spec["n_heads"], spec["n_kv_heads"], spec["head_dim"]
            return 2.0 * (H * (hq + 2 * hk) * hd + hq * hd * H)
        h, ql, kvl, r, nope, vd = (spec["n_heads"], spec["q_lora"], spec["kv_lora"], spec["rope"], spec["nope"],
                                   spec["v_dim"])
        hi, di = spec["idx_heads"], spec["idx_dim"]
        q = (H * ql + ql * h * (nope + r) + ql * hi * di) if ql else (H * h * (nope + r) + H * hi * di)
        return 2.0 * (q + H * (kvl + r) + h * nope * kvl + h * kvl * vd + h * vd * H + H * di + H * hi)
    return float("nan")


def gemm_slopes(g: pd.DataFrame, models: dict) -> pd.DataFrame:
    rows = []
    for (m, op, dt), d in g[g["split"] == "train"].groupby(["model", "op", "dtype"]):
        d = d.sort_values("tokens")
        t1 = float(d["seconds"].iloc[0])
        T = d["tokens"].to_numpy(float)
        s = d["seconds"].to_numpy(float)
        big = T >= T.max() / 4
        slope = float(np.polyfit(T[big], s[big], 1)[0]) if big.sum() >= 2 else float(s[-1] / T[-1])
        fpt = _flops_per_token(m, op, models.get(m, {})) if m in models else float("nan")
        rows.append({"model": m, "op": op, "dtype": dt, "t_1tok_us": t1 * 1e6,
                     "per_1k_tokens_ms": slope * 1e6, "sat_tokens": t1 / slope if slope > 0 else float("nan"),
                     "t_max_ms": float(s[-1]) * 1e3, "tokens_max": int(T[-1]),
                     "tflops_at_max": fpt * T[-1] / s[-1] / 1e12})
    return pd.DataFrame(rows)


def attn_flops(model: str, component: str, spec: dict, cached: float, new: float) -> float:
    """FLOPs of one prefill attention call as implemented (indexer over all cached+new keys; sparse
    attention over min(topk, cached+new) keys per query; GQA flash causal)."""
    L = cached + new
    if spec.get("kind") == "gqa":
        return 4.0 * spec["n_heads"] * spec["head_dim"] * new * (cached + new / 2.0)
    if component == "indexer":
        return 2.0 * new * L * spec["idx_heads"] * spec["idx_dim"]
    dk, vd = spec["kv_lora"] + spec["rope"], spec["kv_lora"]
    return 2.0 * new * spec["n_heads"] * min(spec["topk"], L) * (dk + vd)


def decode_bytes(model: str, component: str, spec: dict, batch: float, ctx: float) -> float:
    """Bytes of keys/values one decode call must read at least (BF16 as implemented)."""
    if spec.get("kind") == "gqa":
        return batch * ctx * spec["n_kv_heads"] * spec["head_dim"] * 2 * 2
    if component == "indexer":
        return batch * ctx * spec["idx_dim"] * 2
    return batch * min(spec["topk"], ctx) * (spec["kv_lora"] + spec["rope"]) * 2


def prefill_slopes(p: pd.DataFrame, models: dict | None = None) -> pd.DataFrame:
    """Per model/component and new: cost per 1K cached tokens (least squares over cached), and at
    cached=0 the cost per new token at the largest new."""
    rows = []
    tr = p[p["split"] == "train"]
    for (m, comp), d in tr.groupby(["model", "component"]):
        for n, dn in d.groupby("new"):
            dn = dn.sort_values("cached")
            if len(dn) < 2:
                continue
            slope, icpt = np.polyfit(dn["cached"].to_numpy(float), dn["seconds"].to_numpy(float), 1)
            row = {"model": m, "component": comp, "new": int(n), "t_cached0_ms": float(dn["seconds"].iloc[0]) * 1e3,
                   "per_1k_cached_ms": slope * 1e6, "per_1k_cached_per_new_token_us": slope * 1e9 / n,
                   "t_cached_max_ms": float(dn["seconds"].iloc[-1]) * 1e3,
                   "cached_max": int(dn["cached"].iloc[-1])}
            if models and m in models:
                row["tflops_at_cached_max"] = attn_flops(m, comp, models[m], row["cached_max"], n) / (
                    row["t_cached_max_ms"] * 1e-3) / 1e12
            rows.append(row)
    return pd.DataFrame(rows)


def decode_slopes(d: pd.DataFrame, models: dict | None = None) -> pd.DataFrame:
    """Per model/component: floor (smallest point) and cost per 1K keys (batch x ctx) by least squares
    over the points with batch x ctx >= 256K; plus per-sequence cost per 1K ctx at batch = 1 and 64."""
    rows = []
    tr = d[d["split"] == "train"]
    for (m, comp), g in tr.groupby(["model", "component"]):
        keys = (g["batch"] * g["ctx"]).to_numpy(float)
        s = g["seconds"].to_numpy(float)
        big = keys >= (1 << 18)
        slope = float(np.polyfit(keys[big], s[big], 1)[0]) if big.sum() >= 2 else float("nan")
        row = {"model": m, "component": comp, "floor_us": float(s[np.argmin(keys)]) * 1e6,
               "per_1k_keys_us": slope * 1e3 * 1e6}
        if models and m in models:
            j = int(np.argmax(keys))
            gb = g.iloc[j]
            row["max_keys_point"] = f"{int(gb['batch'])}x{int(gb['ctx'])}"
            row["t_max_keys_ms"] = float(gb["seconds"]) * 1e3
            row["kv_GBps_at_max"] = decode_bytes(m, comp, models[m], gb["batch"], gb["ctx"]) / gb["seconds"] / 1e9
        for b in (1, 64):
            gb = g[g["batch"] == b].sort_values("ctx")
            if len(gb) >= 2:
                row[f"b{b}_per_1k_ctx_us"] = float(np.polyfit(gb["ctx"].to_numpy(float),
                                                             gb["seconds"].to_numpy(float), 1)[0]) * 1e9
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- report
def load(tables_dir: str) -> dict:
    out = {}
    for name in ("prefill_attn", "decode_attn", "gemm", "moe_ep"):
        f = os.path.join(tables_dir, f"{name}.csv")
        if os.path.exists(f):
            out[name] = pd.read_csv(f)
    mf = os.path.join(tables_dir, "meta.json")
    out["meta"] = json.load(open(mf)) if os.path.exists(mf) else {}
    return out


def all_heldout(t: dict) -> dict:
    e = {}
    if "prefill_attn" in t:
        e["prefill_attn"] = heldout_errors(t["prefill_attn"], ["model", "component"], ["cached", "new"],
                                           [CACHED_OFFSET, 0.0])
    if "decode_attn" in t:
        e["decode_attn"] = heldout_errors(t["decode_attn"], ["model", "component"], ["batch", "ctx"])
    if "gemm" in t:
        e["gemm"] = heldout_errors(t["gemm"], ["model", "op", "dtype"], ["tokens"])
    return e


def _md(df: pd.DataFrame, floatfmt="{:.3g}") -> str:
    if df is None or df.empty:
        return "(none)\n"
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        lines.append("| " + " | ".join(floatfmt.format(v) if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines) + "\n"


def figures(t: dict, out: str) -> list:
    from dpsim.metrics.outputs import new_figure  # not pyplot: a notebook's backend survives

    paths = []
    if "prefill_attn" in t and "decode_attn" in t and len(t["prefill_attn"]) and len(t["decode_attn"]):
        p, d = t["prefill_attn"], t["decode_attn"]
        combos = [(m, c) for (m, c), _ in p.groupby(["model", "component"])]
        fig = new_figure(figsize=(3.2 * len(combos), 6.4))
        axs = fig.subplots(2, len(combos), squeeze=False)
        for j, (m, c) in enumerate(combos):
            ax = axs[0][j]
            g = p[(p.model == m) & (p.component == c)]
            for n, gn in g[g.split == "train"].groupby("new"):
                gn = gn.sort_values("cached")
                ax.plot(gn["cached"] + CACHED_OFFSET, gn["seconds"] * 1e3, marker=".", label=f"new={n}")
            h = g[g.split == "heldout"]
            ax.scatter(h["cached"] + CACHED_OFFSET, h["seconds"] * 1e3, marker="x", color="k", label="held out")
            ax.set(xscale="log", yscale="log", title=f"prefill {m} {c}", xlabel=f"cached + {int(CACHED_OFFSET)}",
                   ylabel="ms / layer")
            ax = axs[1][j]
            g = d[(d.model == m) & (d.component == c)]
            for b, gb in g[g.split == "train"].groupby("batch"):
                gb = gb.sort_values("ctx")
                ax.plot(gb["ctx"], gb["seconds"] * 1e3, marker=".", label=f"b={b}")
            h = g[g.split == "heldout"]
            ax.scatter(h["ctx"], h["seconds"] * 1e3, marker="x", color="k")
            ax.set(xscale="log", yscale="log", title=f"decode {m} {c}", xlabel="ctx", ylabel="ms / layer")
        axs[0][0].legend(fontsize=6)
        axs[1][0].legend(fontsize=6)
        fig.tight_layout()
        f = os.path.join(out, "attention.png")
        fig.savefig(f, dpi=110)
        paths.append(f)
    if "gemm" in t and len(t["gemm"]):
        g = t["gemm"]
        models = sorted(g.model.unique())
        fig = new_figure(figsize=(4.2 * len(models), 3.6))
        axs = fig.subplots(1, len(models), squeeze=False)
        for j, m in enumerate(models):
            ax = axs[0][j]
            for (op, dt), go in g[(g.model == m) & (g.split == "train")].groupby(["op", "dtype"]):
                go = go.sort_values("tokens")
                ax.plot(go["tokens"], go["seconds"] * 1e3, marker=".", ls="-" if dt == "fp8" else "--",
                        label=f"{op} {dt}")
            h = g[(g.model == m) & (g.split == "heldout")]
            ax.scatter(h["tokens"], h["seconds"] * 1e3, marker="x", color="k", s=12)
            ax.set(xscale="log", yscale="log", title=f"linear work {m}", xlabel="tokens on the GPU",
                   ylabel="ms / layer")
            ax.legend(fontsize=6)
        fig.tight_layout()
        f = os.path.join(out, "gemm.png")
        fig.savefig(f, dpi=110)
        paths.append(f)
    return paths


def rerun_section(tables: dict, rerun_dir: str) -> list:
    """Run-to-run ratio of a second run's tables (same code, fresh machine) to the first."""
    L = []
    r = load(rerun_dir)
    for name, keys in (("decode_attn", ["model", "component", "batch", "ctx", "split"]),
                       ("prefill_attn", ["model", "component", "cached", "new", "split"]),
                       ("gemm", ["model", "op", "dtype", "tokens", "split"])):
        if name not in r or name not in tables or r[name].empty:
            continue
        m = tables[name].merge(r[name], on=keys, suffixes=("", "_rerun"))
        if m.empty:
            continue
        ratio = m["seconds_rerun"] / m["seconds"]
        grp = [k for k in keys[:2]]
        s = m.assign(ratio=ratio).groupby(grp)["ratio"].agg(["size", "median", "min", "max"]).reset_index()
        L.append(f"### {name}: rerun / first run, {len(m)} points: median {ratio.median():.3f}, "
                 f"min {ratio.min():.3f}, max {ratio.max():.3f}")
        L.append("")
        L.append(_md(s))
    return L


def build(tables_dir: str, out: str, models: dict | None = None, rerun_dir: str | None = None) -> str:
    if models is None:
        from .layers import MODELS as models  # noqa: N811
    t = load(tables_dir)
    os.makedirs(out, exist_ok=True)
    meta = t.get("meta", {})
    err = all_heldout(t)
    L = [f"# Per-layer compute tables: {meta.get('device', '?')} ({os.path.basename(os.path.normpath(tables_dir))})", ""]
    L.append(f"Built by `python -m dpsim.calibration.layers_report {os.path.relpath(tables_dir)}` from the tables "
             f"of `calibration/layers.py` (schema: `calibration/profiles/compute_tables/SCHEMA.md`).")
    L.append("")
    L.append(f"- device: {meta.get('device')}; torch {meta.get('torch')}, CUDA {meta.get('cuda')}; "
             f"date {meta.get('date')}")
    L.append(f"- timing: {meta.get('timing')}")
    L.append(f"- rows: {meta.get('table_rows')}; run {meta.get('elapsed_s', 0):.0f} s")
    if meta.get("ceilings"):
        c = meta["ceilings"]
        L.append("- ceilings on this card: " + ", ".join(f"{k} = {v:.0f}" for k, v in c.items()))
    if meta.get("implementations"):
        L.append("- implementations: " + "; ".join(f"{k}: {v}" for k, v in meta["implementations"].items()))
    ch = meta.get("checks", {})
    if ch:
        nums = {k: v for k, v in ch.items() if isinstance(v, float)}
        L.append("- float64 checks (relative Frobenius error; `topk_gap` = (k-th best - worst selected) / row max of "
                 "the float64 index scores; `quality`/`sumratio` = selected / best top-k score sum, informational): "
                 + ", ".join(f"{k} {v:.2g}" for k, v in nums.items()) + f"; failed: {ch.get('failed')}")
    for key in ("notes", "post_run_notes", "errors"):
        if meta.get(key):
            L.append(f"- {key}: " + "; ".join(str(x) for x in meta[key]))
    if meta.get("skipped"):
        L.append(f"- skipped (deadline): {len(meta['skipped'])} points, e.g. {meta['skipped'][:6]}")
    notes = os.path.join(out, "NOTES.md")
    if os.path.exists(notes):
        L.append("")
        L.append(open(notes).read().strip())
    L.append("")
    L.append("## Held-out interpolation error (log-log linear from the training grid)")
    L.append("")
    L.append(f"Prefill interpolates on (log(cached + {int(CACHED_OFFSET)}), log new), decode on (log batch, "
             "log ctx), GEMMs on log tokens; value log seconds.  n = held-out points inside the grid.")
    L.append("")
    for name, keys in (("prefill_attn", ["model", "component"]), ("decode_attn", ["model", "component"]),
                       ("gemm", ["model", "op", "dtype"])):
        if name in err and not err[name].empty:
            s = summarize_errors(err[name], keys)
            allok = err[name][np.isfinite(err[name]["rel_err"])]["rel_err"]
            L.append(f"### {name}: all held-out points: median {allok.median() * 100:.1f}%, max "
                     f"{allok.max() * 100:.1f}% (n = {len(allok)})")
            L.append("")
            s = s.assign(median_err=s["median_err"] * 100, max_err=s["max_err"] * 100).rename(
                columns={"median_err": "median_err_%", "max_err": "max_err_%"})
            L.append(_md(s, "{:.1f}"))
            err[name].to_csv(os.path.join(out, f"heldout_{name}.csv"), index=False)
    L.append("## How time grows")
    L.append("")
    if "prefill_attn" in t:
        ps = prefill_slopes(t["prefill_attn"], models)
        L.append("### Prefill attention (one request, one layer)")
        L.append("")
        L.append("`per_1k_cached_ms`: least-squares slope of time vs cached tokens at fixed `new`, per 1K cached "
                 "tokens; `per_1k_cached_per_new_token_us` the same per query token; `tflops_at_cached_max`: FLOPs "
                 "as implemented (indexer: all cached+new keys x idx heads x idx dim; sparse attn: min(topk, keys) "
                 "x heads x (576 + 512); GQA: causal) over the time at cached = 64K.")
        L.append("")
        L.append(_md(ps[ps["new"].isin([256, 1024, 4096, 16384])] if not ps.empty else ps))
        ps.to_csv(os.path.join(out, "prefill_slopes.csv"), index=False)
    if "decode_attn" in t:
        ds = decode_slopes(t["decode_attn"], models)
        L.append("### Decode attention (one step, one layer)")
        L.append("")
        L.append("`floor_us`: smallest grid point (batch 1, ctx 1K); `per_1k_keys_us`: slope per 1K keys "
                 "(batch x ctx) over points with >= 256K keys; `bB_per_1k_ctx_us`: slope per 1K ctx at batch B; "
                 "`kv_GBps_at_max`: BF16 key/value bytes read at least (GQA K+V; indexer keys; the gathered top-k "
                 "latents) over the time, at the grid point with the most keys.")
        L.append("")
        L.append(_md(ds))
        ds.to_csv(os.path.join(out, "decode_slopes.csv"), index=False)
    if "gemm" in t:
        gs = gemm_slopes(t["gemm"], models)
        L.append("### Linear work (one layer; lm_head once per forward)")
        L.append("")
        L.append("`t_1tok_us`: 1 token (weight-read floor); `per_1k_tokens_ms`: slope over the top two octaves; "
                 "`sat_tokens` = t(1) / slope, the token count where the per-token cost reaches the floor (knee); "
                 "`tflops_at_max`: useful FLOP/s at the largest token count.")
        L.append("")
        L.append(_md(gs))
        gs.to_csv(os.path.join(out, "gemm_slopes.csv"), index=False)
    if "moe_ep" in t and t["moe_ep"]["ep"].nunique() > 1:
        me = t["moe_ep"]
        piv = me[me.split == "train"].pivot_table(index=["model", "dtype", "tokens"], columns="ep",
                                                  values="seconds").reset_index()
        L.append("### MoE at both EP sizes (moe_ep.csv), ms")
        L.append("")
        piv.columns = [str(c) for c in piv.columns]
        for c in piv.columns[3:]:
            piv[c] = piv[c] * 1e3
        L.append(_md(piv[piv["tokens"].isin([1, 16, 256, 4096, 32768])]))
    if rerun_dir:
        L.append(f"## Reproducibility (second run: `{os.path.relpath(rerun_dir)}`)")
        L.append("")
        L += rerun_section(t, rerun_dir)
    try:
        figs = figures(t, out)
        L.append("## Figures")
        L.append("")
        for f in figs:
            L.append(f"![{os.path.basename(f)}]({os.path.basename(f)})")
        L.append("")
    except Exception as e:  # pragma: no cover - matplotlib missing
        L.append(f"(figures not drawn: {e})")
    text = "\n".join(L) + "\n"
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tables", nargs="?", default=None,
                    help="a tables directory (default: every <gpu_tag>/ under calibration/profiles/compute_tables)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--rerun", default=None, help="tables of a second run of the same code (reproducibility)")
    a = ap.parse_args(argv)
    dirs = [a.tables] if a.tables else sorted(
        os.path.join(DEFAULT_TABLES, d) for d in os.listdir(DEFAULT_TABLES)
        if os.path.isfile(os.path.join(DEFAULT_TABLES, d, "gemm.csv")))
    if not dirs:
        print("no tables found", file=sys.stderr)
        return 1
    parts = []
    for d in dirs:
        tag = os.path.basename(os.path.normpath(d))
        out = a.out if len(dirs) == 1 else os.path.join(a.out, tag)
        parts.append(build(d, out, rerun_dir=a.rerun))
        with open(os.path.join(out, "REPORT.md"), "w") as f:
            f.write(parts[-1])
        print(f"report -> {os.path.join(out, 'REPORT.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
