"""The analytical decode engine against a brute-force iteration-by-iteration reference."""
import math

import pytest
import simpy
from hypothesis import assume, given, settings, strategies as st

from dpsim.engines.decode import DecodeDeps, DecodeEngine
from dpsim.lifecycle.request import Request
from dpsim.cluster.topology import GPU
from dpsim.lifecycle.clock import Clock


def _Req(rid, prompt, gen):
    """A bare request (no agent, no cache hit): the engine reads rid, prompt, gen and writes
    t_second, t_end and stage."""
    return Request(rid, None, 0, prompt, 0, gen, 0.0)


class _CM:
    def __init__(self, t0, ts, tt, cap):
        self.c = (t0, ts, tt)
        self.decode_ctx_cap = cap

    def decode_coeffs(self):
        return self.c


class _Port:  # no EP peer: no model traffic
    def has_ep_peer(self, gpu):
        return False


class _Sim:
    def __init__(self, cm):
        self.env = self.clock = Clock()
        self.deps = DecodeDeps(self.clock, cm, _Port(), self.decode_done, 0.0, False)

    def timer(self, dt, cb):
        self.clock.timer(dt, cb)

    def decode_done(self, req, de):
        req.t_end = self.env.now


def _GPU():
    """A bare GPU (no node, no links): the engine reads its gid only."""
    return GPU(0, None, 0, None, None, None, None, 0.0)


def analytical(jobs, coeffs, cap):
    sim = _Sim(_CM(*coeffs, cap))
    de = DecodeEngine(_GPU(), 0, sim.deps)
    reqs = []
    for i, (t, prompt, gen) in enumerate(jobs):
        r = _Req(i, prompt, gen)
        reqs.append(r)
        sim.timer(t, lambda _e, r=r: de.join(r))
    sim.env.run()
    return [(r.t_second, r.t_end) for r in reqs]


def reference(jobs, coeffs, cap, ends=None):
    """Iteration by iteration: a joiner enters at the first iteration boundary at or after its
    arrival (immediately if the engine is idle).  ``ends``, if given, collects every iteration
    end."""
    t0, ts, tt = coeffs
    # A request with one token to generate got it from prefill: it leaves at once.
    out = {i: [t, t] for i, (t, p, g) in enumerate(jobs) if g <= 1}
    pending = sorted(((t, i, p, g) for i, (t, p, g) in enumerate(jobs) if g > 1))
    active = {}  # i -> [remaining, ctx]
    fresh = set()
    t = 0.0
    while pending or active:
        if not active:
            t = max(t, pending[0][0])
        while pending and pending[0][0] <= t:
            tj, i, p, g = pending.pop(0)
            active[i] = [g - 1, p + 1]
            out[i] = [t, math.nan]
            fresh.add(i)
            if g - 1 == 0:
                out[i][1] = t
                del active[i]
        if not active:
            continue
        S = sum(min(c, cap) if cap else c for _r, c in active.values())
        dt = t0 + ts * len(active) + tt * S
        first = [i for i in active if i in fresh]
        fresh.difference_update(first)
        t += dt
        if ends is not None:
            ends.append(t)
        for i in first:
            out[i][0] = t  # second token at the end of its first iteration
        for i in list(active):
            active[i][0] -= 1
            active[i][1] += 1
            if active[i][0] == 0:
                out[i][1] = t
                del active[i]
    res = []
    for i, (t_, p, g) in enumerate(jobs):
        ts_, te = out[i]
        res.append((ts_ if g > 1 else ts_, te))
    return res


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 2.0), st.integers(1, 3000), st.integers(1, 60)),
                min_size=1, max_size=12),
       st.sampled_from([(0.01, 1e-4, 1e-7, None), (0.02, 0.0, 2e-6, 1024), (0.005, 3e-4, 0.0, None)]))
def test_decode_matches_reference(jobs, params):
    t0, ts, tt, cap = params
    ends = []
    ref = reference(jobs, (t0, ts, tt), cap, ends)
    # An arrival that ties an iteration end up to rounding joins that iteration or the next as
    # each side's float sums decide (Hypothesis found one: three jobs end at an iteration end the
    # engine sums to 0.17329999999999998 and the reference to 0.1733; a job arrives at 0.1733).
    # With the sparse cap the engine's ends drift from the reference's by its linear-crossing
    # approximation (~1e-4 relative), so a tie is any arrival that close to an end.
    # Compare away from such ties; the test after this one pins the engine's rule at a tie.
    tie = 1e-3 if cap else 1e-9
    assume(not any(abs(t - e) <= tie * e for t, _p, _g in jobs for e in ends))
    got = analytical(jobs, (t0, ts, tt), cap)
    for (gs, ge), (rs, re_), (_t, _p, g) in zip(got, ref, jobs):
        # The analytical engine treats the sparse cap's crossing inside an interval as linear
        # growth; every other case is exact.
        tol = 2e-2 if cap else 1e-9
        assert ge == pytest.approx(re_, rel=tol, abs=1e-9)
        if g > 1:
            assert gs == pytest.approx(rs, rel=tol, abs=1e-9)


def test_single_request_closed_form():
    # One request, context c growing by one per iteration: sum_{j<k} (t0 + ts + tt (c + j)).
    t0, ts, tt = 0.01, 1e-4, 1e-7
    prompt, gen = 1000, 51
    k = gen - 1
    c = prompt + 1
    expect = k * (t0 + ts + tt * c) + tt * k * (k - 1) / 2
    (t2, te), = analytical([(0.0, prompt, gen)], (t0, ts, tt), None)
    assert te == pytest.approx(expect, rel=1e-12)
    assert t2 == pytest.approx(t0 + ts + tt * c, rel=1e-12)


def test_events_do_not_scale_with_tokens():
    sim = _Sim(_CM(0.01, 1e-4, 1e-7, None))
    de = DecodeEngine(_GPU(), 0, sim.deps)
    reqs = [_Req(i, 1000, 5000) for i in range(8)]
    for r in reqs:
        de.join(r)
    sim.env.run()
    # 8 x 5000 tokens, yet a handful of events.
    assert sim.clock.events < 50
    assert all(r.t_end == reqs[0].t_end for r in reqs)


def test_finish_timers_do_not_pile_up_with_joins():
    """Each join moves the batch's finish; a finish timer is set only when no timer already set
    rings before it (that one sets it when it rings), so the pending timers stay few however
    many requests join -- and the results are those of the closed form."""
    t0, ts, tt = 0.01, 1e-4, 0.0
    sim = _Sim(_CM(t0, ts, tt, None))
    de = DecodeEngine(_GPU(), 0, sim.deps)
    reqs = [_Req(i, 1000, 400) for i in range(60)]
    for i, r in enumerate(reqs):  # a join every 5 ms: the finish moves later each time
        sim.timer(0.005 * i, lambda _e, r=r: de.join(r))
    pending = []
    sim.timer(0.35, lambda _e: pending.append(sim.clock.pending()))  # all joined, none finished
    sim.env.run()
    assert pending == [1]  # the finish (one timer per join, 60, before)
    assert de._n_armed == 0 and de._fin_seq == -1
    got = [(r.t_second, r.t_end) for r in reqs]
    ref = reference([(0.005 * i, 1000, 400) for i in range(60)], (t0, ts, tt), None)
    for (gs, ge), (rs, re_) in zip(got, ref):
        assert ge == pytest.approx(re_, rel=1e-9) and gs == pytest.approx(rs, rel=1e-9)



@pytest.mark.parametrize("arrival, joins_at", [
    (0.03, 3),                           # just before the engine's end of iteration 3
    (3 * 0.01, 3),                       # exactly at it (0.030000000000000002)
    (math.nextafter(3 * 0.01, 1.0), 4),  # one ulp after it
])
def test_arrival_at_an_iteration_end_joins_the_iteration_it_starts(arrival, joins_at):
    """A request joins at the first iteration end at or after its arrival, by the engine's own
    arithmetic.  Iterations of a constant 10 ms (ts = tt = 0) end at j x 0.01.  Before the fix,
    an arrival just before an end waited one iteration too many: the step count's rounding
    slack counted that end as passed."""
    jobs = [(0.0, 1, 50), (arrival, 1, 5)]
    got = analytical(jobs, (0.01, 0.0, 0.0), None)
    ref = reference(jobs, (0.01, 0.0, 0.0), None)
    t_j = joins_at * 0.01
    assert got[1][0] == pytest.approx(t_j + 0.01, rel=1e-9)  # its first iteration
    assert got[1][1] == pytest.approx(t_j + 0.04, rel=1e-9)  # four steps
    for (gs, ge), (rs, re_) in zip(got, ref):
        assert ge == pytest.approx(re_, rel=1e-9) and gs == pytest.approx(rs, rel=1e-9)
