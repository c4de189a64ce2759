"""Core v2 pieces on their own: join, request log, routes and transforms, read plans, ledger,
prefill strategy choice, and byte-identical determinism."""
import math

import numpy as np
import pytest

from dpsim.cluster.routes import KV_KINDS, Route, RouteKind, oracle_transform
from dpsim.engines.prefill_modes import STRATEGIES, strategy_for
from dpsim.lifecycle import Join, RequestLog, Stage
from dpsim.lifecycle.request import Agent, Request
from dpsim.metrics.tables import request_table
from dpsim.runner import build, run
from dpsim.scheduling import ReadPlan

from helpers import make_cfg


def test_join_fires_once_after_all_parts():
    hits = []
    j = Join(2, lambda: hits.append(1))
    j.part_done()
    assert hits == []
    j.add()
    j.part_done(object())  # usable as a transfer callback
    assert hits == []
    j.part_done()
    assert hits == [1]


def test_read_plan_split_collapses_to_one_side():
    assert ReadPlan.split(100, 0) == ReadPlan("pe", 0)
    assert ReadPlan.split(100, 100) == ReadPlan("de", 100)
    assert ReadPlan.split(100, 250) == ReadPlan("de", 100)
    assert ReadPlan.split(100, 30) == ReadPlan("split", 30)


class _Traj:
    """A trajectory's shape: its id and per-round columns (an Agent keeps typed views of them)."""
    id = "t"
    n_rounds = 3
    prompt, hit, gen = np.array([1000, 2000, 3000]), np.array([0, 900, 1900]), np.array([5, 5, 5])
    think_s = np.zeros(3)


def test_request_log_rows_in_rid_order_with_live_ones_unfinished():
    log = RequestLog()
    ag = Agent(0, _Traj())
    reqs = [Request(i, ag, i, 100 + i, 10, 5, float(i)) for i in (1, 2, 3)]
    for r in reqs:
        log.issued(r)
    reqs[2].stage = Stage.DONE
    reqs[2].t_end = 9.0
    log.finished(reqs[2])
    reqs[0].stage = Stage.FAILED
    reqs[0].fail = "why"
    log.finished(reqs[0])
    c = log.columns()
    assert list(c["rid"]) == [1, 2, 3]
    assert list(c["prompt"]) == [101, 102, 103]
    assert list(c["status"]) == [1, 2, 0]  # failed, unfinished (live), done
    assert c["fail_reason"] == ["why", "", ""]
    assert c["end_s"][2] == 9.0 and math.isnan(c["end_s"][1])
    assert len(log) == 3 and list(log.live) == [2]


def test_request_log_refuses_a_request_finished_twice_or_issued_twice():
    log = RequestLog()
    ag = Agent(0, _Traj())
    a, b = (Request(i, ag, i, 100, 10, 5, 0.0) for i in (1, 2))
    log.issued(a)
    with pytest.raises(ValueError, match="request 1 issued twice"):
        log.issued(a)
    with pytest.raises(ValueError, match="request 2 finished but not in flight"):
        log.finished(b)
    a.stage = Stage.DONE
    log.finished(a)
    with pytest.raises(ValueError, match="request 1 finished but not in flight"):
        log.finished(a)
    # A freed place is reused; the live view stays in rid order whatever the places.
    log.issued(b)
    c = Request(3, ag, 3, 100, 10, 5, 0.0)
    log.issued(c)
    assert list(log.live) == [2, 3] and len(log) == 3


def test_routes_carry_their_kind_and_endpoint_routes_are_kept():
    sim = build(make_cfg("workload.agents=2"))
    R = sim.cluster.routes
    pe, de = sim.pes[0].gpu, sim.des[0].gpu
    assert R.h2d(pe) is R.h2d(pe) and R.storage_read(de.node) is R.storage_read(de.node)
    # Pair routes are made per call (not kept in an n^2 table): equal links, kind and latency.
    a, b = R.remote_h2d(de, pe), R.remote_h2d(de, pe)
    assert a is not b and a.links == b.links and (a.kind, a.src, a.dst, a.latency) == (b.kind, b.src, b.dst, b.latency)
    assert R.remote_h2d(pe, de).links != a.links
    assert a.links == (de.node.dram, de.cnic_rd, pe.cnic_wr) + ((pe.pcie_dn,) if pe.pcie_dn is not None else ())
    r = R.gpu_to_remote(pe, de)
    assert r.kind == RouteKind.GPU_TO_REMOTE and r.src is pe and r.dst is de
    assert r[-1] is de.node.dram and r.latency == sim.cfg["cluster"]["net_latency_s"]
    assert R.storage_read(de.node).latency == sim.cfg["cluster"]["storage_latency_s"]
    assert R.model(pe, de).kind == RouteKind.MODEL


def test_oracle_transform_frees_kv_moves_only():
    links = ("a", "b")
    for kind in RouteKind:
        r = oracle_transform(Route(links, kind, None, None, 1e-3))
        if kind in KV_KINDS:
            assert tuple(r) == () and r.kind == kind
            keep = kind in (RouteKind.STORAGE_READ, RouteKind.STORAGE_WRITE)
            assert r.latency == (1e-3 if keep else 0.0)
        else:
            assert tuple(r) == links and r.latency == 1e-3


def test_oracle_system_moves_no_kv_bytes_but_model_traffic():
    # (ds660b's EP groups must fit the cluster: prefill EP16 on 2 nodes, decode EP16 on 2)
    summ, sim = run(make_cfg("system=oracle", "model=ds660b", "experiment=offline", "cluster.prefill_nodes=2",
                             "cluster.decode_nodes=2", "model.parallel.ep_size_decode=16", "workload.agents=4"))
    assert summ["requests_completed"] == summ["requests_total"]
    assert summ["snic_read_bytes_prefill_nodes"] == 0 and summ["snic_read_bytes_decode_nodes"] == 0
    cnic = sum(g.cnic_rd.delivered(sim.env.now) for g in sim.cluster.gpus)
    assert cnic > 0  # EP all-to-all still rides the CNICs


def test_oracle_never_waits_for_a_dram_buffer():
    """§S9 Oracle makes every KV move free, and so the staging memory: with DRAM buffers so
    small that DualPath's requests queue for them (and the longest prompt would not even fit),
    Oracle's allocation takes no time and its buffers are unbounded."""
    small = ["cluster.dram_buffer_bytes=4e9", "workload.agents=48", "cluster.prefill_nodes=1",
             "cluster.decode_nodes=1"]
    with pytest.raises(Exception, match="dram_buffer_bytes"):
        build(make_cfg("system=dualpath", *small))
    big = ["cluster.dram_buffer_bytes=12e9", "workload.agents=48", "cluster.prefill_nodes=1",
           "cluster.decode_nodes=1"]
    _s, dp = run(make_cfg("system=dualpath", *big))
    t = request_table(dp)
    assert t.alloc_wait_s.max() > 0  # DualPath waits for buffers here
    for ov in (small, big):
        summ, sim = run(make_cfg("system=oracle", *ov))
        assert summ["requests_completed"] == summ["requests_total"]
        assert all(n.buffer.capacity == math.inf for n in sim.cluster.nodes)
        t = request_table(sim)
        assert (t.alloc_wait_s == 0).all()


@pytest.mark.parametrize("system,strategy", [("basic", "whole"), ("dualpath", "layerwise")])
def test_prefill_strategy_from_the_system(system, strategy):
    sc = make_cfg(f"system={system}")["system"]
    assert strategy_for(sc) is STRATEGIES[strategy]
    assert strategy_for({**sc, "layerwise": True, "prefill_mode": "fine"}) is STRATEGIES["layerwise_fine"]
    with pytest.raises(ValueError, match="prefill_mode"):
        strategy_for({**sc, "prefill_mode": "nope"})


@pytest.mark.parametrize("system", ["dualpath", "basic", "split"])
def test_ledger_balances_to_zero_after_a_run(system):
    _s, sim = run(make_cfg(f"system={system}", "cluster.prefill_nodes=2", "cluster.decode_nodes=2",
                           "workload.agents=24"))
    assert all(e.seq == 0 and e.tok == 0 for e in sim.pes + sim.des)
    assert all(n.read_q == 0 for n in sim.cluster.nodes)
    assert all(n.buffer.used == pytest.approx(0, abs=1e-3) for n in sim.cluster.nodes)


def test_same_config_and_seed_give_byte_identical_tables():
    cfg = make_cfg("system=dualpath", "cluster.decode_nodes=2", "workload.agents=16")
    a = request_table(run(cfg)[1])
    b = request_table(run(cfg)[1])
    assert a.equals(b)
    assert a.to_csv().encode() == b.to_csv().encode()
    assert np.isfinite(a.end_s).all()


def _clock_trace(clock, run):
    seen = []
    clock.timer(2.0, lambda _e: seen.append(("b", clock.now)))
    clock.timer(1.0, lambda _e: (seen.append(("a", clock.now)),
                                 clock.timer(0.0, lambda _e: seen.append(("a0", clock.now)))))
    clock.timer(2.0, lambda arg: seen.append((arg, clock.now)), "c")
    clock.timer(-1.0, lambda _e: seen.append(("now", clock.now)))
    clock.timer(3.0, lambda _e: (seen.append(("stop", clock.now)), clock.stop()))
    clock.timer(4.0, lambda _e: seen.append(("after", clock.now)))
    stopped = run()
    return seen, stopped


@pytest.mark.parametrize("impl", ["python", "compiled"])
def test_event_loop_runs_timers_in_time_then_setting_order(impl):
    """The event loop: time order, ties in setting order, dt <= 0 means now (after what is
    already due), the argument is passed, stop() ends run() after the running callback, the
    rest stays pending and runs on; every timer rung is counted."""
    import dpsim.net as dnet
    try:
        ns = dnet.implementation(impl)
    except ImportError:
        pytest.skip("compiled extension not built")
    clock = ns.EventLoop()
    seen, stopped = _clock_trace(clock, clock.run)
    assert stopped is True
    assert seen == [("now", 0.0), ("a", 1.0), ("a0", 1.0), ("b", 2.0), ("c", 2.0), ("stop", 3.0)]
    assert clock.events == 6 and clock.peek() == 4.0 and clock.pending() == 1
    assert clock.run() is False  # ran out of timers
    assert seen[-1] == ("after", 4.0) and clock.events == 7 and clock.peek() == math.inf


@pytest.mark.parametrize("impl", ["python", "compiled"])
def test_reserved_timer_rings_where_it_was_reserved(impl):
    """reserve() takes the place in line a timer set now would get; timer_at() sets it later
    (before it is due) and it rings exactly there: after what was set before the reservation
    for the same time, before what was set after it."""
    import dpsim.net as dnet
    try:
        ns = dnet.implementation(impl)
    except ImportError:
        pytest.skip("compiled extension not built")
    clock = ns.EventLoop()
    seen = []
    clock.timer(2.0, seen.append, "before")
    seq = clock.reserve()
    clock.timer(2.0, seen.append, "after")
    clock.timer(1.0, lambda _e: clock.timer_at(2.0, seq, seen.append, "reserved"))
    clock.timer(1.5, lambda _e: clock.timer_at(1.5, clock.reserve(), seen.append, "now"))
    clock.run()
    assert seen == ["now", "before", "reserved", "after"] and clock.now == 2.0


def test_simpy_clock_matches_event_loop():
    """Over a SimPy environment (the real-time HIL path) the same timers ring in the same order,
    and SimPy processes run beside them."""
    import simpy

    from dpsim.lifecycle.clock import EventLoop, SimpyClock, as_clock
    env = simpy.Environment()
    clock = as_clock(env)
    assert isinstance(clock, SimpyClock) and as_clock(clock) is clock
    assert isinstance(as_clock(None), EventLoop)
    ticks = []

    def proc():
        yield env.timeout(1.5)
        ticks.append(env.now)
    env.process(proc())
    seen, stopped = _clock_trace(clock, clock.run)
    loop = EventLoop()
    ref, ref_stopped = _clock_trace(loop, loop.run)
    assert (seen, stopped) == (ref, ref_stopped) and ticks == [1.5]
    assert clock.events == loop.events == 6
    # It is an EventLoop (code typed for the loop takes it), whose time is the environment's.
    assert isinstance(clock, EventLoop) and clock.time() == clock.now == env.now > 0.0
    with pytest.raises(NotImplementedError, match="peek"):
        clock.pending()  # SimPy does not say; the loop's own (unused) heap must not answer


def test_core_shape_rules():
    """Issue #10's shape rules: no class in dpsim/ over 300 lines; no SimPy private attributes."""
    import ast
    import pathlib
    import re
    root = pathlib.Path(__file__).resolve().parents[1] / "dpsim"
    big, private = [], []
    for p in root.rglob("*.py"):
        src = p.read_text()
        for n in ast.walk(ast.parse(src)):
            if isinstance(n, ast.ClassDef) and n.end_lineno - n.lineno + 1 > 300:
                big.append(f"{p.name}:{n.name}")
        if re.search(r"env\._(queue|eid|now)\b", src):
            private.append(p.name)
    assert big == [] and private == []


def test_request_log_pages_keep_every_row(monkeypatch):
    """Rows go into fixed-size pages; a run longer than one page keeps every row, in rid order,
    with its integers and times intact."""
    from dpsim.lifecycle import log as log_mod
    monkeypatch.setattr(log_mod, "PAGE_ROWS", 7)
    log = RequestLog()
    ag = Agent(0, _Traj())
    order = [5, 1, 17, 3] + list(range(20, 40)) + [2]
    for rid in order:
        r = Request(rid, ag, 0, 1000 + rid, 10, 5, float(rid))
        log.issued(r)
        r.stage = Stage.DONE
        r.t_end = rid + 0.5
        log.finished(r)
    assert len(log) == len(order) == 25  # 4 pages of 7 rows
    c = log.columns()
    assert list(c["rid"]) == sorted(order)
    assert list(c["prompt"]) == [1000 + r for r in sorted(order)]
    assert list(c["end_s"]) == [r + 0.5 for r in sorted(order)]
    assert set(c["status"]) == {0}
