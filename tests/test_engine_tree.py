"""The tournament tree behind Basic's O(log n) engine choice (dpsim/scheduling/engine_tree.py):
it must choose exactly what a scan of every engine chooses."""
import random

import pytest

from dpsim.runner import build, run
from dpsim.scheduling.engine_tree import MinTree

from helpers import make_cfg

INF = float("inf")


def _scan_least(tok, ok):
    best = None
    for i, t in enumerate(tok):
        if ok(i) and (best is None or t < tok[best]):
            best = i
    return -1 if best is None else best


def _scan_first(start, ok, n):
    for j in range(n):
        i = (start + j) % n
        if ok(i):
            return i
    return -1


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 33, 100])
def test_tree_agrees_with_a_scan_under_random_updates(n):
    rng = random.Random(n)
    t = MinTree(n)
    tok = [0] * n
    a = [-INF] * n
    b = [-INF] * n
    for step in range(3000):
        i = rng.randrange(n)
        if rng.random() < 0.5:
            tok[i] = rng.randrange(0, 50)  # many ties: (tok, idx) order must hold
            t.set_tok(i, tok[i])
        else:
            a[i] = -INF if rng.random() < 0.2 else rng.randrange(0, 100)
            b[i] = -INF if rng.random() < 0.2 else rng.uniform(-100, 0)
            t.set(i, tok[i], a[i], b[i])
        amax, bmax = rng.randrange(-5, 100), rng.uniform(-100, 5)
        veto = set(rng.sample(range(n), rng.randrange(0, n + 1)))  # the exact test may say no more often

        def ok(j):
            return a[j] <= amax and b[j] <= bmax and j not in veto

        assert t.least_with_room(amax, bmax, ok) == _scan_least(tok, ok)
        start = rng.randrange(n)
        assert t.first_with_room(start, amax, bmax, ok) == _scan_first(start, ok, n)
        assert t.least() == _scan_least(tok, lambda j: True)


def test_tree_refuses_an_empty_side():
    with pytest.raises(ValueError, match="at least one engine"):
        MinTree(0)


def _scan_choice(pol, req):
    """The definition Basic's choice must meet: least (tok_e, index) among the PEs that can take."""
    best = None
    for e in pol.ctx.pes:
        if pol.can_take(e, req) and (best is None or e.tok < best.tok):
            best = e
    return best


@pytest.mark.parametrize("choice", ["least_tokens", "round_robin"])
def test_basic_choices_match_a_scan_during_a_run(choice, monkeypatch):
    """Every PE/DE choice of a real Basic run equals the scan's (the trees are kept by the ledger's
    change reports, including a hit that shrinks after assignment)."""
    sim = build(make_cfg("system=basic", "cluster.prefill_nodes=3", "cluster.decode_nodes=2",
                         f"system.engine_choice={choice}", "workload.agents=40"))
    pol = sim.policy
    orig_pe, orig_de = pol._choose_pe, pol._choose_de
    seen = {"pe": 0, "de": 0}

    def check_pe(req):
        want = None
        if choice == "least_tokens":
            want = _scan_choice(pol, req)
        else:
            pes = pol.ctx.pes
            n = len(pes)
            for j in range(1, n + 1):
                e = pes[(pol._pe_i + j) % n]
                if pol.can_take(e, req):
                    want = e
                    break
        got = orig_pe(req)
        assert got is want
        seen["pe"] += 1
        return got

    def check_de():
        if choice == "least_tokens":
            des = pol.ctx.des
            want = min(des, key=lambda e: (e.tok, e.idx))
            got = orig_de()
            assert got is want
        else:
            got = orig_de()
        seen["de"] += 1
        return got

    monkeypatch.setattr(pol, "_choose_pe", check_pe)
    monkeypatch.setattr(pol, "_choose_de", check_de)
    sim.run()
    assert seen["pe"] > 100 and seen["de"] > 100
    # the trees end equal to the engines' loads
    for e in pol.ctx.pes:
        assert pol.pe_tree.tok[pol.pe_tree.size + e.idx] == e.tok * len(pol.ctx.pes) + e.idx
    for e in pol.ctx.des:
        assert pol.de_tree.tok[pol.de_tree.size + e.idx] == e.tok * len(pol.ctx.des) + e.idx
