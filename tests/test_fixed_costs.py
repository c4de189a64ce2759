"""#11 item 4: per-request fixed costs (system.costs, cluster.storage_queue_depth), each paid where
it happens in the lifecycle, and the single-agent decomposition of TTFT / TTST / TPOT whose
closed-form parts add up to the simulated values (dpsim/analysis/fixed_costs.py)."""
import subprocess
import sys

import numpy as np
import pytest
from helpers import make_cfg

from dpsim.analysis.fixed_costs import agent_trajectory, decompose, run_single_agent, single_agent_cfg
from dpsim.lifecycle.costs import LifecycleCosts, read_rounds
from dpsim.runner import build

ZERO = ("system.costs.sched_decision_s=0", "system.costs.sched_rpc_s=0", "system.costs.buffer_alloc_s=0",
        "system.costs.handoff_s=0", "cluster.storage_queue_depth=0")
EPS = 1e-9


def _reqs(*overrides, model="ds27b"):
    sim = run_single_agent(single_agent_cfg(model, extra=overrides))
    return sim.requests


def _fetch_wait(cfg, arrival):
    import math
    per = cfg["system"]["dualpath"]["fetch_period_s"]
    return (math.floor(arrival / per) + 1) * per - arrival


# ------------------------------------------------------------------ the decomposition
@pytest.mark.parametrize("model", ["ds27b", "ds660b"])
def test_parts_add_up_to_the_simulated_latencies(model):
    d = decompose(model)
    assert d.request["hit"] > 0 and d.request["new"] > 0
    for w in ("ttft", "ttst", "tpot"):
        assert abs(d.residual(w)) <= 1e-9 * d.sim[f"{w}_s"] + 1e-12, (w, d.table())
    assert d.ok(), d.table()
    assert not d.notes, d.notes
    # the parts the issue names are all there and priced
    assert d.ttft["scheduler RPC"] > 0 and d.ttft["buffer allocation"] > 0
    assert d.ttft["storage latency (rounds x per-read)"] > 0 and d.ttst["PE->DE hand-off"] > 0
    assert d.step["decode: EP dispatch/combine latency"] > 0


def test_decomposition_holds_with_other_costs_and_queue_depths():
    for extra in (ZERO, ("cluster.storage_queue_depth=1", "system.costs.handoff_s=0.003"),
                  ("cluster.storage_queue_depth=7", "cluster.storage_latency_s=0.001")):
        d = decompose("ds27b", extra=extra)
        assert d.ok(), d.table()


# ------------------------------------------------------------------ each cost, exactly its value
@pytest.mark.parametrize("key", ["sched_decision_s", "sched_rpc_s", "buffer_alloc_s"])
def test_each_scheduling_cost_moves_ttft_by_its_value(key):
    x = 0.0123
    base = _reqs(*ZERO)[0]  # round 0 arrives at t=0 on an idle cluster
    moved = _reqs(*ZERO, f"system.costs.{key}={x}")[0]
    d_ttft = (moved.t_first - moved.arrival) - (base.t_first - base.arrival)
    assert abs(d_ttft - x) < EPS
    assert abs((moved.t_second - moved.arrival) - (base.t_second - base.arrival) - x) < EPS


def test_handoff_moves_ttst_not_ttft():
    x = 0.0123
    base = _reqs(*ZERO)[0]
    moved = _reqs(*ZERO, f"system.costs.handoff_s={x}")[0]
    assert moved.t_first == base.t_first
    assert abs((moved.t_second - base.t_second) - x) < EPS
    assert abs((moved.t_end - base.t_end) - x) < EPS


def test_storage_queue_depth_reads_in_rounds():
    cfg = single_agent_cfg("ds27b", extra=ZERO)
    lat = cfg["cluster"]["storage_latency_s"]
    base = _reqs(*ZERO)[1]
    blocks = -(-base.hit // cfg["system"]["block_size"])
    assert blocks > 10
    for qd in (1, 4, blocks, 10 * blocks):
        r = _reqs(*ZERO, f"cluster.storage_queue_depth={qd}")[1]
        rounds = -(-blocks // qd)
        assert r.hit == base.hit
        # the read (and so TTFT less the fetch-grid wait, which depends on round 0's end) moves by
        # (rounds - 1) x the per-read latency
        assert abs((r.t_read1 - r.t_read0) - (base.t_read1 - base.t_read0) - (rounds - 1) * lat) < EPS
        ttft = r.t_first - r.arrival - _fetch_wait(cfg, r.arrival)
        ttft0 = base.t_first - base.arrival - _fetch_wait(cfg, base.arrival)
        assert abs(ttft - ttft0 - (rounds - 1) * lat) < EPS


def test_read_rounds():
    assert read_rounds(0, 64, 8) == 1
    assert read_rounds(64 * 8, 64, 8) == 1
    assert read_rounds(64 * 8 + 1, 64, 8) == 2
    assert read_rounds(10 ** 6, 64, 0) == 1  # 0: unlimited
    assert read_rounds(640, 64, 1) == 10


# ------------------------------------------------------------------ zero costs: nothing changes
def _digest(sim):
    c = sim.log.columns()
    return {k: (list(v) if isinstance(v, list) else np.asarray(v).tobytes()) for k, v in c.items()}, sim.events


@pytest.mark.parametrize("system", ["dualpath", "basic", "oracle"])
def test_zero_costs_are_byte_identical_to_a_lifecycle_without_costs(system, monkeypatch):
    cfg = make_cfg("experiment=offline", f"system={system}", "workload.agents=6", "workload.mal=32k", *ZERO)
    cfg["output"]["progress"] = False
    sim = build(cfg)
    sim.run()
    got = _digest(sim)
    # the reference: a lifecycle built with no costs at all (what dpsim ran before #11 item 4)
    monkeypatch.setattr(LifecycleCosts, "from_config", classmethod(lambda cls, c: cls()))
    ref = build(cfg)
    ref.run()
    assert _digest(ref) == got
    # a queue depth that never binds is one round too: identical
    monkeypatch.undo()
    cfg2 = make_cfg("experiment=offline", f"system={system}", "workload.agents=6", "workload.mal=32k",
                    *ZERO[:-1], "cluster.storage_queue_depth=1000000")
    cfg2["output"]["progress"] = False
    s2 = build(cfg2)
    s2.run()
    assert _digest(s2) == got


def test_nonzero_costs_cost_two_events_per_request():
    cfg = single_agent_cfg("ds27b", extra=ZERO)
    a = build(cfg, agents=[agent_trajectory()])
    a.run()
    cfg = single_agent_cfg("ds27b", extra=ZERO[:-1] + ("system.costs.sched_rpc_s=1e-3",
                                                       "system.costs.buffer_alloc_s=1e-5",
                                                       "system.costs.handoff_s=1e-4"))
    b = build(cfg, agents=[agent_trajectory()])
    b.run()
    # two requests, two timers each: decision + RPC + allocation call (one timer), hand-off
    assert b.events - a.events == 2 * 2


# ------------------------------------------------------------------ Oracle: control yes, I/O no
def test_oracle_pays_control_costs_not_io_costs():
    c = LifecycleCosts.from_config(make_cfg("system=oracle"))
    assert c.sched_s > 0 and c.handoff_s > 0
    assert c.alloc_s == 0 and c.read_queue_depth == 0
    d = LifecycleCosts.from_config(make_cfg("system=dualpath"))
    assert d.alloc_s > 0 and d.read_queue_depth > 0
    assert d.sched_s == c.sched_s and d.handoff_s == c.handoff_s


# ------------------------------------------------------------------ bad values: one clear line
@pytest.mark.parametrize("arg,key", [
    ("system.costs.sched_rpc_s=-1", "system.costs.sched_rpc_s"),
    ("system.costs.handoff_s=fast", "system.costs.handoff_s"),
    ("cluster.storage_queue_depth=-2", "cluster.storage_queue_depth"),
    ("cluster.storage_queue_depth=1.5", "cluster.storage_queue_depth"),
])
def test_bad_cost_values_give_one_clear_line(tmp_path, arg, key):
    p = subprocess.run([sys.executable, "-m", "dpsim.cli", arg, "workload.agents=2",
                        f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, (p.stdout[-500:], p.stderr[-2000:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("dpsim: error: ") and key in lines[0], p.stderr
