"""Fit link, per-message, sharing (and compute) models to suite results.

Link model (per kind, from the ``sizes`` suite, training sizes only)::

    t(n) = a + s0*n + sum_j c_j * max(0, n - k_j)

a continuous piecewise-linear function of the size with knots ``k_j`` picked
greedily among the training sizes (at most ``max_knots``) only while the
data asks for them (training RMS relative error above ``tol`` and a >25 %
improvement).  Least squares on *relative* error (rows divided by the
measured time), so 4 KiB and 1 GiB weigh the same.  Each piece is written as
``latency_s + n / bandwidth_Bps`` over its byte range; the link's
``latency_s`` is the zero-byte intercept and ``bandwidth_Bps`` the last
piece's (asymptotic) bandwidth.

Per-message cost (``blocks`` suite): ``T(m blocks of b) = t(b) + (m-1) *
max(p, b / bandwidth_Bps)``, ``p`` found by a 1-D search; one ``p`` per mode
(``loop`` -> per_message_s, ``batched`` -> per_message_batched_s, ``graph`` ->
per_message_graph_s).

Sharing (``concurrency`` suite): k transfers of n bytes over a group share
``total_Bps`` fairly, each also bounded by its own link::

    makespan(k, n) = max(t_kind(n) for each kind,  latency + k*n / total_Bps)

``total_Bps`` by a 1-D search over k >= 2 training levels.

Held-out sizes / levels / block counts are never used in fitting; they score
the fit (MAPE, median and worst relative error; the headline numbers count
sizes >= 64 KiB).
"""
from __future__ import annotations

import glob
import json
import os

import numpy as np
import pandas as pd

from .numerics import nnls, rel_errors, score, search_1d
from .profile import single_time
from .suites import KiB, fmt_bytes, makespans, summarize

SCORE_MIN_BYTES = 64 * KiB
# Sharing totals are fitted and scored (headline) on concurrent transfers of at least this size:
# below it a transfer's own launch / queueing cost, not the shared bandwidth, sets the makespan
# (e.g. 1 MiB H2D: ~19 us on the wire, 8-10 us fixed), and that cost is priced by the link latency
# and the per-message costs, not by total_Bps.  Smaller sizes are still scored ("all sizes").
SHARE_MIN_BYTES = 16 << 20


# ------------------------------------------------------------------ loading


def load_results(d: str) -> tuple[pd.DataFrame, dict, pd.DataFrame | None, dict]:
    """All raw_*.parquet (or .csv) transfer tables and meta_*.json in ``d``,
    plus compute_raw if present."""
    frames, metas = [], {}
    for p in sorted(glob.glob(os.path.join(d, "raw_*.parquet"))) or sorted(glob.glob(os.path.join(d, "raw_*.csv"))):
        frames.append(pd.read_parquet(p) if p.endswith(".parquet") else pd.read_csv(p))
    for p in sorted(glob.glob(os.path.join(d, "meta_*.json"))):
        with open(p) as f:
            metas[os.path.basename(p)[5:-5]] = json.load(f)
    raw = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not raw.empty:
        for c in ("group", "method", "note"):
            if c in raw:
                raw[c] = raw[c].fillna("")
    comp = None
    cp = os.path.join(d, "compute_raw.parquet")
    if os.path.exists(cp):
        comp = pd.read_parquet(cp)
    elif os.path.exists(os.path.join(d, "compute_raw.csv")):
        comp = pd.read_csv(os.path.join(d, "compute_raw.csv"))
    unavailable = {}
    for p in sorted(glob.glob(os.path.join(d, "unavailable_*.json"))):
        with open(p) as f:
            unavailable[os.path.basename(p)[12:-5]] = json.load(f)
    return raw, metas, comp, unavailable


# --------------------------------------------------------------- link model


S_MIN = 1e-16  # s/B: slope floor (10 PB/s) so every piece has a finite bandwidth


def _seg_design(n: np.ndarray, knots) -> np.ndarray:
    """Columns: 1, then the part of n lying in each segment [e_j, e_j+1)."""
    edges = [0.0] + list(knots) + [np.inf]
    cols = [np.ones_like(n)]
    for j in range(len(edges) - 1):
        lo, hi = edges[j], edges[j + 1]
        cols.append(np.clip(n - lo, 0.0, hi - lo))
    return np.stack(cols, axis=1)


def _solve(n, t, knots):
    """Non-negative least squares on relative error: latency >= 0, every
    piece's time-per-byte >= S_MIN (so bandwidth is positive and finite)."""
    X = _seg_design(n, knots)
    y = t - S_MIN * n  # substitute slope = S_MIN + s', s' >= 0
    A = X / t[:, None]
    colscale = np.maximum(np.abs(A).max(axis=0), 1e-300)
    coef = nnls(A / colscale, y / t) / colscale
    coef[1:] += S_MIN
    return coef


def _pieces(coef, knots):
    edges = [0.0] + list(knots) + [float(2**62)]
    out = []
    t_at = coef[0]
    for j in range(len(edges) - 1):
        slope = coef[1 + j]
        icpt = t_at - slope * edges[j]
        out.append({"from_bytes": int(edges[j]), "to_bytes": int(edges[j + 1]),
                    "latency_s": float(icpt), "bandwidth_Bps": float(1.0 / slope)})
        if j < len(edges) - 2:
            t_at = t_at + slope * (edges[j + 1] - edges[j])
    return out


def _predict_coef(coef, knots, n):
    return _seg_design(np.asarray(n, float), knots) @ coef


def fit_link_curve(n, t, max_knots: int = 3, tol: float = 0.03, min_pts: int = 2,
                   min_gain: float = 0.25) -> dict:
    """Fit the piecewise model to (size, time) points; see module docstring."""
    n = np.asarray(n, float)
    t = np.asarray(t, float)
    order = np.argsort(n)
    n, t = n[order], t[order]
    if n.size < 2:
        raise ValueError("need at least two sizes to fit a link")

    def fit(knots):
        coef = _solve(n, t, knots)
        e = rel_errors(_predict_coef(coef, knots, n), t)
        return coef, float(np.sqrt(np.mean(e ** 2)))

    knots: list[float] = []
    coef, rms = fit(knots)
    while len(knots) < max_knots and rms > tol:
        best = None
        for k in n[1:-1]:
            if k in knots:
                continue
            ks = sorted(knots + [float(k)])
            # each segment (edges inclusive) must hold at least min_pts points
            edges = [-np.inf] + ks + [np.inf]
            if any(((n >= edges[i]) & (n <= edges[i + 1])).sum() < min_pts for i in range(len(edges) - 1)):
                continue
            c2, r2 = fit(ks)
            if best is None or r2 < best[2]:
                best = (ks, c2, r2)
        if best is None or best[2] > (1.0 - min_gain) * rms:
            break
        knots, coef, rms = best
    pieces = _pieces(coef, knots)
    link = {
        "latency_s": float(coef[0]),
        "bandwidth_Bps": float(pieces[-1]["bandwidth_Bps"]),
    }
    if len(pieces) > 1:
        link["pieces"] = pieces
    train = rel_errors([single_time(link, x) for x in n], t)
    link["_train_rms"] = rms
    link["_train_max"] = float(train.max())
    return link


def _medians(df: pd.DataFrame, keys) -> pd.DataFrame:
    return df.groupby(keys, dropna=False)["seconds"].median().reset_index()


def fit_links(raw: pd.DataFrame, max_knots: int = 3) -> tuple[dict, pd.DataFrame]:
    """Per kind: the link model and a table of held-out/train predictions."""
    s = raw[raw["suite"] == "sizes"]
    links, rows = {}, []
    for kind, g in s.groupby("kind"):
        med = _medians(g, ["nbytes", "split"])
        tr = med[med["split"] == "train"]
        ho = med[med["split"] == "heldout"]
        if len(tr) < 2:
            continue
        link = fit_link_curve(tr["nbytes"].to_numpy(), tr["seconds"].to_numpy(), max_knots=max_knots)
        tr_rms, tr_max = link.pop("_train_rms"), link.pop("_train_max")
        for _, r in med.iterrows():
            p = single_time(link, r["nbytes"])
            rows.append({"kind": kind, "nbytes": int(r["nbytes"]), "split": r["split"],
                         "measured_s": r["seconds"], "predicted_s": p,
                         "rel_err": abs(p - r["seconds"]) / r["seconds"]})
        ho_big = ho[ho["nbytes"] >= SCORE_MIN_BYTES]
        sc_big = score([single_time(link, x) for x in ho_big["nbytes"]], ho_big["seconds"])
        sc_all = score([single_time(link, x) for x in ho["nbytes"]], ho["seconds"])
        link["fit"] = {
            "mape": sc_big["mape"], "median_err": sc_big["median_err"], "max_err": sc_big["max_err"],
            "heldout_min_bytes": SCORE_MIN_BYTES,
            "mape_all_heldout": sc_all["mape"], "max_err_all_heldout": sc_all["max_err"],
            "train_rms_err": tr_rms, "train_max_err": tr_max,
            "n_train": int(len(tr)), "n_heldout": int(len(ho)),
            "sizes": f"{fmt_bytes(med['nbytes'].min())}..{fmt_bytes(med['nbytes'].max())}",
        }
        links[kind] = link
    return links, pd.DataFrame(rows)


# ------------------------------------------------------------- per message


def block_model(link: dict, m, b, per: float):
    m = np.asarray(m, float)
    b = np.asarray(b, float)
    t1 = np.array([single_time(link, x) for x in b])
    return t1 + (m - 1) * np.maximum(per, b / link["bandwidth_Bps"])


def fit_per_message(raw: pd.DataFrame, links: dict) -> pd.DataFrame:
    """Adds per_message_*_s to ``links`` in place; returns a prediction table."""
    bl = raw[(raw["suite"] == "blocks") & (raw["mode"] != "single") & (raw["n_messages"] > 1)]
    rows = []
    field = {"loop": "per_message_s", "batched": "per_message_batched_s", "graph": "per_message_graph_s"}
    for (kind, mode), g in bl.groupby(["kind", "mode"]):
        if kind not in links or mode not in field:
            continue
        link = links[kind]
        med = g.groupby(["n_messages", "block_bytes", "split"], dropna=False).agg(
            seconds=("seconds", "median"), method=("method", "first")).reset_index()
        tr = med[med["split"] == "train"]
        ho = med[med["split"] == "heldout"]
        if tr.empty:
            continue
        m, b, t = tr["n_messages"].to_numpy(), tr["block_bytes"].to_numpy(), tr["seconds"].to_numpy()

        def loss(p):
            return float(np.mean(rel_errors(block_model(link, m, b, p), t) ** 2))

        per, _ = search_1d(loss, 1e-9, 1e-2)
        link[field[mode]] = per
        if mode == "batched":
            link["batched_method"] = str(tr["method"].iloc[0])
        pf = link.setdefault("per_message_fit", {})
        s_ho = score(block_model(link, ho["n_messages"], ho["block_bytes"], per), ho["seconds"]) if len(ho) else score([], [])
        s_tr = score(block_model(link, m, b, per), t)
        pf[mode] = {"mape": s_ho["mape"], "max_err": s_ho["max_err"], "train_mape": s_tr["mape"],
                    "n_train": int(len(tr)), "n_heldout": int(len(ho)), "method": str(tr["method"].iloc[0])}
        for _, r in med.iterrows():
            p = float(block_model(link, [r["n_messages"]], [r["block_bytes"]], per)[0])
            rows.append({"kind": kind, "mode": mode, "method": r["method"], "n_messages": int(r["n_messages"]),
                         "block_bytes": int(r["block_bytes"]), "split": r["split"], "measured_s": r["seconds"],
                         "predicted_s": p, "rel_err": abs(p - r["seconds"]) / r["seconds"]})
    # single-mode block rows (one contiguous copy) as a cross-check of the size fit
    return pd.DataFrame(rows)


# ----------------------------------------------------------------- sharing


def _kind_split(kinds_str: str):
    return kinds_str.split("+")


def sharing_model(links, kinds_of_transfers, n, total):
    """Predicted makespan of transfers (kinds list) of n bytes each sharing ``total``.

    As the flow model shares links (max-min fair): every transfer is bounded by its own link
    alone (``t_kind(n)``), all k share ``total``, and the k_j transfers of one kind (one
    direction of a duplex group) also share that direction's own bandwidth
    (``links[kind].bandwidth_Bps``: the simulator's per-direction link, e.g. pcie_dn for H2D)::

        makespan = max(t_kind(n) for each kind,  lat + k*n/total,  lat + k_j*n/bw_j for each kind j)
    """
    ts = [single_time(links[k], n) for k in kinds_of_transfers]
    lat = max(links[k]["latency_s"] for k in kinds_of_transfers)
    k = len(kinds_of_transfers)
    t = max(max(ts), lat + k * n / total)
    kinds = set(kinds_of_transfers)
    if len(kinds) > 1:  # a duplex group: each direction is also its own link
        for kd in kinds:
            kj = kinds_of_transfers.count(kd)
            t = max(t, links[kd]["latency_s"] + kj * n / links[kd]["bandwidth_Bps"])
    return t


def fit_sharing(raw: pd.DataFrame, links: dict) -> tuple[dict, pd.DataFrame]:
    c = raw[raw["suite"] == "concurrency"]
    if c.empty:
        return {}, pd.DataFrame()
    ms = makespans(raw)
    out, rows = {}, []
    for gname, g in c.groupby("group"):
        # kinds of the k transfers, per (k, n): from transfer_idx order
        kinds_at = {}
        for (k, n), gg in g.groupby(["n_concurrent", "nbytes"]):
            first = gg[gg["trial"] == gg["trial"].iloc[0]].sort_values("transfer_idx")
            kinds_at[(k, n)] = list(first["kind"])
        if any(kd not in links for ks in kinds_at.values() for kd in ks):
            continue
        mg = ms[ms["group"] == gname].groupby(["n_concurrent", "nbytes", "split"]).agg(
            makespan_s=("makespan_s", "median"), aggregate_Bps=("aggregate_Bps", "median")).reset_index()
        tr_all = mg[(mg["split"] == "train") & (mg["n_concurrent"] >= 2)]
        ho_all = mg[mg["split"] == "heldout"]
        if tr_all.empty:
            continue
        big = tr_all["nbytes"] >= SHARE_MIN_BYTES
        # fit on the bandwidth regime when it has >= 2 training points, else on everything
        tr = tr_all[big] if big.sum() >= 2 else tr_all
        ho = ho_all[ho_all["nbytes"] >= SHARE_MIN_BYTES] if big.sum() >= 2 else ho_all

        def pred(df, total):
            return np.array([sharing_model(links, kinds_at[(r.n_concurrent, r.nbytes)], r.nbytes, total)
                             for r in df.itertuples()])

        def loss(total):
            return float(np.mean(rel_errors(pred(tr, total), tr["makespan_s"]) ** 2))

        lo = float(mg["aggregate_Bps"].min()) * 0.3
        hi = float(mg["aggregate_Bps"].max()) * 20
        total, _ = search_1d(loss, lo, hi)
        # binding = at the fitted total, the shared term sets the makespan somewhere
        def shared_binds(r):
            ks = kinds_at[(r.n_concurrent, r.nbytes)]
            t_alone = max(single_time(links[kd], r.nbytes) for kd in ks)
            lat = max(links[kd]["latency_s"] for kd in ks)
            return lat + len(ks) * r.nbytes / total > 1.02 * t_alone

        binding = any(shared_binds(r) for r in tr.itertuples())
        if not binding:
            total = float(mg["aggregate_Bps"].max())
        kinds = sorted({kd for ks in kinds_at.values() for kd in ks})
        directions = 2 if g["mode"].iloc[0] == "duplex" else 1
        s_ho = score(pred(ho, total), ho["makespan_s"]) if len(ho) else score([], [])
        s_ho_all = score(pred(ho_all, total), ho_all["makespan_s"]) if len(ho_all) else score([], [])
        s_tr = score(pred(tr, total), tr["makespan_s"])
        out[gname] = {"kinds": kinds, "directions": directions, "total_Bps": float(total), "binding": binding,
                      "fit": {"mape": s_ho["mape"], "median_err": s_ho["median_err"], "max_err": s_ho["max_err"],
                              "heldout_min_bytes": int(SHARE_MIN_BYTES) if tr is not tr_all else 0,
                              "mape_all_heldout": s_ho_all["mape"], "max_err_all_heldout": s_ho_all["max_err"],
                              "train_mape": s_tr["mape"],
                              "n_train": int(len(tr)), "n_heldout": int(len(ho)),
                              "levels": sorted(int(x) for x in mg["n_concurrent"].unique()),
                              "sizes": [int(x) for x in sorted(mg["nbytes"].unique())]}}
        for r, p in zip(mg.itertuples(), pred(mg, total)):
            rows.append({"group": gname, "n_concurrent": int(r.n_concurrent), "nbytes": int(r.nbytes),
                         "split": r.split, "measured_makespan_s": r.makespan_s, "predicted_makespan_s": p,
                         "measured_aggregate_Bps": r.aggregate_Bps,
                         "predicted_aggregate_Bps": r.n_concurrent * r.nbytes / p,
                         "rel_err": abs(p - r.makespan_s) / r.makespan_s})
    return out, pd.DataFrame(rows)


# ---------------------------------------------------------------- top level


def build_meta(metas: dict, source: str) -> dict:
    first = {}
    for m in metas.values():
        for k, v in m.items():
            first.setdefault(k, v)
    gpu = next((m.get("gpu") for m in metas.values() if m.get("gpu")), None)
    return {
        "source": source,
        "gpu": gpu,
        "driver": next((m.get("driver") for m in metas.values() if m.get("driver")), None),
        "torch": next((m.get("torch") for m in metas.values() if m.get("torch")), None),
        "cuda_runtime": next((m.get("cuda_runtime") for m in metas.values() if m.get("cuda_runtime")), None),
        "host": first.get("host"),
        "date": first.get("date"),
        "cpu": first.get("cpu"),
        "transports": sorted(metas),
    }


def fit_directory(d: str, source: str | None = None, max_knots: int = 3) -> tuple[dict, dict]:
    """Fit everything found in ``d``; return (profile, tables-for-reports)."""
    raw, metas, comp, unavailable = load_results(d)
    if raw.empty and comp is None:
        raise FileNotFoundError(f"no raw_*.parquet / raw_*.csv / compute_raw.* results in {d!r}")
    tables = {"raw": raw, "unavailable": unavailable, "metas": metas}
    profile = {"meta": build_meta(metas, source or f"measured with python -m dpsim.calibration run; fitted from {d}"),
               "links": {}, "sharing": {}}
    if not raw.empty:
        links, size_tab = fit_links(raw, max_knots=max_knots)
        block_tab = fit_per_message(raw, links)
        sharing, share_tab = fit_sharing(raw, links)
        for kind, link in links.items():
            tr = raw[(raw["kind"] == kind)]["transport"].iloc[0]
            m = next((m for m in metas.values() if m.get("transport") == tr), {})
            link["source"] = f"measured: {tr} transport, sizes suite, on {m.get('gpu') or m.get('cpu', '?')} ({m.get('host', '?')}, {m.get('date', '?')})"
        profile["links"] = links
        profile["sharing"] = sharing
        tables.update(sizes=size_tab, blocks=block_tab, sharing=share_tab, summary=summarize(raw),
                      makespans=makespans(raw))
    from .mixed import load_mixed, profile_entry

    mixed, mmeta = load_mixed(d)
    if mixed is not None and "file_write" in profile["links"]:
        # dpsim.calibration.mixed: reads with a stream of writes -> the storage write weight
        try:
            profile["links"]["file_write"].update(profile_entry(mixed, mmeta or {}))
        except ValueError as e:
            tables.setdefault("notes", []).append(f"storage write weight not fitted: {e}")
        tables["mixed"] = mixed
    if comp is not None and not comp.empty:
        from .compute import fit_compute

        cmeta = {}
        if "compute" in metas:
            cmeta = metas["compute"]
        profile["compute"], tables["compute"] = fit_compute(comp, cmeta)
        if not profile["meta"].get("gpu"):
            profile["meta"]["gpu"] = cmeta.get("gpu")
            profile["meta"]["torch"] = cmeta.get("torch")
    if not profile["links"]:
        profile["links"] = {}
    return profile, tables


def fit_summary_lines(profile: dict) -> list[str]:
    """Human-readable table of the fit (printed by the CLI)."""
    lines = [f"{'link':<14}{'latency':>11}{'bandwidth':>13}{'per-msg':>10}{'batched':>10}"
             f"{'heldout MAPE':>14}{'worst':>8}{'pieces':>7}"]
    for kind, L in profile.get("links", {}).items():
        f = L.get("fit", {})

        def us(x):
            return f"{x * 1e6:.2f}us" if x is not None else "-"

        lines.append(f"{kind:<14}{us(L['latency_s']):>11}{L['bandwidth_Bps'] / 1e9:>10.2f}GB/s"
                     f"{us(L.get('per_message_s')):>10}{us(L.get('per_message_batched_s')):>10}"
                     f"{(f['mape'] or 0) * 100 if f.get('mape') is not None else float('nan'):>13.1f}%"
                     f"{(f['max_err'] or 0) * 100 if f.get('max_err') is not None else float('nan'):>7.1f}%"
                     f"{len(L.get('pieces', [])) or 1:>7}")
    for kind, L in profile.get("links", {}).items():
        if "storage_weight" in L:
            f = L.get("storage_weight_fit") or {}
            h = (f.get("heldout") or {}).get("mape")
            h1 = (f.get("heldout_with_w1") or {}).get("mape")
            lines.append(f"storage write weight ({kind}): {L['storage_weight']:.3f} (fitted "
                         f"{f.get('w_fitted', float('nan')):.3f}); heldout MAPE "
                         f"{h * 100 if h is not None else float('nan'):.1f}% (w = 1: "
                         f"{h1 * 100 if h1 is not None else float('nan'):.1f}%)")
    for name, S in profile.get("sharing", {}).items():
        f = S.get("fit", {})
        m = f.get("mape")
        lines.append(f"sharing {name:<22} total {S['total_Bps'] / 1e9:8.2f} GB/s  binding={S.get('binding')}  "
                     f"heldout MAPE {m * 100 if m is not None else float('nan'):.1f}%")
    comp = profile.get("compute") or {}
    for dt, g in (comp.get("gemm") or {}).items():
        f = g.get("fit", {})
        lines.append(f"gemm {dt}: {g['flops_per_s'] / 1e12:.0f} TFLOP/s, {g['mem_Bps'] / 1e9:.0f} GB/s, "
                     f"overhead {g['overhead_s'] * 1e6:.1f} us, heldout MAPE "
                     f"{(f.get('mape') or float('nan')) * 100:.1f}%")
    a = comp.get("attention")
    if a:
        f = a.get("fit", {})
        lines.append(f"attention ({a.get('backend')}): {1 / a['b_s_per_flop'] / 1e12 if a['b_s_per_flop'] else float('inf'):.0f}"
                     f" TFLOP/s effective, heldout MAPE {(f.get('mape') or float('nan')) * 100:.1f}%")
    return lines
