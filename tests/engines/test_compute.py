"""Tests of the per-engine compute model (dpsim/engines/compute.py, models.py, conf/model, conf/gpu)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from dpsim.engines.compute import ComputeModel, KNOB_KEYS, LEVEL_KEYS, attn_work, attn_work_dense, attn_work_sparse
from dpsim.engines.models import ModelShape

CONF = Path(__file__).resolve().parents[2] / "dpsim" / "conf"
MODELS = ("ds660b", "ds27b", "qwen32b")


def load(group: str, name: str) -> dict:
    return yaml.safe_load((CONF / group / f"{name}.yaml").read_text())


@pytest.fixture(scope="module")
def gpu() -> dict:
    return load("gpu", "h800")


@pytest.fixture(scope="module")
def cms(gpu) -> dict[str, ComputeModel]:
    """The analytic models (compute_tables: null): the reference these tests pin down.  Table
    mode (the default configs) is tested in tests/test_compute_tables.py."""
    out = {}
    for n in MODELS:
        m = load("model", n)
        m["compute_tables"] = None
        out[n] = ComputeModel(m, gpu, m["knobs"])
    return out


def test_default_configs_use_measured_tables(gpu):
    for n in MODELS:
        m = load("model", n)
        assert m["compute_tables"] and m["compute_tables_model"] == n
        cm = ComputeModel(m, gpu)
        assert cm.mode == "tables" and cm.decode_fit_max_err < 0.2
        t0, ts, tt = cm.decode_coeffs()
        assert t0 > 0 and ts > 0 and tt > 0


# ------------------------------------------------------------------ KV bytes / derivations
def test_kv_bytes_ds660b_matches_spec(cms):
    m = load("model", "ds660b")
    mla, sp = m["mla"], m["sparse"]
    latent = mla["kv_lora_rank"] * 1 + (mla["kv_lora_rank"] // 128) * 4 + mla["qk_rope_dim"] * 2
    indexer = sp["indexer_dim"] * 1 + 4
    assert (latent, indexer) == (656, 132)  # §S9: ~656 B latent+rope, ~132 B indexer key
    assert cms["ds660b"].kv_bytes_per_token == 61 * (656 + 132) == 48068
    assert 47_000 <= cms["ds660b"].kv_bytes_per_token <= 49_000  # "~48 KB in FP8"


def test_kv_bytes_ds27b_and_qwen(cms):
    m = load("model", "ds27b")
    latent = m["mla"]["kv_lora_rank"] + m["mla"]["kv_lora_rank"] // 128 * 4 + m["mla"]["qk_rope_dim"] * 2
    assert cms["ds27b"].kv_bytes_per_token == 30 * (latent + m["sparse"]["indexer_dim"] + 4) == 21720
    q = load("model", "qwen32b")
    assert cms["qwen32b"].kv_bytes_per_token == 64 * q["gqa"]["n_kv_heads"] * q["gqa"]["head_dim"] * 2 * 2
    assert cms["qwen32b"].kv_bytes_per_token == 256 * 1024


@pytest.mark.parametrize("name,total,active", [("ds660b", 671e9, 37e9), ("ds27b", 27e9, None), ("qwen32b", 32.5e9, None)])
def test_param_counts(name, total, active):
    s = ModelShape.from_config(load("model", name))
    assert s.total_params == pytest.approx(total, rel=0.02)
    if active:
        assert s.active_params - s.embed_params == pytest.approx(active, rel=0.03)


def test_hbm_and_ep_accounting(cms, gpu):
    for n, cm in cms.items():
        m = load("model", n)
        assert cm.hbm_kv_bytes == int(gpu["hbm_bytes"] - cm.weight_bytes_per_gpu_decode - m["hbm_reserved_bytes"])
        assert cm.hbm_kv_bytes > 0 and isinstance(cm.hbm_kv_bytes, int)
        assert cm.n_layers == m["n_layers"]
        assert cm.ep_bytes_per_token_layer == pytest.approx(m["ep_bytes_per_token_layer"])
    assert cms["qwen32b"].ep_bytes_per_token_layer == 0.0
    assert cms["ds27b"].ep_cnic_bytes_per_token_layer_decode == 0.0  # EP inside one node
    ds = cms["ds660b"]
    assert ds.ep_cnic_bytes_per_token_layer_decode == pytest.approx(ds.ep_bytes_per_token_layer * (1 - 8 / 32))
    # Qwen: FP8 linear weights (31.2 GB) + BF16 embeddings (3.1 GB) and a 2 GiB reserve leave
    # 85.52 - 34.32 - 2.15 = 49.05 GB for KV
    q = cms["qwen32b"]
    assert q.weight_bytes_per_gpu_decode == pytest.approx(34.32e9, rel=0.01)
    assert q.hbm_kv_bytes == pytest.approx(q.hbm_bytes - q.weight_bytes_per_gpu_decode - 2 * 2**30, rel=1e-9)
    assert q.hbm_bytes == pytest.approx(85.52e9, rel=1e-3)


# ------------------------------------------------------------------ attention work
def _brute_pairs(cached: int, new: int, topk: int | None) -> int:
    return sum(min(cached + i, topk) if topk else cached + i for i in range(1, new + 1))


@pytest.mark.parametrize("cached,new", [(0, 1), (0, 500), (1000, 300), (1900, 300), (30000, 300), (100, 5000)])
def test_attn_work_forms(cached, new):
    topk = 2048
    assert attn_work(cached, new) == attn_work_dense(cached, new) == new * (cached + new / 2)
    d, s = attn_work_dense(cached, new), attn_work_sparse(cached, new, topk)
    assert s <= d + 1e-9
    assert s <= new * topk + 1e-9
    # continuous forms are within new/2 (+ the cap's half-step) of the exact integer sums
    assert abs(d - _brute_pairs(cached, new, None)) <= new / 2 + 1
    assert abs(s - _brute_pairs(cached, new, topk)) <= new / 2 + 1
    if cached >= topk:
        assert s == new * topk
    if cached + new <= topk:
        assert s == pytest.approx(d)


def test_sparse_attention_caps_work(cms):
    ds = cms["ds660b"]
    # attention pairs stop growing with context beyond top-k; only the cheap indexer term grows
    w1, w2 = ds.attn_work(30_000, 300), ds.attn_work(60_000, 300)
    dense_growth = attn_work_dense(60_000, 300) - attn_work_dense(30_000, 300)
    assert 0 < w2 - w1 < 0.1 * dense_growth
    assert ds.attn_work(10, 100) == pytest.approx(attn_work_dense(10, 100) * (1 + ds._idx_rel))
    # dense model: work grows linearly with context
    q = cms["qwen32b"]
    assert q.attn_work(60_000, 300) - q.attn_work(30_000, 300) == pytest.approx(dense_growth)


# ------------------------------------------------------------------ monotonicity
@pytest.mark.parametrize("name", MODELS)
def test_prefill_monotone(cms, name):
    cm = cms[name]
    prev = 0.0
    for b in (1, 2, 3, 5, 10, 20, 50):
        t = cm.prefill_time(300 * b, b * cm.attn_work(30_000, 300), b)
        assert t > prev
        prev = t
    prev = 0.0
    for ctx in (0, 1000, 4000, 16000, 64000):
        t = cm.prefill_time(500, cm.attn_work(ctx, 500), 1)
        assert t >= prev
        prev = t
    assert cm.prefill_time(0, 0.0, 0) == 0.0
    lay = cm.attention_time_layer(300, cm.attn_work(30_000, 300), 1)
    fwd = cm.attention_time_forward(300, cm.attn_work(30_000, 300), 1)
    assert cm.attention_time(300, cm.attn_work(30_000, 300), 1) == lay
    assert fwd == pytest.approx(lay * cm.n_layers) and 0 < fwd < cm.prefill_time(300, cm.attn_work(30_000, 300), 1)
    assert cm.attention_work_for_time(fwd) == pytest.approx(cm.attn_work(30_000, 300))


@pytest.mark.parametrize("name", MODELS)
def test_decode_monotone_and_positive(cms, name):
    t0, ts, tt = cms[name].decode_coeffs()
    assert t0 > 0 and ts > 0 and tt > 0
    cm = cms[name]
    assert cm.decode_step_time(2, 1000) > cm.decode_step_time(1, 1000)
    assert cm.decode_step_time(2, 2000) > cm.decode_step_time(2, 1000)
    assert cm.decode_ctx_cap is None


# ------------------------------------------------------------------ decode affinity
@pytest.mark.parametrize("name", MODELS)
def test_decode_closed_form_matches_brute_force(cms, name):
    cm = cms[name]
    ctxs0 = [3000, 17000, 40000, 2500, 64000]  # all >= top-k: the affine fold is exact
    steps = 257
    brute = 0.0
    ctxs = list(ctxs0)
    for _ in range(steps):
        brute += cm.decode_step_time_exact(ctxs)
        ctxs = [c + 1 for c in ctxs]
    closed = cm.decode_time(len(ctxs0), sum(ctxs0), steps)
    assert closed == pytest.approx(brute, rel=1e-9)
    # inverse
    k = cm.decode_steps_within(len(ctxs0), sum(ctxs0), closed)
    assert k == steps
    assert cm.decode_steps_within(len(ctxs0), sum(ctxs0), closed * 0.999) == steps - 1


def test_decode_sparse_fold_bounded_error(cms):
    cm = cms["ds660b"]
    t0, ts, tt, tc, cap = cm.decode_coeffs_split()
    assert cap == 2048 and tc > 0
    short = [100, 500]
    exact = cm.decode_step_time_exact(short)
    affine = cm.decode_step_time(len(short), sum(short))
    assert affine >= exact
    assert affine - exact <= len(short) * cap * tc + 1e-12


# ------------------------------------------------------------------ C2 after the fit
def test_c2_reproduced_within_10pct(gpu):
    """The default configs (table mode, the fitted levels) reproduce C2."""
    from dpsim.calibration import fit_compute_c2 as F

    cms = {n: ComputeModel(load("model", n), gpu) for n in MODELS}

    ratios = F.motivation_ratios(cms["ds660b"])
    for b, want in F.MOTIVATION.items():
        assert ratios[b] == pytest.approx(want, rel=0.10), b
    for n, want in F.TPOT_LOW_LOAD.items():
        assert F.tpot_low_load(cms[n]) == pytest.approx(want, rel=0.10), n
    v3m = F.v3_variant(load("model", "ds660b"))
    v3 = ComputeModel(v3m, gpu, v3m["knobs"])
    assert F.prod_prefill_node(v3, 4096) == pytest.approx(F.DS_PREFILL_INPUT_TOK_S_NODE, rel=0.10)
    assert F.prod_decode_node(v3, 4096) == pytest.approx(F.DS_DECODE_TOK_S_NODE, rel=0.10)
    # "compute saturates near 3K new tokens per batch": 10 requests within 5% of 20
    assert ratios[10] > 0.95 * ratios[20]


def test_knobs_shared_and_fitted_in_yaml():
    fitted = ("prefill_sys_eff", "prefill_sat_tokens", "prefill_sat_sharpness", "decode_sys_eff")
    ks = [load("model", n)["knobs"] for n in MODELS]
    for k in fitted:
        assert ks[0][k] == ks[1][k] == ks[2][k]
    for k in ks:
        assert set(k) == set(KNOB_KEYS) | set(LEVEL_KEYS)
    for k in ("prefill_level", "decode_level"):  # table-mode levels fitted to C2: shared by the DeepSeek models
        assert ks[0][k] == ks[1][k]
        assert ks[2][k] == 1.0  # Qwen: its tables at face value (assumption, qwen32b.yaml)
    text = (CONF / "model" / "ds660b.yaml").read_text()
    assert "fitted to C2 by calibration/fit_compute_c2.py" in text


# ------------------------------------------------------------------ bad configs
def _mk(gpu, name="ds660b", mutate=None, knob_mutate=None):
    m = copy.deepcopy(load("model", name))
    if mutate:
        mutate(m)
    kn = dict(m["knobs"])
    if knob_mutate:
        knob_mutate(kn)
    return ComputeModel(m, gpu, kn)


@pytest.mark.parametrize(
    "mutate,key",
    [
        (lambda m: m.pop("n_layers"), "n_layers"),
        (lambda m: m.__setitem__("hidden", -7168), "hidden"),
        (lambda m: m["moe"].pop("n_routed_experts"), "moe.n_routed_experts"),
        (lambda m: m["mla"].__setitem__("kv_lora_rank", 0), "mla.kv_lora_rank"),
        (lambda m: m["sparse"].__setitem__("topk", -1), "sparse.topk"),
        (lambda m: m.__setitem__("hbm_reserved_bytes", -1), "hbm_reserved_bytes"),
        (lambda m: m.__setitem__("kv_bytes_per_token", 64 * 1024), "kv_bytes_per_token"),
        (lambda m: m.__setitem__("attention", "mha"), "attention"),
        (lambda m: m["parallel"].__setitem__("ep_size_decode", 8), "parallel.ep_size_decode"),  # 100 GB > HBM
        (lambda m: m.__setitem__("n_layers", "61"), "n_layers"),
        (lambda m: m.__setitem__("ep_bytes_per_token_layer", 1.0), "ep_bytes_per_token_layer"),
    ],
)
def test_bad_model_config_names_key(gpu, mutate, key):
    with pytest.raises(ValueError, match=f"'{key}'"):
        _mk(gpu, mutate=mutate)


@pytest.mark.parametrize(
    "knob_mutate,key",
    [
        (lambda k: k.pop("gemm_eff"), "gemm_eff"),
        (lambda k: k.__setitem__("hbm_bw_eff", -0.5), "hbm_bw_eff"),
        (lambda k: k.__setitem__("prefill_sys_eff", 1.5), "prefill_sys_eff"),
        (lambda k: k.__setitem__("decode_ep_layer_latency_s", -1e-4), "decode_ep_layer_latency_s"),
        (lambda k: k.__setitem__("ep_overlap", True), "ep_overlap"),
    ],
)
def test_bad_knobs_name_key(gpu, knob_mutate, key):
    with pytest.raises(ValueError, match=f"'{key}'"):
        _mk(gpu, knob_mutate=knob_mutate)


def test_bad_gpu_config_names_key(gpu):
    m = load("model", "ds27b")
    g = dict(gpu)
    g.pop("hbm_bw_bytes_per_s")
    with pytest.raises(ValueError, match="'hbm_bw_bytes_per_s'"):
        ComputeModel(m, g, m["knobs"])
    g = dict(gpu, peak_flops_fp8=-1.0)
    with pytest.raises(ValueError, match="'peak_flops_fp8'"):
        ComputeModel(m, g, m["knobs"])


def test_omegaconf_input(gpu):
    from omegaconf import OmegaConf

    m = OmegaConf.load(CONF / "model" / "ds660b.yaml")
    g = OmegaConf.load(CONF / "gpu" / "h800.yaml")
    cm = ComputeModel(m, g, m.knobs)
    ref = ComputeModel(load("model", "ds660b"), gpu, load("model", "ds660b")["knobs"])
    assert cm.decode_coeffs() == ref.decode_coeffs()
    assert ComputeModel(m, g).hbm_kv_bytes == ref.hbm_kv_bytes  # knobs default to model.knobs


def test_other_gpus_load():
    m = load("model", "ds660b")
    for g in ("h100", "h200"):
        ComputeModel(m, load("gpu", g), m["knobs"])
    # on H200 (141 GB) DS 660B fits with EP = one node
    m8 = copy.deepcopy(m)
    m8["parallel"]["ep_size_decode"] = m8["parallel"]["ep_size_prefill"] = 8
    assert ComputeModel(m8, load("gpu", "h200"), m["knobs"]).hbm_kv_bytes > 0


def test_hot_path_is_pure_arithmetic(cms):
    """The per-batch calls the simulation makes millions of times are cached arithmetic: no
    config look-up or allocation per call, so their values are a fixed function of the inputs.
    (Their speed is a benchmark matter, benchmarks/bench_sim.py: no wall-clock assertion here.)"""
    cm = cms["ds660b"]
    a = [cm.prefill_time(3000, 10 * cm.attn_work(30_000 + i, 300), 10) for i in range(0, 2000, 500)]
    b = [cm.prefill_time(3000, 10 * cm.attn_work(30_000 + i, 300), 10) for i in range(0, 2000, 500)]
    assert a == b and all(x > 0 for x in a)
    assert a == sorted(a)  # more context, more attention work, longer prefill
    d1, d2 = cm.decode_step_time(64, 64 * 30_000), cm.decode_step_time(64, 64 * 60_000)
    assert 0 < d1 < d2


def test_prefill_tokens_per_s(cms):
    cm = cms["ds660b"]
    one = cm.prefill_tokens_per_s(30_000, 300)
    ten = cm.prefill_tokens_per_s(30_000, 300, n_reqs=10)
    assert ten / one == pytest.approx(10 * cm.prefill_time(300, cm.attn_work(30_000, 300), 1)
                                      / cm.prefill_time(3000, 10 * cm.attn_work(30_000, 300), 10))
    assert cm.prefill_tokens_per_s(30_000, 300, include_cached=True) == pytest.approx(one * 30_300 / 300)
