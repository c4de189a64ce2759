"""calibration/layers.py (per-layer compute tables) on the CPU path at tiny shapes, and the
interpolation code of calibration/layers_report.py."""
from __future__ import annotations

import csv
import json
import math
import os

import pytest

torch = pytest.importorskip("torch")
yaml = pytest.importorskip("yaml")

from dpsim.calibration import layers, layers_report  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_models_match_yaml():
    for m, spec in layers.MODELS.items():
        y = yaml.safe_load(open(os.path.join(ROOT, "dpsim", "conf", "model", f"{m}.yaml")))
        assert spec["hidden"] == y["hidden"] and spec["n_heads"] == y["n_heads"]
        assert spec["vocab"] == y["vocab_size"] and spec["dense_inter"] == y["dense_intermediate"]
        assert spec["gemm_dtype"] == y["gemm_dtype"]
        if spec["kind"] == "dsa":
            mla, sp, moe, par = y["mla"], y["sparse"], y["moe"], y["parallel"]
            assert (spec["q_lora"], spec["kv_lora"], spec["rope"], spec["nope"], spec["v_dim"]) == (
                mla["q_lora_rank"], mla["kv_lora_rank"], mla["qk_rope_dim"], mla["qk_nope_dim"], mla["v_head_dim"])
            assert (spec["topk"], spec["idx_heads"], spec["idx_dim"]) == (
                sp["topk"], sp["indexer_heads"], sp["indexer_dim"])
            assert (spec["n_routed"], spec["top_k"], spec["n_shared"], spec["moe_inter"]) == (
                moe["n_routed_experts"], moe["n_active_experts"], moe["n_shared_experts"], moe["moe_intermediate"])
            assert (spec["ep_prefill"], spec["ep_decode"]) == (par["ep_size_prefill"], par["ep_size_decode"])
        else:
            assert y["attention"] == "gqa"
            assert (spec["n_kv_heads"], spec["head_dim"]) == (y["gqa"]["n_kv_heads"], y["gqa"]["head_dim"])


def test_numerics_against_float64_cpu():
    ops = layers.Ops(torch, "cpu")
    res = layers.run_checks(torch, ops, log=lambda s: None)
    assert res["failed"] == [], res
    for k in ("linear_bf16", "mlp_bf16", "indexer_prefill_bf16", "sparse_attn_prefill", "indexer_decode",
              "sparse_attn_decode"):
        assert 0 <= res[k] < layers.TOL["bf16"], (k, res[k])
    assert 0 <= res["indexer_topk_gap_bf16"] < 1e-2 and 0 <= res["indexer_decode_topk_gap"] < 1e-2
    assert res["qwen_prefill_impl"] and res["qwen_decode_impl"]
    assert ops.fp8 is None and "fp8 skipped" in ops.fp8_note  # CPU: no fp8, with a clear note


def test_indexer_causal_mask_and_topk_semantics():
    ops = layers.Ops(torch, "cpu")
    new, cached, hi, d, k = 8, 5, 2, 16, 4
    L = cached + new
    q = torch.randn(new, hi, d, dtype=torch.float64)
    kc = torch.randn(16, d, dtype=torch.float64)
    w = torch.rand(new, hi, dtype=torch.float64)
    sc = ops.indexer_scores(q, kc, w, cached)
    for i in range(new):
        assert torch.isneginf(sc[i, cached + i + 1:]).all() and torch.isfinite(sc[i, :cached + i + 1]).all()
    idx = torch.empty(new, k, dtype=torch.long)
    ops.indexer_prefill(q, kc, w, cached, k, idx, chunk=3)
    assert int(idx.max()) < L
    for i in range(new):  # every selected key is visible to its query
        assert int(idx[i].max()) <= cached + i


def test_cpu_run_writes_schema(tmp_path, monkeypatch):
    monkeypatch.setattr(layers, "CPU_QUICK", dict(
        prefill_cached=[0, 32], prefill_new=[16], prefill_heldout=[(16, 16)],
        decode_batch=[1, 2], decode_ctx=[32], decode_heldout=[(1, 48)],
        gemm_tokens=[1, 4], gemm_heldout=[2]))
    monkeypatch.setattr(layers, "MODELS", {m: layers.MODELS[m] for m in ("ds27b", "qwen32b")})
    monkeypatch.setattr(layers, "OPS", ["attn_proj", "moe"])
    meta = layers.run_layers(str(tmp_path), quick=True, device="cpu", deadline_s=600, trials=5,
                             log=lambda s: None)
    out = tmp_path / "cpu"
    expect = {"prefill_attn.csv": layers.SCHEMA_COLS["prefill_attn.csv"],
              "decode_attn.csv": layers.SCHEMA_COLS["decode_attn.csv"],
              "gemm.csv": layers.SCHEMA_COLS["gemm.csv"]}
    assert expect["prefill_attn.csv"] == ["model", "component", "cached", "new", "split", "seconds"]
    assert expect["decode_attn.csv"] == ["model", "component", "batch", "ctx", "split", "seconds"]
    assert expect["gemm.csv"] == ["model", "op", "dtype", "tokens", "split", "seconds"]
    for name, cols in expect.items():
        rows = list(csv.reader(open(out / name)))
        assert rows[0] == cols
        assert len(rows) > 1, name
        for r in rows[1:]:
            assert r[cols.index("split")] in ("train", "heldout")
            assert float(r[-1]) > 0
    pre = list(csv.DictReader(open(out / "prefill_attn.csv")))
    assert {(r["model"], r["component"]) for r in pre} == {("ds27b", "indexer"), ("ds27b", "attn"),
                                                          ("qwen32b", "attn")}
    assert any(r["split"] == "heldout" for r in pre)
    gem = list(csv.DictReader(open(out / "gemm.csv")))
    assert {r["dtype"] for r in gem} == {"bf16"}  # no fp8 on the CPU
    assert not any(r["model"] == "qwen32b" and r["op"] == "moe" for r in gem)
    m = json.load(open(out / "meta.json"))
    assert m["gpu_tag"] == "cpu" and m["trials"] >= 5 and "fp8 skipped" in m["fp8_note"]
    assert m["checks"]["failed"] == [] and meta["errors"] == []


def test_topk_gap_metric():
    ref = torch.tensor([[5.0, 4.0, 3.0, 2.0, -1.0], [1.0, 0.5, float("-inf"), float("-inf"), float("-inf")]],
                       dtype=torch.float64)
    best = torch.tensor([[0, 1], [0, 1]])
    assert layers.topk_gap(torch, ref, best, 2) == 0.0
    swap = torch.tensor([[0, 2], [1, 0]])  # row 0 picks 3 instead of 4: gap (4 - 3) / 5
    assert layers.topk_gap(torch, ref, swap, 2) == pytest.approx(0.2)
    masked = torch.tensor([[0, 1], [0, 2]])  # row 1 picks a masked key while a visible one is left
    assert math.isinf(layers.topk_gap(torch, ref, masked, 2))


def test_gpu_tag():
    assert layers.gpu_tag("NVIDIA H100 80GB HBM3") == "h100"
    assert layers.gpu_tag("NVIDIA H200") == "h200"


def test_interp1_loglog_exact_on_power_law():
    xs = [1, 2, 4, 8, 16, 32]
    f = lambda x: 3e-6 * x ** 0.8  # noqa: E731
    for x in (1.5, 3, 5, 24, 32, 1):
        assert layers_report.interp1_loglog(xs, [f(v) for v in xs], x) == pytest.approx(f(x), rel=1e-12)
    assert math.isnan(layers_report.interp1_loglog(xs, [f(v) for v in xs], 64))


def test_interp2_and_heldout_errors_on_closed_form():
    pd = pytest.importorskip("pandas")
    off = layers_report.CACHED_OFFSET
    f = lambda c, n: 2e-7 * (c + off) ** 0.6 * n ** 1.3  # noqa: E731  (bilinear in log-log: exact)
    rows = [dict(model="m", component="attn", cached=c, new=n, split="train", seconds=f(c, n))
            for c in (0, 1024, 4096, 16384) for n in (128, 512, 2048)]
    held = [(0, 256), (3072, 1000), (16384, 2048), (8000, 300)]
    rows += [dict(model="m", component="attn", cached=c, new=n, split="heldout", seconds=f(c, n)) for c, n in held]
    rows += [dict(model="m", component="attn", cached=99999, new=256, split="heldout", seconds=1.0)]  # outside
    df = pd.DataFrame(rows)
    err = layers_report.heldout_errors(df, ["model", "component"], ["cached", "new"], [off, 0.0])
    inside = err[err["cached"] != 99999]
    assert len(inside) == len(held)
    assert inside["rel_err"].max() < 1e-9
    assert math.isnan(err[err["cached"] == 99999]["rel_err"].iloc[0])
    s = layers_report.summarize_errors(err, ["model", "component"])
    assert int(s["n"].iloc[0]) == len(held) and s["max_err"].iloc[0] < 1e-9
    # a non-power-law surface gives a positive, known error: t = a + b*n*(c+n/2) (attention-like)
    g = lambda c, n: 1e-5 + 1e-12 * n * (c + n / 2)  # noqa: E731
    df2 = df.assign(seconds=[g(c, n) for c, n in zip(df["cached"], df["new"])])
    e2 = layers_report.heldout_errors(df2[df2["cached"] != 99999], ["model", "component"], ["cached", "new"],
                                      [off, 0.0])
    assert 0 < e2["rel_err"].max() < 0.5
    # a missing corner makes a point not interpolable
    pts = {(a, b): 1.0 for a in (1, 2) for b in (1, 2)}
    del pts[(2, 2)]
    assert math.isnan(layers_report.interp2_loglog(pts, 1.5, 1.5))


def test_report_builds_from_cpu_tables(tmp_path, monkeypatch):
    pd = pytest.importorskip("pandas")
    d = tmp_path / "t"
    d.mkdir()
    rows = []
    for m in ("ds27b",):
        for c in (0, 1024, 4096):
            for n in (128, 512):
                for comp in ("attn", "indexer"):
                    rows.append(dict(model=m, component=comp, cached=c, new=n, split="train",
                                     seconds=1e-5 + 1e-12 * n * (c + n)))
        rows.append(dict(model=m, component="attn", cached=2048, new=256, split="heldout", seconds=1e-5))
    pd.DataFrame(rows).to_csv(d / "prefill_attn.csv", index=False)
    rows = [dict(model="ds27b", component="attn", batch=b, ctx=c, split="train", seconds=1e-5 + 1e-11 * b * c)
            for b in (1, 4, 64) for c in (1024, 4096, 65536)]
    pd.DataFrame(rows).to_csv(d / "decode_attn.csv", index=False)
    rows = [dict(model="ds27b", op="moe", dtype="fp8", tokens=t, split="train", seconds=1e-5 + 1e-9 * t)
            for t in (1, 4, 16, 64, 256, 1024, 4096)]
    rows.append(dict(model="ds27b", op="moe", dtype="fp8", tokens=48, split="heldout", seconds=1e-5 + 48e-9))
    pd.DataFrame(rows).to_csv(d / "gemm.csv", index=False)
    json.dump({"device": "test"}, open(d / "meta.json", "w"))
    text = layers_report.build(str(d), str(tmp_path / "rep"))
    assert "Held-out interpolation error" in text and "sat_tokens" in text
    gs = pd.read_csv(tmp_path / "rep" / "gemm_slopes.csv")
    assert gs["sat_tokens"].iloc[0] == pytest.approx(1e-5 / 1e-9 + 1, rel=0.05)  # knee = t(1) / slope
