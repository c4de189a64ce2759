"""§S6 rules of the DualPath scheduler, pinned on small hand-made states."""
import math

import pytest

from dpsim.engines.request import Request
from dpsim.runner import build

from helpers import make_cfg


class _Agent:
    aid = 0


def _sim(P=2, D=2, g=2, *extra):
    return build(make_cfg("system=dualpath", f"cluster.prefill_nodes={P}", f"cluster.decode_nodes={D}",
                          f"cluster.gpus_per_node={g}", "workload.agents=2", *extra))


def _req(rid, prompt=1000, hit=900, gen=10):
    return Request(rid, _Agent(), 0, prompt, hit, gen, 0.0)


def test_alpha_beta_derived_from_hardware():
    sim = _sim()
    pol = sim.policy
    c = sim.cfg["cluster"]
    assert pol.alpha == pytest.approx(3.0 * c["snic_Bps"] * c["snic_efficiency"] / sim.kvb)
    assert pol.beta == pytest.approx(5.0 * pol._prefill_tokens_per_s())
    assert pol.beta > 0 and math.isfinite(pol.beta)


def test_pe_fetch_gives_head_to_least_loaded_non_overloaded_engine():
    sim = _sim()
    pol = sim.policy
    g0 = pol.pe_groups[0]
    g0[0].tok, g0[1].tok = 500, 100
    r = _req(1)
    pol.pe_queue.append(r)
    pol._pe_fetch(0)
    assert r.pe is g0[1]
    assert g0[1].tok == 100 + (r.prompt - r.hit) and g0[1].seq == 1


def test_pe_fetch_skips_overloaded_and_stops_when_all_are():
    sim = _sim()
    pol = sim.policy
    g0 = pol.pe_groups[0]
    g0[0].tok = pol.beta + 1  # overloaded
    g0[1].tok = pol.beta - 150  # takes requests until above beta
    reqs = [_req(i, prompt=1000, hit=900) for i in range(5)]  # 100 new tokens each
    pol.pe_queue.extend(reqs)
    pol._pe_fetch(0)
    assigned = [r for r in reqs if r.pe is not None]
    assert all(r.pe is g0[1] for r in assigned)
    assert len(assigned) == 2  # -150 -> -50 -> +50 (> beta: overloaded, the fetch stops)
    assert list(pol.pe_queue) == reqs[2:]


def test_short_queue_engines_win_over_long_queue():
    sim = _sim(1, 1, 2)
    pol = sim.policy
    # Put the two engines of one group in different classes by giving them different nodes'
    # read queues (a hand-made state: engines of a group normally share one node).
    e_short, e_long = pol.pe_groups[0]
    other = sim.cluster.decode_nodes[0]
    e_long.gpu = type(e_long.gpu)(e_long.gpu.gid, other, 0, e_long.gpu.cnic_rd, e_long.gpu.cnic_wr,
                                  None, None, e_long.gpu.hbm_kv)
    other.read_q = pol.alpha + 1  # long queue
    e_short.gpu.node.read_q = 0.0
    e_short.tok, e_long.tok = 1000, 10  # the long-queue engine is less loaded, still loses
    r = _req(1)
    pol.pe_queue.append(r)
    pol._pe_fetch(0)
    assert r.pe is e_short


def test_de_level1_least_total_tokens_and_level2_rules():
    sim = _sim(1, 2, 2)
    pol = sim.policy
    kvb = sim.kvb
    # Level 1: group 1 already holds more tokens -> the request goes to group 0.
    pol._group_add(1, 5000)
    r = _req(1, prompt=2000, hit=1900, gen=100)
    pol.de_queue.append(r)
    pol._de_fetch(1)  # any group's fetch drains the global queue
    assert list(pol.de_private[0]) == [r] and not pol.de_private[1]
    # Level 2 on group 0: among engines with tok_e + len <= Z, the least seq_e.
    e0, e1 = pol.de_groups[0]
    pol.de_private[0].clear()
    r = _req(2, prompt=90, hit=50, gen=10)  # len 100
    e0.tok, e0.seq = 1000, 5
    e1.tok, e1.seq = 1000, 1
    assert 1100 <= 1.05 * (100 + 2000) / 2  # both under Z
    pol.de_private[0].append(r)
    pol._de_fetch(0)
    assert r.de is e1
    # Only e0 is under Z: it wins although e1 has fewer sequences.
    r2 = _req(3, prompt=90, hit=50, gen=10)
    e0.tok, e0.seq = 0, 3
    e1.tok, e1.seq = 2000, 0
    assert 0 + 100 <= 1.05 * 2100 / 2 < 2000 + 100
    pol.de_private[0].append(r2)
    pol._de_fetch(0)
    assert r2.de is e0


def test_de_level2_falls_back_to_least_tokens_and_stops_without_hbm():
    sim = _sim(1, 1, 2)
    pol = sim.policy
    kvb = sim.kvb
    e0, e1 = pol.de_groups[0]
    big = _req(1, prompt=4000, hit=3000, gen=100)
    e0.tok, e0.seq = 4000, 0
    e1.tok, e1.seq = 3000, 9
    pol.de_private[0].append(big)
    pol._de_fetch(0)
    ln = big.prompt + big.gen
    # Z = 1.05 (4100 + 7000) / 2 = 5827: neither engine fits under Z -> the least tok_e.
    assert big.de is e1
    # No engine has the HBM: the request stays queued and the fetch ends.
    for e in (e0, e1):
        e.gpu.hbm_used = e.gpu.hbm_kv - 10 * kvb  # room for 10 tokens only
    r = _req(2)
    pol.de_private[0].append(r)
    pol._de_fetch(0)
    assert r.de is None and list(pol.de_private[0]) == [r]


def test_read_path_by_shorter_read_queue():
    sim = _sim(1, 1, 2)
    pol = sim.policy
    pe, de = sim.pes[0], sim.des[0]
    pe.gpu.node.read_q, de.gpu.node.read_q = 10, 5
    assert pol.plan(_req(1), pe, de).label == "de"
    pe.gpu.node.read_q, de.gpu.node.read_q = 5, 10
    assert pol.plan(_req(1), pe, de).label == "pe"


def test_quota_batching_cuts_the_overflowing_request_by_binary_search():
    sim = _sim(1, 1, 1, "system.batching.max_prefill_tokens=1000000")
    pol = sim.policy
    cm = sim.compute
    pe = sim.pes[0]
    from collections import deque
    a, b = _req(1, prompt=30300, hit=30000), _req(2, prompt=200000, hit=100000)
    for r in (a, b):
        r.computed = 0
        r.new = r.prompt - r.hit
    q = deque([a, b])
    items = pol.form_batch(pe, q)
    attn = cm.attention_time_forward
    assert items[0] == (a, a.new)
    (rb, cut), = items[1:]
    assert rb is b and 0 < cut < b.new
    wa = cm.attn_work(a.hit, a.new)
    inside = attn(a.new + cut, wa + cm.attn_work(b.hit, cut), 2)
    over = attn(a.new + cut + 1, wa + cm.attn_work(b.hit, cut + 1), 2)
    assert inside <= pol.quota < over  # the largest chunk that fits the 300 ms quota
    assert not q  # both left the queue; the cut request is re-queued after the forward


def test_tick_skips_a_full_pe_group_until_the_ledger_lowers_a_tok():
    """A PE group whose fetch found every engine overloaded is skipped by later ticks (its
    engines are not read) until the ledger brings one engine's tok_e back to beta: then the
    next tick gives it the head request, as a fetch of every group would have."""
    sim = _sim()
    pol = sim.policy
    for g in pol.pe_groups:
        for e in g:
            e.tok = int(pol.beta) + 1  # tok_e counts tokens (an integer); beta need not be one
    e = pol.pe_groups[1][0]
    e.tok = int(pol.beta) - 10
    held = _req(99, prompt=1000, hit=0)
    pol.ledger.charge_pe(held, e)  # 1000 tokens: e is overloaded too
    assert e.tok == int(pol.beta) + 990 > pol.beta
    reqs = [_req(i) for i in range(3)]
    pol.pe_queue.extend(reqs)
    pol._tick()
    assert pol._pe_full == [True] * len(pol.pe_groups)
    assert all(r.pe is None for r in reqs) and list(pol.pe_queue) == reqs
    pol.ledger.charge_pe(_req(98, prompt=10, hit=0), pol.pe_groups[0][0])  # up: stays full
    assert pol._pe_full[0]
    pol.ledger.release_pe(held)  # down to beta - 10: the group may take work again
    assert pol._pe_full == [g is not pol.pe_groups[1] for g in pol.pe_groups]
    pol._tick()
    assert reqs[0].pe is e and list(pol.pe_queue) == reqs[1:]
    assert pol._pe_full[1]  # e took one request (100 tokens): overloaded again, group full
