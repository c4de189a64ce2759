"""Storage-bound scenarios against the §S7 closed forms: PE-only reads saturate P SNICs, DE-only
reads D SNICs, DualPath's shorter-queue choice all P + D."""
import pytest

from dpsim.analysis.bound import aggregate_read_bw, link_loads, pd_range, steady_read_throughput
from dpsim.drivers import OfflineDriver
from dpsim.sim import Simulation

from helpers import FastCompute, make_cfg, trajectories


def _read_throughput(sim):
    got, n = steady_read_throughput(sim)
    assert n >= 10, "too few samples in the steady window"
    return got


def _run(system, P, D, agents=256, rounds=10, **over):
    cfg = make_cfg(f"system={system}", f"cluster.prefill_nodes={P}", f"cluster.decode_nodes={D}",
                   "check_invariants=true", "metrics.sample_dt=0.05",
                   *[f"{k}={v}" for k, v in over.items()])
    # Long contexts, tiny appends and outputs: reading hit KV dominates everything else.
    trajs = trajectories(agents, rounds, first=30000, append=(50, 200), gen=(2, 8))
    sim = Simulation(cfg, trajs, FastCompute())
    sim.driver = OfflineDriver(sim, {})
    sim.run()
    assert sim.n_done == sim.total_requests and sim.n_failed == 0
    return sim, cfg


@pytest.mark.parametrize("P,D", [(1, 1), (1, 2), (2, 1)])
def test_pe_only_reads_at_P_snics(P, D):
    sim, cfg = _run("pe_only", P, D)
    snic = cfg["cluster"]["snic_Bps"] * cfg["cluster"]["snic_efficiency"]
    expect = aggregate_read_bw(P, D, snic, "pe")
    assert _read_throughput(sim) == pytest.approx(expect, rel=0.02)
    assert all(n.snic_rx.delivered(sim.env.now) == 0 for n in sim.cluster.decode_nodes)


@pytest.mark.parametrize("P,D", [(1, 1), (1, 2)])
def test_de_only_reads_at_D_snics(P, D):
    sim, cfg = _run("de_only", P, D)
    snic = cfg["cluster"]["snic_Bps"] * cfg["cluster"]["snic_efficiency"]
    assert _read_throughput(sim) == pytest.approx(aggregate_read_bw(P, D, snic, "de"), rel=0.02)
    assert all(n.snic_rx.delivered(sim.env.now) == 0 for n in sim.cluster.prefill_nodes)


def test_dualpath_uses_every_snic_inside_the_bound():
    P, D = 1, 2
    b = pd_range(g=8, s=0.8 / 0.95, M=500e9, B=50e9 * 0.95)
    assert b.contains(P / D)
    sim, cfg = _run("dualpath", P, D, agents=384)
    snic = cfg["cluster"]["snic_Bps"] * cfg["cluster"]["snic_efficiency"]
    got = _read_throughput(sim)
    assert got == pytest.approx(aggregate_read_bw(P, D, snic, "dualpath"), rel=0.02)
    assert got > 1.4 * aggregate_read_bw(P, D, snic, "pe")


def test_bound_closed_form_matches_paper_example():
    b = pd_range(g=8, s=1, M=500e9, B=50e9)
    assert b.lo == pytest.approx(1 / 7)
    assert b.hi == pytest.approx(7 / 2)
    assert b.contains(2 / 4) and not b.contains(4.0) and not b.contains(0.1)
    # At the range's edges the binding link carries exactly B.
    B = 50e9
    lo = link_loads(P=1, D=7, g=8, s=1, B=B)
    assert lo["pe_cnic_write"] == pytest.approx(B)
    hi = link_loads(P=7, D=2, g=8, s=1, B=B)
    assert hi["de_cnic_write"] == pytest.approx(B)
