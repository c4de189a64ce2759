"""The fitting code on synthetic data with known parameters."""
import numpy as np
import pandas as pd
import pytest

from dpsim.calibration.compute import fit_attention, fit_gemm
from dpsim.calibration.fit import fit_link_curve, fit_per_message, fit_sharing
from dpsim.calibration.numerics import nelder_mead, nnls, search_1d
from dpsim.calibration.profile import single_time, transfer_time
from dpsim.calibration.suites import size_grid

SIZES = [2**k for k in range(12, 31)]


def test_size_grid_heldout_between_powers():
    g = size_grid(4096, 1 << 30)
    train = [n for n, s in g if s == "train"]
    held = [n for n, s in g if s == "heldout"]
    assert train == SIZES
    assert held and all(n % 4096 == 0 for n in held)
    assert not set(train) & set(held)


@pytest.mark.parametrize("lat,bw", [(8e-6, 55e9), (2e-5, 1.5e12), (1e-4, 1.8e9), (3e-7, 25e9)])
def test_recovers_latency_and_bandwidth_within_1pct(lat, bw):
    n = np.array(SIZES, float)
    t = lat + n / bw
    L = fit_link_curve(n, t)
    assert L["latency_s"] == pytest.approx(lat, rel=0.01)
    assert L["bandwidth_Bps"] == pytest.approx(bw, rel=0.01)
    assert "pieces" not in L  # a line needs no knots


def test_recovers_with_noise():
    rng = np.random.default_rng(1)
    n = np.array(SIZES, float)
    t = (1e-5 + n / 50e9) * (1 + rng.normal(0, 0.002, n.size))
    L = fit_link_curve(n, t)
    assert L["latency_s"] == pytest.approx(1e-5, rel=0.01)
    assert L["bandwidth_Bps"] == pytest.approx(50e9, rel=0.01)


def test_piecewise_when_the_data_says_so():
    # 20 GB/s up to 1 MiB, then 55 GB/s (continuous)
    n = np.array(SIZES, float)
    k = float(1 << 20)
    t = 5e-6 + np.minimum(n, k) / 20e9 + np.maximum(n - k, 0) / 55e9
    L = fit_link_curve(n, t)
    assert "pieces" in L and len(L["pieces"]) >= 2
    assert L["bandwidth_Bps"] == pytest.approx(55e9, rel=0.01)
    assert L["latency_s"] == pytest.approx(5e-6, rel=0.01)
    for x in (3 << 16, 3 << 20, 3 << 26):  # off-grid sizes
        want = 5e-6 + min(x, k) / 20e9 + max(x - k, 0) / 55e9
        assert single_time(L, x) == pytest.approx(want, rel=0.01)


def _blocks_df(link, per, kind="h2d", mode="loop"):
    rows = []
    for b in (4096, 16384, 65536, 262144):
        for m in (8, 61, 256, 1024):
            t1 = single_time(link, b)
            T = t1 + (m - 1) * max(per, b / link["bandwidth_Bps"])
            rows.append(dict(suite="blocks", kind=kind, mode=mode, method="x", n_messages=m, block_bytes=b,
                             nbytes=m * b, split="heldout" if m == 256 else "train", seconds=T))
    return pd.DataFrame(rows)


def test_per_message_recovered():
    link = {"latency_s": 9e-6, "bandwidth_Bps": 55e9}
    links = {"h2d": dict(link)}
    df = pd.concat([_blocks_df(link, 7.6e-6), _blocks_df(link, 1.3e-6, mode="batched")])
    tab = fit_per_message(df, links)
    assert links["h2d"]["per_message_s"] == pytest.approx(7.6e-6, rel=0.01)
    assert links["h2d"]["per_message_batched_s"] == pytest.approx(1.3e-6, rel=0.01)
    assert links["h2d"]["per_message_fit"]["loop"]["mape"] < 0.01
    assert (tab["rel_err"] < 0.01).all()
    # and the profile formula reproduces the C3-style number
    prof = {"links": links}
    t = transfer_time(prof, "h2d", 4096 * 65536, n_messages=4096)
    assert 4096 * 65536 / t / 1e9 == pytest.approx(8.6, rel=0.05)


def test_sharing_total_recovered():
    link = {"latency_s": 1e-5, "bandwidth_Bps": 55e9}
    links = {"h2d": dict(link), "d2h": dict(link)}
    total = 87e9
    rows = []
    for k in (2, 3, 4, 6, 8):
        for n in (1 << 20, 16 << 20, 64 << 20):
            ks = ["h2d", "d2h"] * k
            ks = ks[:k]
            # the flow model's law: the shared total, and each direction its own 55 GB/s link
            per_dir = max(ks.count(d) for d in ("h2d", "d2h"))
            mk = max(single_time(link, n), 1e-5 + k * n / total, 1e-5 + per_dir * n / 55e9)
            for trial in range(3):
                for i, kd in enumerate(ks):
                    rows.append(dict(transport="cuda", suite="concurrency", group="h2d+d2h", mode="duplex",
                                     kind=kd, n_concurrent=k, nbytes=n, transfer_idx=i, trial=trial,
                                     seconds=mk, split="heldout" if k in (3, 6) else "train"))
    sh, tab = fit_sharing(pd.DataFrame(rows), links)
    g = sh["h2d+d2h"]
    assert g["total_Bps"] == pytest.approx(total, rel=0.01)
    assert g["directions"] == 2 and g["binding"]
    assert g["fit"]["mape"] < 0.01


def test_nnls_and_nelder_mead():
    rng = np.random.default_rng(0)
    A = rng.random((30, 4))
    x = np.array([1.0, 0.0, 2.0, 0.5])
    got = nnls(A, A @ x)
    assert np.allclose(got, x, atol=1e-8)
    got = nnls(A, A @ np.array([1.0, -3.0, 0.0, 0.0]))
    assert (got >= 0).all()
    p, v = nelder_mead(lambda z: float(((z - np.array([1.0, -2.0])) ** 2).sum()), [0.0, 0.0], iters=500)
    assert np.allclose(p, [1, -2], atol=1e-3)
    x, _ = search_1d(lambda q: (np.log(q) - np.log(3e-6)) ** 2, 1e-9, 1e-2)
    assert x == pytest.approx(3e-6, rel=1e-3)


def test_gemm_roofline_recovered():
    rows = []
    c0, F, B = 3e-6, 750e12, 2.8e12
    for (N, K) in ((5120, 5120), (27648, 5120)):
        for M in (1, 4, 16, 48, 64, 256, 384, 1024, 3072, 4096, 16384):
            fl = 2.0 * M * N * K
            by = (M * K + N * K) * 2 + M * N * 2
            rows.append(dict(op="gemm", dtype="bf16", M=M, N=N, K=K, flops=fl, bytes=by,
                             median_s=c0 + max(fl / F, by / B), split="heldout" if M in (48, 384, 3072) else "train"))
    g = fit_gemm(pd.DataFrame(rows))
    assert g["flops_per_s"] == pytest.approx(F, rel=0.02)
    assert g["mem_Bps"] == pytest.approx(B, rel=0.02)
    assert g["fit"]["mape"] < 0.02


def test_attention_fit_recovered():
    H, D = 32, 128
    a, b, c = 6e-6, 1 / 400e12, 2e-8
    rows = []
    for cached in (0, 1024, 4096, 16384, 65536):
        for new in (1, 64, 256, 1024, 4096):
            fl = 4.0 * H * D * new * (cached + new / 2)
            kv = 4.0 * H * D * (cached + new)
            rows.append(dict(op="attention", cached=cached, new=new, heads=H, head_dim=D, flops=fl, bytes=kv,
                             median_s=a + b * fl + c * new + kv / 3e12,
                             split="heldout" if cached == 4096 else "train"))
    at = fit_attention(pd.DataFrame(rows), {})
    assert at["b_s_per_flop"] == pytest.approx(b, rel=0.02)
    assert at["fit"]["mape"] < 0.02
