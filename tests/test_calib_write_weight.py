"""Issue #12: the storage write weight -- a written byte consumes ``w`` bytes of the shared
storage capacity (dpsim.cluster.profile.weight_storage_writes), fitted by dpsim.calibration.mixed
from reads mixed with a stream of writes.  Closed-form checks of the flow model with the weight,
the neutral value (w = 1: the same run byte for byte), the fit and the profile plumbing."""
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import simpy

import dpsim.net as dnet
from dpsim.calibration import hil
from dpsim.calibration.mixed import fit_write_weight, profile_entry, run_window, window_overlap_bytes
from dpsim.cluster.hwprofile import ProfileError, validate_profile
from dpsim.cluster.profile import StorageWriteCost, apply_profile, storage_write_weight, weight_storage_writes

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20


class _Port:
    """The KV port's storage path, reduced: a write crosses snic_tx and the shared storage link."""

    def __init__(self, net, tx, st):
        self.net, self.tx, self.st = net, tx, st
        self.full_block_bytes = 7.0

    def storage_write(self, node, nbytes, cb, tag, rid=-1):
        self.net.transfer((self.tx, self.st), nbytes, cb, tag=tag if rid < 0 else (tag, rid))


def _mix(weight, reads, writes, C=100.0):
    """Start ``reads`` (size, t) over (storage, snic_rx) and ``writes`` (size, t) through the
    weighted port; return each read's and write's end time and the cost transfers' end."""
    env = simpy.Environment()
    net = dnet.Network(env, check=True)
    st = net.add_link("storage", C)
    rx = net.add_link("snic_rx", 1e6)
    tx = net.add_link("snic_tx", 1e6)
    port = _Port(net, tx, st)
    wp = StorageWriteCost(port, net, st, weight) if weight != 1.0 else port
    node = SimpleNamespace(nid=0)
    out = {"r": [], "w": []}
    costs = []
    orig = net.transfer

    def rec(*a, **k):
        tr = orig(*a, **k)
        if k.get("tag") and k["tag"][0] == "write_cost":
            costs.append(tr)
        return tr
    net.transfer = rec

    def later(t, fn):
        def p():
            yield env.timeout(t)
            fn()
        env.process(p())
    for n, t in reads:
        later(t, lambda n=n: net.transfer((st, rx), n, lambda tr: out["r"].append(env.now), tag=("read", 0)))
    for i, (n, t) in enumerate(writes):
        later(t, lambda n=n, i=i: wp.storage_write(node, n, lambda tr: out["w"].append(env.now), ("persist", i)))
    env.run()
    return out, costs, wp


@pytest.mark.parametrize("tag, rid, want", [(("persist", 7), -1, 7), ("persist", 5, 5),
                                            ("persist", -1, None), (None, -1, None)])
def test_write_cost_tag_names_the_request(tag, rid, want):
    """The cost transfer is tagged ("write_cost", request id): the id passed, else the second
    item of a (kind, id) tag, else None -- never a letter of a bare string tag."""
    env = simpy.Environment()
    net = dnet.Network(env, check=True)
    st, tx = net.add_link("storage", 100.0), net.add_link("snic_tx", 1e6)
    wp = StorageWriteCost(_Port(net, tx, st), net, st, 2.0)
    tags = []
    orig = net.transfer

    def rec(*a, **k):
        tags.append(k.get("tag"))
        return orig(*a, **k)
    net.transfer = rec
    wp.storage_write(SimpleNamespace(nid=0), 50.0, None, tag, rid)
    env.run()
    assert tags[-1] == ("write_cost", want)
    assert wp.n_cost == 1 and wp.cost_bytes == pytest.approx(50.0)


def test_weight_one_is_the_plain_port():
    out, costs, _ = _mix(1.0, [(100.0, 0.0)] * 2, [(100.0, 0.0)])
    assert costs == []
    assert out["r"] == [pytest.approx(3.0)] * 2 and out["w"] == [pytest.approx(3.0)]  # 300 B / 100 B/s


def test_concurrent_mix_makespan_is_r_plus_w_times_weight_over_c():
    # w = 1.5: two 100 B reads and a 100 B write (+ a 50 B write cost) share 100 B/s max-min
    # fairly: 4 flows at 25 B/s until the cost is done at t = 2, then 3 at 33.3 B/s -> 3.5 s
    # = (R + w W) / C = (200 + 1.5 x 100) / 100.
    out, costs, wp = _mix(1.5, [(100.0, 0.0)] * 2, [(100.0, 0.0)])
    assert len(costs) == 1 and costs[0].size == pytest.approx(50.0)
    assert costs[0].t_end == pytest.approx(2.0)
    assert max(out["r"] + out["w"]) == pytest.approx((200 + 1.5 * 100) / 100)
    assert wp.cost_bytes == pytest.approx(50.0) and wp.n_cost == 1
    assert wp.full_block_bytes == 7.0  # everything else is the port's own


@pytest.mark.parametrize("w", [1.0, 1.3, 2.0, 3.0])
def test_reads_keeping_the_link_busy_take_r_plus_w_writes(w):
    # one 1000 B read keeps the 100 B/s link busy; three 10 B writes at t = 1, 2, 3 (their
    # costs end long before the read): the read ends at (R + w W) / C.
    out, _, _ = _mix(w, [(1000.0, 0.0)], [(10.0, 1.0), (10.0, 2.0), (10.0, 3.0)])
    assert out["r"] == [pytest.approx((1000 + w * 30) / 100)]


def _committed():
    d = json.loads((ROOT / "calibration/reports/h200/first_one_call/hil_summary.json").read_text())
    return d, d["scenario"]


def _cfg(system, sc, profile):
    base = hil.compose(hil.scenario_overrides(system, sc["mal"], sc["agents"], sc["gen_scale"]) + sc["override"])
    base["cluster"]["link_profile"] = None
    return apply_profile(base, profile, sc["mapping"])


def test_simulation_weight_one_unchanged_and_weight_costs_persist_bytes():
    from dpsim.calibration.profile import load_profile

    d, sc = _committed()
    prof = load_profile(ROOT / "calibration/profiles/h100x1_first_measured.yaml")
    # the profile the previous summary judged has no weight: priced as before, byte for byte
    w_old = storage_write_weight(prof)
    cfg = _cfg("round_robin", sc, prof)
    c1 = hil.run_case(cfg, "model", max_turns=sc["turns"], write_weight=1.0)
    if w_old == 1.0:
        assert c1.summary["jct_s"] == d["systems"]["round_robin"]["models"]["model_shipped"]["jct_s"]
    c0 = hil.run_case(cfg, "model", max_turns=sc["turns"])
    assert c1.summary["jct_s"] == c0.summary["jct_s"]
    assert c1.summary["ttft_s"]["mean"] == c0.summary["ttft_s"]["mean"]
    sim = hil.build_sim(cfg, max_turns=sc["turns"])
    assert weight_storage_writes(sim, 1.0) is None
    # w = 2: every storage write of n bytes adds a write cost of n bytes on the storage link
    sim = hil.build_sim(cfg, max_turns=sc["turns"])
    from dpsim.hw.replay import record_transfers

    trs = record_transfers(sim)
    wp = weight_storage_writes(sim, 2.0)
    sim.run()
    writes = [t for t in trs if t.tag and t.tag[0] in ("persist", "persist_gen")]
    costs = [t for t in trs if t.tag and t.tag[0] == "write_cost"]
    assert len(costs) == len(writes) == wp.n_cost > 0
    # each cost carries its write's id (a request id, or an agent id for persist_gen)
    assert [c.tag[1] for c in costs] == [w.tag[1] for w in writes]
    assert all(isinstance(w.tag[1], int) for w in writes)
    assert sum(t.size for t in costs) == pytest.approx(sum(t.size for t in writes))
    assert all(len(t.route) == 1 and t.route[0] is sim.cluster.storage for t in costs)
    c2 = hil.run_case(cfg, "model", max_turns=sc["turns"], write_weight=2.0)
    assert c2.summary["jct_s"] > c0.summary["jct_s"]
    assert len(c2.transfers) == len(c0.transfers)  # write costs are not transfers of the matched table


def test_weight_refusals():
    from dpsim.calibration.profile import load_profile

    _, sc = _committed()
    prof = load_profile(ROOT / "calibration/profiles/h100x1_first_measured.yaml")
    sim = hil.build_sim(_cfg("round_robin", sc, prof), max_turns=2)
    with pytest.raises(ValueError, match=">= 1"):
        weight_storage_writes(sim, 0.8)
    with pytest.raises(ValueError, match=">= 1"):
        weight_storage_writes(sim, math.inf)


# ------------------------------------------------------------------ the fit
def _windows(w, rates=(0.3, 0.6, 0.9), held=(0.6,), R=4e9, reps=2, alone=(2.0, 2.2)):
    rows = []
    for rep in range(1, reps + 1):
        for r in rates:
            Ta = alone[rep - 1]
            W = r * 1e9 * Ta * 1.2  # bytes written during the mixed window
            rows.append(dict(repeat=rep, rate_GBps=r, condition="alone", split="heldout" if r in held else "train",
                             T_s=Ta, R_bytes=R, W_bytes=0.0, write_Bps=0.0))
            Tm = Ta * (1 + w * W / R)
            rows.append(dict(repeat=rep, rate_GBps=r, condition="mixed", split="heldout" if r in held else "train",
                             T_s=Tm, R_bytes=R, W_bytes=W, write_Bps=W / Tm))
    return pd.DataFrame(rows)


def test_fit_recovers_weight_and_scores_heldout():
    w, fit, p = fit_write_weight(_windows(1.7))
    assert w == pytest.approx(1.7, rel=1e-9)
    assert fit["n_train"] == 4 and fit["n_heldout"] == 2
    assert fit["heldout"]["max_err"] == pytest.approx(0.0, abs=1e-12)
    assert fit["heldout_with_w1"]["mape"] > 0.05
    assert p.w_pair.to_numpy() == pytest.approx([1.7] * 6)


def test_profile_entry_clips_below_one_and_validates(tmp_path):
    e = profile_entry(_windows(0.6), {"host": "h"})
    assert e["storage_weight"] == 1.0 and e["storage_weight_fit"]["w_fitted"] == pytest.approx(0.6)
    assert "priced as 1" in e["storage_weight_fit"]["note"]
    e = profile_entry(_windows(1.4), {"host": "h"})
    assert e["storage_weight"] == pytest.approx(1.4)
    prof = {"meta": {"source": "test"}, "links": {
        "file_read": {"latency_s": 1e-4, "bandwidth_Bps": 2e9},
        "file_write": {"latency_s": 1e-4, "bandwidth_Bps": 3e9, **e}}}
    validate_profile(prof)
    assert storage_write_weight(prof) == pytest.approx(1.4)
    prof["links"]["file_write"]["storage_weight"] = 0.5
    with pytest.raises(ProfileError, match="storage_weight"):
        validate_profile(prof)
    del prof["links"]["file_write"]["storage_weight"]
    assert storage_write_weight(prof) == 1.0


def test_fit_directory_adds_the_weight(tmp_path):
    from dpsim.calibration.fit import fit_directory

    rows = []
    for kind in ("file_read", "file_write"):
        for n in (1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB):
            for trial in range(3):
                rows.append(dict(transport="file", suite="sizes", kind=kind, group="", mode="single", method="",
                                 nbytes=n, n_messages=1, block_bytes=n, n_concurrent=1, transfer_idx=0, trial=trial,
                                 seconds=1e-4 + n / 2e9, split="train", note=""))
    pd.DataFrame(rows).to_csv(tmp_path / "raw_file.csv", index=False)
    _windows(1.25).to_csv(tmp_path / "mixed_raw.csv", index=False)
    (tmp_path / "mixed_meta.json").write_text(json.dumps({"host": "h", "date": "d"}))
    prof, tables = fit_directory(str(tmp_path))
    assert prof["links"]["file_write"]["storage_weight"] == pytest.approx(1.25)
    assert "mixed" in tables
    validate_profile(prof)
    from dpsim.calibration.report import markdown_report

    md = markdown_report(prof, tables)
    assert "## Storage write weight (file_write; dpsim.calibration.mixed)" in md and "Fitted w = 1.250" in md


def test_overlap_bytes():
    assert window_overlap_bytes([(0.0, 1.0, 10.0), (1.5, 2.5, 10.0), (3.0, 4.0, 10.0)], 2.0) == pytest.approx(15.0)


def test_run_window_on_the_replay_file_io(tmp_path):
    from dpsim.hw.replay import HardwareBackend

    be = HardwareBackend("cpu", file_dir=str(tmp_path), file_bytes=64 * MiB, host_pool_bytes=64 * MiB,
                         dev_pool_bytes=16 * MiB, chunk_bytes=16 * MiB)
    be.open()
    try:
        a = run_window(be, 2, 2, 4 * MiB)
        m = run_window(be, 2, 2, 4 * MiB, write_rate_Bps=0.2e9, write_bytes=1 * MiB)
    finally:
        be.close()
    assert a["R_bytes"] == m["R_bytes"] == 16 * MiB and a["W_bytes"] == 0 and a["n_writes"] == 0
    assert len(a["reads"]) == 4 and m["n_writes"] >= 1 and 0 < m["W_bytes"] <= m["n_writes"] * MiB


def test_plain_run_with_link_profile_prices_its_write_weight(tmp_path):
    """dpsim.runner.build applies cluster.link_profile's storage write weight (not only the HIL
    model runs): weight 1 leaves the port alone; 1.5 wraps it and charges half of every persist
    write's bytes again on the shared storage link."""
    import yaml

    from dpsim.runner import build
    from helpers import make_cfg

    src = yaml.safe_load((ROOT / "calibration/profiles/h100x1_measured.yaml").read_text())
    assert storage_write_weight(src) == 1.0
    for w in (1.0, 1.5):
        prof = json.loads(json.dumps(src))
        prof["links"]["file_write"]["storage_weight"] = w
        p = tmp_path / f"w{w}.yaml"
        p.write_text(yaml.safe_dump(prof))
        sim = build(make_cfg("workload.agents=4", f"cluster.link_profile={p}"))
        if w == 1.0:
            assert not isinstance(sim.life.port, StorageWriteCost)
            continue
        port = sim.life.port
        assert isinstance(port, StorageWriteCost)
        sim.run()
        assert port.n_cost > 0
        sim.net.flush()
        written = sum(n.snic_tx.acc_bytes for n in sim.cluster.nodes)  # every byte a node wrote to storage
        assert all(n.snic_tx is not n.snic_rx for n in sim.cluster.nodes)
        assert port.cost_bytes == pytest.approx(0.5 * written, rel=1e-9)
