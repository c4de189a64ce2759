"""Profile loading/validation, the C3 reference profile, and the measured one."""
import copy
import os

import pytest
import yaml

from dpsim.calibration.c3_reference import build as build_c3
from dpsim.calibration.profile import (ProfileError, attention_time, gemm_time, load_profile, sharing_total,
                                 transfer_time, validate_profile)

HERE = os.path.dirname(__file__)
PROFILES = os.path.join(HERE, "..", "..", "calibration", "profiles")
C3_PATH = os.path.join(PROFILES, "c3_h100_reference.yaml")
H100_PATH = os.path.join(PROFILES, "h100_measured.yaml")
MiB, GiB = 1 << 20, 1 << 30


@pytest.fixture(scope="module")
def c3():
    return load_profile(C3_PATH)


@pytest.mark.parametrize("n,gbps", [(MiB, 46.8), (16 * MiB, 54.4), (GiB, 55.2), (64 << 10, 6.6)])
def test_c3_profile_reproduces_h2d(c3, n, gbps):
    got = n / transfer_time(c3, "h2d", n) / 1e9
    assert got == pytest.approx(gbps, rel=0.10)


def test_c3_profile_other_numbers(c3):
    # 4096 x 64 KiB one by one ~ 8.6 GB/s (C3), batched ~1.1-1.5 us per copy
    n = 4096 * (64 << 10)
    assert n / transfer_time(c3, "h2d", n, n_messages=4096) / 1e9 == pytest.approx(8.6, rel=0.10)
    assert c3["links"]["h2d"]["per_message_batched_s"] == pytest.approx(1.3e-6)
    assert sharing_total(c3, ["h2d", "d2h"]) == pytest.approx(87e9)
    assert 256 * MiB / transfer_time(c3, "h2d_pageable", 256 * MiB) / 1e9 == pytest.approx(19, rel=0.05)
    for kind in c3["links"]:
        assert "source" in c3["links"][kind]


def test_c3_yaml_matches_builder(c3):
    assert yaml.safe_load(yaml.safe_dump(build_c3()))["links"]["h2d"]["bandwidth_Bps"] == pytest.approx(
        c3["links"]["h2d"]["bandwidth_Bps"])


def test_measured_profile_loads():
    p = load_profile(H100_PATH)
    assert "H100" in p["meta"]["gpu"]
    bw = GiB / transfer_time(p, "h2d", GiB) / 1e9
    assert 40 < bw < 70
    assert gemm_time(p, 4096, 5120, 5120) > 0
    assert attention_time(p, 32768, 512) > attention_time(p, 1024, 512) > 0
    for kind, L in p["links"].items():
        f = L["fit"]
        assert f["n_heldout"] > 0 and f["median_err"] <= 0.10, kind


GOOD = {"meta": {"source": "test"}, "links": {"h2d": {"latency_s": 1e-5, "bandwidth_Bps": 5e10}},
        "sharing": {"x": {"kinds": ["h2d"], "total_Bps": 5e10}}}


def _bad(mut):
    p = copy.deepcopy(GOOD)
    mut(p)
    return p


@pytest.mark.parametrize("mut,key", [
    (lambda p: p["meta"].pop("source"), "meta.source"),
    (lambda p: p.pop("links"), "links"),
    (lambda p: p.update(linkz={}), "linkz"),
    (lambda p: p["links"]["h2d"].update(bandwith_Bps=1.0), "links.h2d.bandwith_Bps"),
    (lambda p: p["links"]["h2d"].pop("latency_s"), "links.h2d.latency_s"),
    (lambda p: p["links"]["h2d"].update(bandwidth_Bps=0), "links.h2d.bandwidth_Bps"),
    (lambda p: p["links"]["h2d"].update(latency_s="fast"), "links.h2d.latency_s"),
    (lambda p: p["links"]["h2d"].update(pieces=[{"from_bytes": 0, "to_bytes": 10, "latency_s": 0,
                                                  "bandwidth_Bps": 1}, {"from_bytes": 20, "to_bytes": 30,
                                                                        "latency_s": 0, "bandwidth_Bps": 1}]),
     "links.h2d.pieces[1].from_bytes"),
    (lambda p: p["sharing"]["x"].update(kinds=["d2h"]), "sharing.x.kinds"),
    (lambda p: p["sharing"]["x"].pop("total_Bps"), "sharing.x.total_Bps"),
    (lambda p: p.update(compute={"gpu": 1}), "compute.gpu"),
])
def test_bad_keys_are_named(mut, key):
    with pytest.raises(ProfileError) as ei:
        validate_profile(_bad(mut))
    assert ei.value.key == key
    assert repr(key) in str(ei.value)


def test_load_profile_file_errors(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("meta: [unclosed\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(p)
    p.write_text(yaml.safe_dump(_bad(lambda q: q["links"]["h2d"].update(speed=1))))
    with pytest.raises(ProfileError, match=r"links\.h2d\.speed") as ei:
        load_profile(p)
    assert str(p) in str(ei.value)


def test_transfer_time_semantics():
    p = validate_profile(copy.deepcopy(GOOD))
    assert transfer_time(p, "h2d", 0) == pytest.approx(1e-5)
    assert transfer_time(p, "h2d", 5e10) == pytest.approx(1 + 1e-5)
    # no per-message cost given: m blocks cost one latency plus wire time
    assert transfer_time(p, "h2d", 5e10, n_messages=10) == pytest.approx(1 + 1e-5)
    p["links"]["h2d"]["per_message_s"] = 1e-3
    assert transfer_time(p, "h2d", 1000, n_messages=11) == pytest.approx(1e-5 + 100 / 5e10 + 10e-3)
    # batched falls back to per_message_s when no batched figure exists
    assert transfer_time(p, "h2d", 1000, n_messages=11, batched=True) == pytest.approx(
        transfer_time(p, "h2d", 1000, n_messages=11))
    with pytest.raises(ProfileError, match="links.d2d"):
        transfer_time(p, "d2d", 1)
