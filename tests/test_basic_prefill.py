"""Basic as the paper describes it (#11 item 2): requests wait in one FIFO queue until a PE can
take them (dpsim/scheduling/basic.py), and non-layerwise prefill copies a batch's whole cached
KV into PE HBM before its forward and sends it out after (prefill_modes/whole.py)."""
import numpy as np
import pytest

from dpsim.config import ConfigError
from dpsim.engines.prefill_modes import STRATEGIES
from dpsim.engines.prefill_modes.whole import WholeBatch
from dpsim.metrics.tables import request_table
from dpsim.runner import build, run

from helpers import make_cfg

SMALL = ("workload.agents=24", "workload.mal=64k", "cluster.gpus_per_node=2")


def _cfg(*extra):
    return make_cfg("system=basic", *SMALL, *extra)


def _sim(cfg, pe_hbm_tokens=None):
    sim = build(cfg)
    if pe_hbm_tokens is not None:
        for e in sim.pes:
            e.gpu.hbm_kv = pe_hbm_tokens * sim.kvb
    sim.run()
    return sim


@pytest.mark.parametrize("choice", ["least_tokens", "round_robin"])
def test_unbounded_lookahead_is_assignment_at_arrival(choice):
    """With a look-ahead no PE ever fills, every request leaves the queue as it arrives, to the
    PE and DE the arrival-time ``simple`` policy picks: the two runs are the same run."""
    cfg = _cfg(f"system.engine_choice={choice}", "system.basic.prefetch_batches=1000000000")
    a = request_table(run(cfg)[1])
    b = request_table(run(_cfg(f"system.engine_choice={choice}", "system.scheduler=simple",
                               "system.name=basic_simple"))[1])
    # the only scheduling wait is the decision + its RPC (system.costs, docs/fixed_costs.md)
    c = cfg["system"]["costs"]
    assert np.allclose(a.sched_wait_s, c["sched_decision_s"] + c["sched_rpc_s"], rtol=0, atol=1e-12)
    assert a.equals(b)


def test_requests_leave_the_queue_in_arrival_order_and_wait_there():
    summ, sim = run(_cfg("check_invariants=true"))
    assert summ["requests_completed"] == summ["requests_total"]
    t = request_table(sim).sort_values("rid")
    # Strict FIFO: requests are issued in rid order and placed in that order.
    assert (np.diff(t.sched_s.to_numpy()) >= 0).all()
    # Under this load some requests wait for a PE (beyond the decision + RPC every request pays,
    # system.costs): TTFT shows scheduling time.
    c = sim.cfg["system"]["costs"]
    assert (t.sched_wait_s > c["sched_decision_s"] + c["sched_rpc_s"] + 1e-9).sum() > 0
    assert summ["ttft_breakdown_s"]["scheduling"] > 0
    for part in ("scheduling", "allocation", "reading", "prefill"):
        assert summ["ttft_breakdown_s"][part] >= 0


def _held_at_admission(sim):
    """For each request r: the other requests on r's PE admitted before r (FIFO: lower rid) that
    had not started their first forward when r was admitted (ties in time count as started)."""
    by_pe = {}
    for r in sorted(sim.requests, key=lambda r: r.rid):
        by_pe.setdefault(r.pe.idx, []).append(r)
    for reqs in by_pe.values():
        for k, r in enumerate(reqs):
            yield r, [q for q in reqs[:k] if q.t_pf0 > r.t_sched]


@pytest.mark.parametrize("k", [1, 2])
def test_a_pe_holds_at_most_k_forwards_of_unstarted_requests(k):
    """Whatever a PE holds that has not started a forward fits ``prefetch_batches`` forwards:
    their prompt KV within k x the PE's KV HBM, their new tokens within k x the token budget
    (up to the hit lost to a partial block, which the request computes on top)."""
    budget = 2048  # small enough that, with the measured compute tables, held new tokens near k x it
    hbm_tokens = 100_000
    cfg = _cfg(f"system.basic.prefetch_batches={k}", f"system.batching.max_prefill_tokens={budget}")
    sim = _sim(cfg, pe_hbm_tokens=hbm_tokens)
    blk = sim.block
    binding = 0
    for r, held in _held_at_admission(sim):
        if not held:
            continue  # a PE holding nothing always takes the head
        kv = sum(q.prompt for q in held) + r.prompt
        new = sum(max(q.new - blk, 1) for q in held) + max(r.new - blk, 1)
        assert kv <= k * hbm_tokens
        assert new <= k * budget
        binding += kv > 0.8 * k * hbm_tokens or new > 0.8 * k * budget
    assert binding > 0  # a bound was nearly reached, so the check means something
    assert sim.n_done == len(sim.requests)


def test_lookahead_bounds_the_reads_in_flight():
    """More look-ahead lets more requests leave the queue and read ahead: less scheduling time."""
    waits = []
    for k in (1, 4):
        s, _ = run(_cfg(f"system.basic.prefetch_batches={k}"))
        waits.append(s["ttft_breakdown_s"]["scheduling"])
    assert waits[1] < waits[0]


def test_prefetch_batches_must_be_positive():
    with pytest.raises(Exception, match="prefetch_batches"):
        cfg = _cfg("system.basic.prefetch_batches=0")
        build(cfg)


class _Recorded(WholeBatch):
    log: list = []

    def start(self):
        self.t_phase = [self.eng.deps.clock.now]
        ins, outs = self.kv_in_out()
        self.bytes_in = sum(b for _r, b in ins)
        self.bytes_out = sum(b for _r, b in outs)
        self.kv_tokens = sum(r.hit + r.computed + bsz for r, bsz in self.items)  # cached + this chunk
        super().start()

    def _compute(self):
        self.t_phase.append(self.eng.deps.clock.now)
        super()._compute()

    def _computed(self, _ev=None):
        self.t_phase.append(self.eng.deps.clock.now)
        super()._computed(_ev)

    def done(self):
        if not self.finished:
            self.t_phase.append(self.eng.deps.clock.now)
            _Recorded.log.append(self)
        super().done()


def test_whole_prefill_loads_before_and_unloads_after_compute(monkeypatch):
    """Every Basic forward: the batch's KV fits PE HBM; compute starts only after all its cached
    KV crossed the CNIC (at most line rate), lasts T, and the engine stays busy until the KV
    left, which takes at least its bytes at line rate.  And the next batch's storage read does
    overlap a forward (the framework reads into DRAM ahead, §S4 step 1)."""
    monkeypatch.setitem(STRATEGIES, "whole", _Recorded)
    _Recorded.log = []
    cfg = _cfg()
    line = cfg["cluster"]["cnic_Bps"]
    sim = _sim(cfg)
    log = _Recorded.log
    assert log and all(type(b) is _Recorded for b in log)
    for b in log:
        t0, tc0, tc1, t1 = b.t_phase
        assert tc0 - t0 >= b.bytes_in / line * (1 - 1e-9)
        assert tc1 - tc0 == pytest.approx(b.T, rel=1e-9, abs=1e-12)
        assert t1 - tc1 >= b.bytes_out / line * (1 - 1e-9)
        assert b.kv_tokens * sim.kvb <= b.eng.gpu.hbm_kv * (1 + 1e-12)
    assert sum(b.bytes_in > 0 for b in log) > len(log) / 2  # most forwards load hit KV first
    # Storage reads of queued requests overlap their PE's forwards of other batches.
    spans = {}
    for b in log:
        spans.setdefault(b.eng.idx, []).append((b.t_phase[0], b.t_phase[-1], {id(r) for r, _ in b.items}))
    overlapping = 0
    for r in sim.requests:
        if r.t_read1 > r.t_read0:
            overlapping += any(s < r.t_read1 and r.t_read0 < e and id(r) not in ids
                               for s, e, ids in spans[r.pe.idx])
    assert overlapping > 0
