"""Replay semantics: agents beyond the trajectories, scaling, MAL truncation, think time."""
from __future__ import annotations

import numpy as np
import pytest

from dpsim.workload import Trajectory, build_agents, bundled_path, generate, read_trajectories


def _ctx_prev(t):
    return np.concatenate(([0], (t.prompt + t.gen)[:-1]))


def _valid(t):
    Trajectory.from_rounds(t.id, t.rounds())  # the canonical invariants hold
    assert (t.hit <= _ctx_prev(t)).all()


@pytest.fixture(scope="module")
def syn():
    return generate("32k", n=50, seed=1)


@pytest.fixture(scope="module")
def weka():
    return read_trajectories(bundled_path())


def test_first_agents_replay_trajectories_in_order(syn):
    agents = build_agents(syn, 30)
    assert [a.id for a in agents] == [t.id for t in syn[:30]]
    for a, t in zip(agents, syn):
        assert a.prompt.tolist() == t.prompt.tolist() and a.hit.tolist() == t.hit.tolist()
    assert len(build_agents(syn, None)) == len(syn)


def test_extra_agents_share_no_prefix(syn, weka):
    for trajs in (syn, weka):
        agents = build_agents(trajs, len(trajs) + 200, seed=3)
        extra = agents[len(trajs):]
        assert len(agents) == len(trajs) + 200
        assert len({a.id for a in agents}) == len(agents)
        by_id = {t.id: t for t in trajs}
        for a in extra:
            src = by_id[a.meta["source"]]
            P = a.meta["prefix_tokens"]
            assert a.hit[0] == 0 and a.gen[0] == 1 and a.prompt[0] == a.append[0] == P
            assert 64 <= P <= 512
            # the real rounds follow, shifted by the synthetic round, hitting it
            assert a.n_rounds == src.n_rounds + 1
            assert (a.prompt[1:] == src.prompt + P + 1).all()
            assert a.hit[1] == P + 1
            _valid(a)
        # random prefix lengths: agents sampling the same trajectory differ in their first round
        firsts = [int(a.prompt[0]) for a in extra]
        assert len(set(firsts)) > 50


def test_deterministic_by_seed(syn):
    a = build_agents(syn, 300, seed=5)
    b = build_agents(syn, 300, seed=5)
    c = build_agents(syn, 300, seed=6)
    key = lambda xs: [(x.id, x.prompt.tolist()) for x in xs]  # noqa: E731
    assert key(a) == key(b) and key(a) != key(c)


@pytest.mark.parametrize("scale", [1.5, 2, 3])
def test_append_scaling_then_mal_truncation(syn, scale):
    mal = 32768
    agents = build_agents(syn, None, append_scale=scale, mal=mal)
    by_id = {t.id: t for t in syn}
    for a in agents:
        t = by_id[a.id]
        assert (a.prompt + a.gen).max() <= mal
        n = a.n_rounds
        assert n <= t.n_rounds
        assert a.append.tolist() == np.maximum(1, np.rint(t.append[:n] * scale)).astype(int).tolist()
        assert a.gen.tolist() == t.gen[:n].tolist()
        # the context is rebuilt: prompt = all earlier tokens + append; §S8 hits remain
        assert np.array_equal(a.prompt, _ctx_prev(a) + a.append)
        assert np.array_equal(a.hit, _ctx_prev(a))
        # truncation drops exactly the rounds from the first that would exceed the MAL
        if n < t.n_rounds:
            nxt = a.prompt[-1] + a.gen[-1] + round(t.append[n] * scale) + t.gen[n]
            assert nxt > mal
    assert sum(a.n_rounds for a in agents) < sum(t.n_rounds for t in syn)


def test_gen_scaling(syn):
    agents = build_agents(syn, None, gen_scale=2.0, mal=32768)
    for a, t in zip(agents, syn):
        assert a.gen.tolist() == (2 * t.gen[:a.n_rounds]).tolist()
        assert (a.prompt + a.gen).max() <= 32768


def test_scaling_real_trace_keeps_misses_and_compactions(weka):
    agents = build_agents(weka, None, append_scale=2.0)
    for a, t in zip(agents, weka):
        _valid(a)
        assert a.n_rounds == t.n_rounds  # no MAL given: nothing truncated
        # tokens of the carried context that were not hit stay not hit
        kept, kept2 = t.prompt - t.append, a.prompt - a.append
        assert ((kept2 - a.hit) == (kept - t.hit)).all()
        assert a.total_tokens >= t.total_tokens
    # trajectories with growing contexts grow by the scaled appends
    grow = [(a, t) for a, t in zip(agents, weka) if (np.diff(t.prompt) >= 0).all()]
    assert grow
    for a, t in grow:
        assert a.prompt[-1] - t.prompt[-1] == (a.append - t.append).sum()


def test_mal_truncation_on_real_trace_and_prefix_fits(weka):
    mal = 131072
    agents = build_agents(weka, 60, mal=mal, seed=2)
    assert all((a.prompt + a.gen).max() <= mal for a in agents)
    assert len(agents) == 60
    usable = [t for t in weka if t.prompt[0] + t.gen[0] <= mal]
    assert [a.id for a in agents[:len(usable)]] == [t.id for t in usable]
    with pytest.raises(ValueError, match="mal"):
        build_agents(weka, 10, mal=1000)


def test_think_modes(weka):
    t = weka[0]
    assert (build_agents([t], 1, think="zero")[0].think_s == 0).all()
    assert build_agents([t], 1, think="trace")[0].think_s.tolist() == t.think_s.tolist()
    np.testing.assert_allclose(build_agents([t], 1, think=0.5)[0].think_s, 0.5 * t.think_s)
    extra = build_agents([t], 3, think="trace", seed=1)[1:]
    for a in extra:
        assert a.think_s[0] == 0 and a.think_s[1:].tolist() == t.think_s.tolist()
    for bad in ("sometimes", -1, float("nan")):
        with pytest.raises(ValueError, match="think"):
            build_agents([t], 1, think=bad)


def test_bad_arguments(syn):
    with pytest.raises(ValueError, match="agents"):
        build_agents(syn, 0)
    with pytest.raises(ValueError, match="append_scale"):
        build_agents(syn, 5, append_scale=0)
    with pytest.raises(ValueError, match="trajs"):
        build_agents([], 5)
