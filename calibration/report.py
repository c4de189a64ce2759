"""Plots (PNG) and tables (CSV) of a fit, and a markdown summary."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .profile import single_time
from .suites import fmt_bytes


from dpsim.metrics.outputs import new_figure  # Figure objects: no backend switch, nothing left open


def plot_links(profile: dict, tables: dict, path: str) -> str | None:
    raw = tables.get("raw")
    if raw is None or raw.empty:
        return None
    summ = tables["summary"]
    s = summ[summ["suite"] == "sizes"]
    kinds = [k for k in profile["links"] if k in set(s["kind"])]
    if not kinds:
        return None
    nc = min(3, len(kinds))
    nr = (len(kinds) + nc - 1) // nc
    fig = new_figure(figsize=(5.2 * nc, 3.8 * nr))
    axes = fig.subplots(nr, nc, squeeze=False)
    for ax, kind in zip(axes.flat, kinds):
        g = s[s["kind"] == kind].sort_values("nbytes")
        L = profile["links"][kind]
        for split, mk, col in (("train", "o", "C0"), ("heldout", "x", "C3")):
            gg = g[g["split"] == split]
            bw = gg["nbytes"] / gg["median_s"] / 1e9
            lo = gg["nbytes"] / gg["q75_s"] / 1e9
            hi = gg["nbytes"] / gg["q25_s"] / 1e9
            ax.errorbar(gg["nbytes"], bw, yerr=[bw - lo, hi - bw], fmt=mk, color=col, ms=4, capsize=2,
                        label=f"{split} (median, IQR)")
        xs = np.geomspace(g["nbytes"].min(), g["nbytes"].max(), 200)
        ax.plot(xs, xs / np.array([single_time(L, x) for x in xs]) / 1e9, "-", color="k", lw=1, label="fit")
        ax.set_xscale("log")
        ax.set_yscale("log")
        f = L.get("fit", {})
        m = f.get("mape")
        ax.set_title(f"{kind}: {L['bandwidth_Bps'] / 1e9:.1f} GB/s, {L['latency_s'] * 1e6:.1f} us"
                     + (f"\nheld-out (>=64KiB) MAPE {m * 100:.1f}%, worst {f['max_err'] * 100:.1f}%" if m is not None else ""),
                     fontsize=9)
        ax.set_xlabel("transfer size (bytes)")
        ax.set_ylabel("GB/s")
        ax.grid(True, which="both", alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    for ax in list(axes.flat)[len(kinds):]:
        ax.axis("off")
    fig.suptitle(f"Link fits -- {profile['meta'].get('gpu') or profile['meta'].get('cpu') or ''}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=110)
    return path


def plot_errors(tables: dict, path: str) -> str | None:
    t = tables.get("sizes")
    if t is None or t.empty:
        return None
    fig = new_figure(figsize=(7, 4))
    ax = fig.subplots()
    for i, (kind, g) in enumerate(t.groupby("kind")):
        ho = g[g["split"] == "heldout"]
        tr = g[g["split"] == "train"]
        ax.plot(ho["nbytes"], ho["rel_err"] * 100, "x-", color=f"C{i}", label=f"{kind} held-out")
        ax.plot(tr["nbytes"], tr["rel_err"] * 100, ".", color=f"C{i}", alpha=0.4)
    ax.axvline(64 * 1024, color="gray", ls=":", lw=1)
    ax.axhline(10, color="red", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("transfer size (bytes)")
    ax.set_ylabel("|pred - meas| / meas (%)")
    ax.set_title("Link-model error (x: held-out sizes, dots: training sizes)", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_sharing(tables: dict, path: str) -> str | None:
    t = tables.get("sharing")
    if t is None or t.empty:
        return None
    groups = list(t["group"].unique())
    nc = min(3, len(groups))
    nr = (len(groups) + nc - 1) // nc
    fig = new_figure(figsize=(5 * nc, 3.6 * nr))
    axes = fig.subplots(nr, nc, squeeze=False)
    for ax, gname in zip(axes.flat, groups):
        g = t[t["group"] == gname]
        for i, (n, gg) in enumerate(g.groupby("nbytes")):
            gg = gg.sort_values("n_concurrent")
            ax.plot(gg["n_concurrent"], gg["predicted_aggregate_Bps"] / 1e9, "-", color=f"C{i}", lw=1)
            for split, mk in (("train", "o"), ("heldout", "x")):
                q = gg[gg["split"] == split]
                ax.plot(q["n_concurrent"], q["measured_aggregate_Bps"] / 1e9, mk, color=f"C{i}",
                        label=f"{fmt_bytes(n)}" if split == "train" else None)
        ax.set_title(f"{gname}: aggregate GB/s vs k (x: held-out k)", fontsize=9)
        ax.set_xlabel("concurrent transfers k")
        ax.set_ylabel("GB/s")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_blocks(tables: dict, path: str) -> str | None:
    t = tables.get("blocks")
    if t is None or t.empty:
        return None
    keys = list(t.groupby(["kind", "mode"]).groups)
    nc = min(3, len(keys))
    nr = (len(keys) + nc - 1) // nc
    fig = new_figure(figsize=(5 * nc, 3.6 * nr))
    axes = fig.subplots(nr, nc, squeeze=False)
    for ax, (kind, mode) in zip(axes.flat, keys):
        g = t[(t["kind"] == kind) & (t["mode"] == mode)]
        for i, (b, gg) in enumerate(g.groupby("block_bytes")):
            gg = gg.sort_values("n_messages")
            tot = gg["n_messages"] * b
            ax.plot(gg["n_messages"], tot / gg["predicted_s"] / 1e9, "-", color=f"C{i}", lw=1)
            for split, mk in (("train", "o"), ("heldout", "x")):
                q = gg[gg["split"] == split]
                ax.plot(q["n_messages"], q["n_messages"] * b / q["measured_s"] / 1e9, mk, color=f"C{i}",
                        label=fmt_bytes(b) if split == "train" else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{kind} {mode} ({g['method'].iloc[0]}): GB/s vs blocks", fontsize=9)
        ax.set_xlabel("number of blocks")
        ax.set_ylabel("GB/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, title="block size", title_fontsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_compute(tables: dict, path: str) -> str | None:
    t = tables.get("compute")
    if t is None or t.empty:
        return None
    fig = new_figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    g = t[t["op"] == "gemm"]
    ax = axes[0]
    for i, ((dt, N, K), gg) in enumerate(g.groupby(["dtype", "N", "K"])):
        gg = gg.sort_values("M")
        fl = 2.0 * gg["M"] * gg["N"] * gg["K"]
        ax.plot(gg["M"], fl / gg["predicted_s"] / 1e12, "-", color=f"C{i}", lw=1)
        for split, mk in (("train", "o"), ("heldout", "x")):
            q = gg[gg["split"] == split]
            ax.plot(q["M"], 2.0 * q["M"] * q["N"] * q["K"] / q["measured_s"] / 1e12, mk, color=f"C{i}", ms=4,
                    label=f"{dt} N={N} K={K}" if split == "train" else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tokens M")
    ax.set_ylabel("TFLOP/s")
    ax.set_title("GEMM throughput vs tokens (lines: roofline fit)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    a = t[t["op"] == "attention"]
    ax = axes[1]
    if not a.empty:
        for split, mk in (("train", "o"), ("heldout", "x")):
            q = a[a["split"] == split]
            ax.scatter(q["measured_s"] * 1e3, q["predicted_s"] * 1e3, marker=mk, s=14, label=split)
        lim = [a[["measured_s", "predicted_s"]].min().min() * 1e3 * 0.8, a[["measured_s", "predicted_s"]].max().max() * 1e3 * 1.2]
        ax.plot(lim, lim, "k-", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured attention time (ms)")
        ax.set_ylabel("fitted (ms)")
        ax.set_title("Attention t(cached, new): fit vs measured", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def write_report_files(profile: dict, tables: dict, out_dir: str) -> list[str]:
    """CSV tables and PNG plots of a fit into ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name in ("sizes", "blocks", "sharing", "compute", "makespans"):
        t = tables.get(name)
        if t is not None and not t.empty:
            p = os.path.join(out_dir, f"fit_{name}.csv")
            t.to_csv(p, index=False)
            paths.append(p)
    summ = tables.get("summary")
    if summ is not None and not summ.empty:
        p = os.path.join(out_dir, "measured_summary.csv")
        summ.to_csv(p, index=False)
        paths.append(p)
    for fn, name in ((plot_links, "links.png"), (plot_errors, "heldout_errors.png"),
                     (plot_sharing, "sharing.png"), (plot_blocks, "blocks.png"), (plot_compute, "compute.png")):
        try:
            p = fn(profile, tables, os.path.join(out_dir, name)) if fn is plot_links else fn(tables, os.path.join(out_dir, name))
        except Exception as e:  # a plot must never lose the numbers
            print(f"warning: {name} not drawn: {e!r}")
            p = None
        if p:
            paths.append(p)
    return paths


def measured_table(tables: dict, sizes=(64 << 10, 1 << 20, 16 << 20, 256 << 20, 1 << 30)) -> pd.DataFrame:
    """Median GB/s and us per kind at chosen sizes (sizes suite)."""
    summ = tables.get("summary")
    if summ is None or summ.empty:
        return pd.DataFrame()
    s = summ[summ["suite"] == "sizes"]
    rows = []
    for kind, g in s.groupby("kind"):
        r = {"kind": kind}
        for n in sizes:
            q = g[g["nbytes"] == n]
            if len(q):
                m = float(q["median_s"].iloc[0])
                r[fmt_bytes(n)] = f"{n / m / 1e9:.1f} GB/s ({m * 1e6:.1f} us)"
            else:
                r[fmt_bytes(n)] = "-"
        rows.append(r)
    return pd.DataFrame(rows)


def md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "(none)\n"
    cols = list(df.columns)
    out = "| " + " | ".join(map(str, cols)) + " |\n|" + "---|" * len(cols) + "\n"
    for r in df.itertuples(index=False):
        out += "| " + " | ".join("" if v is None else str(v) for v in r) + " |\n"
    return out


def _gbps_at(summ: pd.DataFrame, kind: str, n: int):
    q = summ[(summ["suite"] == "sizes") & (summ["kind"] == kind) & (summ["nbytes"] == n)]
    if q.empty:
        return None
    return float(n / q["median_s"].iloc[0] / 1e9)


def _pct(x):
    return "-" if x is None else f"{x * 100:.1f}%"


def _us(x):
    return "-" if x is None else f"{x * 1e6:.2f}"


REFERENCE_GPU = "H100"  # C3 was measured on an H100 SXM host (shared/spec/calibration-points.md)


def reference_caveat(gpu) -> str | None:
    """The caveat printed above the C3 comparison when the measured GPU is not C3's (None when
    it is, or no GPU was measured)."""
    if not gpu:
        return None
    if REFERENCE_GPU.lower() in str(gpu).lower():
        return None
    return (f"**Caveat: different machines.** C3 was measured on an H100 SXM host (PCIe Gen5 x16, "
            f"NVLink NV18); these numbers come from **{gpu}**. A ratio here compares two machines, "
            f"it is not an error of the fit: copies inside the GPU (D2D) follow its memory bandwidth "
            f"(an H200 has HBM3e, ~1.4x an H100's by the vendor datasheets), while host copies follow "
            f"the PCIe link, and small sizes follow launch overheads of that host.")


def unmeasured_links(profile: dict, tables: dict, as_pairs: bool = False) -> list:
    """Links a one-GPU (or GPU-less) run cannot measure, with the reason, from the cuda metadata:
    ``p2p`` (and the two-GPU sharing groups) need two GPUs."""
    metas = tables.get("metas") or {}
    out = []
    cuda = [mm for mm in metas.values() if mm.get("transport") == "cuda"]
    if cuda and "p2p" not in (profile.get("links") or {}):
        n = max(int(mm.get("device_count") or len(mm.get("devices") or [])) for mm in cuda)
        used = max(len(mm.get("devices") or []) for mm in cuda)
        if used < 2:
            why = (f"a peer copy needs two GPUs; this run used one ({n} visible), so p2p, p2p_same, "
                   f"p2p_duplex and h2d_2gpu were not measured")
            out.append(("p2p", why))
    return out if as_pairs else [f"{k} -- {v}" for k, v in out]


def adjusted_options(tables: dict) -> list:
    """(results name, note) for every option a suite adjusted (meta ``adjusted``)."""
    out = []
    for name, mm in sorted((tables.get("metas") or {}).items()):
        for n in mm.get("adjusted") or []:
            out.append((name, n))
    return out


def markdown_report(profile: dict, tables: dict, c3: dict | None = None, title: str = "Calibration report") -> str:
    """A REPORT.md body: measured numbers, fit errors, C3 comparison."""
    m = profile["meta"]
    summ = tables.get("summary", pd.DataFrame())
    out = [f"# {title}\n"]
    out.append(f"- GPU: **{m.get('gpu')}** (driver {m.get('driver')}, CUDA runtime {m.get('cuda_runtime')}, "
               f"torch {m.get('torch')}); host CPU {m.get('cpu')}; host `{m.get('host')}`; date {m.get('date')}")
    out.append(f"- transports measured: {', '.join(m.get('transports') or [])}")
    unav = tables.get("unavailable") or {}
    for k, v in unav.items():
        out.append(f"- **not measured: {k}** -- {v.get('message')}")
    for line in unmeasured_links(profile, tables):
        out.append(f"- **not measured: {line}**")
    adj = adjusted_options(tables)
    if adj:
        out.append("- **options the suites adjusted** (as printed during the run):")
        out += [f"  - `{name}`: {n}" for name, n in adj]
    else:
        out.append("- options the suites adjusted: none (every size and count ran as given)")
    out.append("")
    sizes = [4 << 10, 64 << 10, 1 << 20, 16 << 20, 256 << 20, 1 << 30]
    out.append("## Measured bandwidth per primitive (median of trials; GB/s = 1e9 B/s; time in us)\n")
    rows = []
    for kind in profile["links"]:
        r = {"link": kind}
        for n in sizes:
            q = summ[(summ["suite"] == "sizes") & (summ["kind"] == kind) & (summ["nbytes"] == n)] if not summ.empty else []
            if len(q):
                t = float(q["median_s"].iloc[0])
                iqr = float(q["iqr_s"].iloc[0])
                r[fmt_bytes(n)] = f"{n / t / 1e9:.2f} ({t * 1e6:.1f} us, IQR {iqr / t * 100:.0f}%)"
            else:
                r[fmt_bytes(n)] = "-"
        rows.append(r)
    out.append(md_table(pd.DataFrame(rows)))
    out.append("\n## Link fits (held-out sizes, never used in fitting; headline = sizes >= 64 KiB)\n")
    rows = []
    for kind, L in profile["links"].items():
        f = L.get("fit", {})
        rows.append({"link": kind, "latency (us)": _us(L["latency_s"]), "bandwidth (GB/s)": f"{L['bandwidth_Bps'] / 1e9:.2f}",
                     "pieces": len(L.get("pieces", [])) or 1, "per-msg loop (us)": _us(L.get("per_message_s")),
                     "per-msg batched (us)": _us(L.get("per_message_batched_s")),
                     "held-out MAPE": _pct(f.get("mape")), "held-out median": _pct(f.get("median_err")),
                     "held-out worst": _pct(f.get("max_err")), "all held-out MAPE": _pct(f.get("mape_all_heldout")),
                     "n train/held-out": f"{f.get('n_train')}/{f.get('n_heldout')}"})
    out.append(md_table(pd.DataFrame(rows)))
    meds = [L.get("fit", {}).get("median_err") for L in profile["links"].values() if L.get("fit", {}).get("median_err") is not None]
    if meds:
        out.append(f"\nMedian over links of the held-out median error (>= 64 KiB): {np.median(meds) * 100:.1f}%; "
                   f"links above 10%: {[k for k, L in profile['links'].items() if (L.get('fit', {}).get('median_err') or 0) > 0.10] or 'none'}.\n")
    bt = tables.get("blocks")
    if bt is not None and not bt.empty:
        out.append("\n## Many small blocks (per-message cost; held-out block count n=256)\n")
        rows = []
        for kind, L in profile["links"].items():
            for mode, pf in (L.get("per_message_fit") or {}).items():
                rows.append({"link": kind, "mode": mode, "method": pf.get("method"),
                             "per message (us)": _us(L.get({"loop": "per_message_s", "batched": "per_message_batched_s",
                                                            "graph": "per_message_graph_s"}[mode])),
                             "held-out MAPE": _pct(pf.get("mape")), "held-out worst": _pct(pf.get("max_err")),
                             "train MAPE": _pct(pf.get("train_mape"))})
        out.append(md_table(pd.DataFrame(rows)))
        sel = bt[(bt["n_messages"].isin([61, 4096])) & (bt["block_bytes"].isin([16 << 10, 64 << 10]))]
        if not sel.empty:
            out.append("\nSelected points (measured):\n")
            s2 = sel.assign(GBps=lambda d: (d["n_messages"] * d["block_bytes"] / d["measured_s"] / 1e9).round(2),
                            us_per_block=lambda d: (d["measured_s"] / d["n_messages"] * 1e6).round(2))
            out.append(md_table(s2[["kind", "mode", "method", "n_messages", "block_bytes", "GBps", "us_per_block"]]
                                .sort_values(["kind", "block_bytes", "n_messages", "mode"])))
    sh = profile.get("sharing") or {}
    if sh:
        out.append("\n## Sharing (k concurrent transfers; held-out k = 3, 6)\n")
        rows = []
        st = tables.get("sharing", pd.DataFrame())
        for name, S in sh.items():
            f = S.get("fit", {})
            best = None
            if not st.empty:
                g = st[st["group"] == name]
                if len(g):
                    best = g["measured_aggregate_Bps"].max() / 1e9
            rows.append({"group": name, "kinds": "+".join(S["kinds"]), "directions": S.get("directions"),
                         "total (GB/s)": f"{S['total_Bps'] / 1e9:.1f}", "max measured aggregate (GB/s)":
                         "-" if best is None else f"{best:.1f}", "binding": S.get("binding"),
                         "held-out MAPE": _pct(f.get("mape")), "held-out worst": _pct(f.get("max_err")),
                         "scored sizes": (f">= {fmt_bytes(f['heldout_min_bytes'])}" if f.get("heldout_min_bytes")
                                          else "all"),
                         "held-out MAPE, all sizes": _pct(f.get("mape_all_heldout"))})
        out.append(md_table(pd.DataFrame(rows)))
        out.append("\nTotals are fitted and scored on concurrent transfers of >= 16 MiB where a group has "
                   "them (below that a transfer's own launch/queueing cost sets the makespan; the link "
                   "latency and per-message costs price it); the last column scores every held-out size. "
                   "In duplex groups each direction is also bounded by its own link, as in the flow model.\n")
    for kind, L in (profile.get("links") or {}).items():
        f = L.get("storage_weight_fit")
        if "storage_weight" not in L or not f:
            continue
        out.append(f"\n## Storage write weight ({kind}; dpsim.calibration.mixed)\n")
        out.append(f"Fitted w = {f.get('w_fitted', float('nan')):.3f}, priced as **{L['storage_weight']:.3f}** "
                   f"(a written byte consumes w bytes of the shared storage capacity, a read byte 1): "
                   f"`{f.get('form', '')}`, on {f.get('n_train')} training pairs of a reads-alone window and a "
                   f"window of reads with paced writes (write rates achieved, all pairs: "
                   f"{f.get('write_rates_GBps')} GB/s). Held-out pairs ({f.get('n_heldout')}): "
                   f"MAPE {_pct((f.get('heldout') or {}).get('mape'))}, worst "
                   f"{_pct((f.get('heldout') or {}).get('max_err'))}; with w = 1: MAPE "
                   f"{_pct((f.get('heldout_with_w1') or {}).get('mape'))}. Each pair's own w: {f.get('w_pairs')}."
                   + (f" {f['note']}." if f.get("note") else "") + "\n")
    comp = profile.get("compute") or {}
    if comp.get("gemm") or comp.get("attention"):
        out.append("\n## Compute\n")
        rows = []
        for dt, g in (comp.get("gemm") or {}).items():
            f = g["fit"]
            rows.append({"fit": f"GEMM {dt}", "parameters": f"{g['flops_per_s'] / 1e12:.0f} TFLOP/s, {g['mem_Bps'] / 1e9:.0f} GB/s, "
                         f"overhead {g['overhead_s'] * 1e6:.1f} us", "held-out MAPE": _pct(f.get("mape")),
                         "held-out worst": _pct(f.get("max_err")), "train MAPE": _pct(f.get("train_mape"))})
        a = comp.get("attention")
        if a:
            f = a["fit"]
            rows.append({"fit": f"attention ({a['backend']}, {a['heads']}x{a['head_dim']})",
                         "parameters": f"a={a['a_s'] * 1e6:.1f} us, {a.get('effective_tflops') or 0:.0f} TFLOP/s, "
                                       f"c={a['c_s_per_new_token'] * 1e9:.2f} ns/new token, KV read "
                                       f"{a.get('effective_kv_GBps') or 0:.0f} GB/s",
                         "held-out MAPE": _pct(f.get("mape")), "held-out worst": _pct(f.get("max_err")),
                         "train MAPE": _pct(f.get("train_mape"))})
        d = comp.get("decode") or {}
        if d:
            rows.append({"fit": "decode / HBM", "parameters": f"HBM copy {d.get('hbm_copy_Bps', 0) / 1e9:.0f} GB/s; weight streaming "
                         f"{d.get('weight_stream_Bps', 0) / 1e9:.0f} GB/s", "held-out MAPE": "-", "held-out worst": "-",
                         "train MAPE": "-"})
        out.append(md_table(pd.DataFrame(rows)))
        tbl = (comp.get("gemm") or {}).get("bf16", {}).get("throughput_vs_tokens")
        if tbl:
            out.append("\nbf16 GEMM throughput vs tokens (largest N shape): " +
                       ", ".join(f"M={r['M']}: {r['tflops']:.0f}" for r in tbl) + " TFLOP/s\n")
    if c3:
        out.append("\n## Comparison with C3 (shared/spec/calibration-points.md)\n")
        cav = reference_caveat(m.get("gpu"))
        if cav:
            out.append(cav + "\n")
        out.append("`measured` = device-side copy time (gated); `measured_launch` = events around the Python "
                   "`copy_` call, which includes the launch overhead (the method C3's small sizes suggest).\n")
        rows = []
        from .c3_reference import TABLE

        why = dict(unmeasured_links(profile, tables, as_pairs=True))
        for kind, (label, gb) in TABLE.items():
            for n, g in zip((64 << 10, 1 << 20, 16 << 20, 1 << 30), gb):
                meas = _gbps_at(summ, kind, n) if not summ.empty else None
                ml = _gbps_at(summ, kind + "_launch", n) if not summ.empty else None
                miss = "not measured" + (" (one GPU: see above)" if kind in why else "")
                rows.append({"primitive": label, "size": fmt_bytes(n), "C3 (GB/s)": g,
                             "measured (GB/s)": miss if meas is None else f"{meas:.1f}",
                             "measured_launch (GB/s)": "-" if ml is None else f"{ml:.1f}",
                             "measured/C3": "-" if meas is None else f"{meas / g:.2f}"})
        out.append(md_table(pd.DataFrame(rows)))
    return "\n".join(out) + "\n"
