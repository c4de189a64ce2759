"""The bandwidth-sharing core: max-min fairness, priority classes, closed forms, conservation."""
import math

import pytest
import simpy
from hypothesis import given, settings, strategies as st

import dpsim.net as dnet
from dpsim.net import HIGH, LOW, FixedRateBackend

# Every test runs on both builds of the network: the pure-Python reference and the compiled
# (Cython) one generated from the same sources (skipped when the extension is not built).
IMPLS = [pytest.param(dnet.PYTHON, id="python"),
         pytest.param(dnet.COMPILED, id="compiled", marks=pytest.mark.skipif(
             dnet.COMPILED is None, reason=f"compiled dpsim.net not built ({dnet.COMPILED_ERROR})"))]
both = pytest.mark.parametrize("impl", IMPLS)


def _flow(impl, i, route, prio=LOW, max_rate=math.inf):
    return impl.Transfer(i, tuple(route), 1.0, prio, max_rate, None, None)


@st.composite
def topologies(draw):
    n_links = draw(st.integers(1, 6))
    caps = [draw(st.floats(0.5, 100.0)) for _ in range(n_links)]
    n_flows = draw(st.integers(1, 12))
    flows = []
    for i in range(n_flows):
        idx = draw(st.lists(st.integers(0, n_links - 1), min_size=1, max_size=n_links, unique=True))
        prio = draw(st.sampled_from([LOW, LOW, HIGH]))
        mr = draw(st.one_of(st.just(math.inf), st.floats(0.1, 50.0)))
        flows.append((idx, prio, mr))
    share = draw(st.sampled_from([0.99, 0.9, 0.5, 1.0]))
    return caps, flows, share


def _build(impl, topo):
    caps, spec, share = topo
    links = [impl.Link(f"l{i}", c) for i, c in enumerate(caps)]
    flows = [_flow(impl, i, [links[j] for j in idx], prio, mr) for i, (idx, prio, mr) in enumerate(spec)]
    return links, flows, share


@both
@settings(max_examples=300, deadline=None)
@given(topo=topologies())
def test_maxmin_properties(impl, topo):
    links, flows, share = _build(impl, topo)
    allocate = impl.allocate
    for l in links:
        l.flows = [f for f in flows if l in f.route]
    allocate(flows, links, share)
    tol = 1e-7
    load = {l: 0.0 for l in links}
    high = {l: 0.0 for l in links}
    for f in flows:
        assert f.rate >= -tol
        assert f.rate <= f.max_rate * (1 + tol)
        for l in f.route:
            load[l] += f.rate
            if f.prio == HIGH:
                high[l] += f.rate
    # No link above capacity; the high class never above its share where low traffic exists.
    for l in links:
        assert load[l] <= l.capacity * (1 + tol)
        has_low = any(f.prio == LOW for f in l.flows)
        if has_low:
            assert high[l] <= l.capacity * share * (1 + tol)
    # Max-min: every flow is at its own cap or crosses a bottleneck link that is saturated for
    # its class and on which no flow of its class gets more.
    for f in flows:
        if f.rate >= f.max_rate * (1 - 1e-6):
            continue
        ok = False
        for l in f.route:
            same = [g for g in l.flows if g.prio == f.prio]
            if f.prio == HIGH:
                has_low = any(g.prio == LOW for g in l.flows)
                cap = l.capacity * share if has_low else l.capacity
                sat = high[l] >= cap * (1 - 1e-6)
            else:
                sat = load[l] >= l.capacity * (1 - 1e-6)
            if sat and all(g.rate <= f.rate * (1 + 1e-6) + 1e-9 for g in same):
                ok = True
                break
        assert ok, f"flow {f.id} (rate {f.rate}) has no bottleneck"


def _run(impl, transfers, caps, check=True, backend=None, share=0.99):
    env = simpy.Environment()
    net = impl.Network(env, high_share=share, check=check, backend=backend)
    links = [net.add_link(f"l{i}", c) for i, c in enumerate(caps)]
    done = {}

    def start(i, route, size, prio, delay, mr):
        def go(_e=None):
            net.transfer([links[j] for j in route], size, lambda t, i=i: done.__setitem__(i, env.now),
                         prio=prio, max_rate=mr)
        if delay > 0:
            ev = env.timeout(delay)
            ev.callbacks.append(go)
        else:
            go()
    for i, (route, size, prio, delay, mr) in enumerate(transfers):
        start(i, route, size, prio, delay, mr)
    env.run()
    return net, links, done


@both
@pytest.mark.parametrize("n", [1, 2, 5, 17])
def test_n_equal_transfers_one_link(impl, n):
    S, C = 1e9, 25e9
    net, _l, done = _run(impl, [([0], S, LOW, 0.0, math.inf)] * n, [C])
    assert len(done) == n
    for t in done.values():
        assert t == pytest.approx(n * S / C, rel=1e-9)
    assert net.bytes_delivered == pytest.approx(n * S)


@both
def test_two_hops_bottleneck(impl):
    S = 3e9
    _n, _l, done = _run(impl, [([0, 1], S, LOW, 0.0, math.inf)], [50e9, 20e9])
    assert done[0] == pytest.approx(S / 20e9, rel=1e-12)


@both
def test_staggered_start_closed_form(impl):
    # A starts at 0 with S bytes; B starts at t1 with S bytes on the same link of capacity C.
    S, C, t1 = 10.0, 2.0, 1.0
    _n, _l, done = _run(impl, [([0], S, LOW, 0.0, math.inf), ([0], S, LOW, t1, math.inf)], [C])
    # A alone until t1: C t1 delivered; then both at C/2 until A ends.
    tA = t1 + (S - C * t1) / (C / 2)
    assert done[0] == pytest.approx(tA, rel=1e-12)
    # B got (tA - t1) C/2, then alone at C.
    tB = tA + (S - (tA - t1) * C / 2) / C
    assert done[1] == pytest.approx(tB, rel=1e-12)


@both
def test_priority_classes_share(impl):
    # High and low on one link: high gets 99%, low the remaining 1% (plus idle capacity).
    S, C = 99.0, 100.0
    _n, _l, done = _run(impl, [([0], S, HIGH, 0.0, math.inf), ([0], 100.0, LOW, 0.0, math.inf)], [C])
    assert done[0] == pytest.approx(1.0, rel=1e-9)  # 99 B at 99 B/s
    # Low got 1 B in the first second, then the whole link for the remaining 99 B.
    assert done[1] == pytest.approx(1.0 + 99.0 / 100.0, rel=1e-9)


@both
def test_high_alone_uses_full_link(impl):
    _n, _l, done = _run(impl, [([0], 100.0, HIGH, 0.0, math.inf)], [100.0])
    assert done[0] == pytest.approx(1.0)


@both
def test_max_rate_caps_transfer_and_frees_the_rest(impl):
    # A capped at 10 B/s; B takes what is left of 100 B/s.
    _n, _l, done = _run(impl, [([0], 10.0, LOW, 0.0, 10.0), ([0], 90.0, LOW, 0.0, math.inf)], [100.0])
    assert done[0] == pytest.approx(1.0)
    assert done[1] == pytest.approx(1.0)


@both
def test_latency_delays_first_byte(impl):
    env = simpy.Environment()
    net = impl.Network(env, check=True)
    l = net.add_link("l", 10.0)
    out = []
    net.transfer([l], 10.0, lambda t: out.append(env.now), latency=0.5)
    env.run()
    assert out == [pytest.approx(1.5)]


@both
def test_zero_size_and_empty_route_complete_immediately(impl):
    env = simpy.Environment()
    net = impl.Network(env)
    l = net.add_link("l", 10.0)
    out = []
    net.transfer([l], 0.0, lambda t: out.append(("zero", env.now)))
    net.transfer([], 1e9, lambda t: out.append(("free", env.now)))
    env.run()
    assert sorted(out) == [("free", 0.0), ("zero", 0.0)]


@both
def test_fixed_rate_backend_ignores_sharing(impl):
    net, _l, done = _run(impl, [([0], 10.0, LOW, 0.0, math.inf)] * 3, [10.0], check=False,
                         backend=FixedRateBackend())
    assert all(t == pytest.approx(1.0) for t in done.values())


@both
@settings(max_examples=int(__import__("os").environ.get("DPSIM_HYP_EXAMPLES", 60)), deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True),
                          st.floats(1.0, 1e4), st.sampled_from([LOW, HIGH]),
                          st.floats(0.0, 5.0), st.one_of(st.just(math.inf), st.floats(1.0, 1e3))),
                min_size=1, max_size=25),
       st.lists(st.floats(10.0, 1e3), min_size=4, max_size=4))
def test_dynamic_conservation_and_capacity(impl, transfers, caps):
    """Random arrivals: every transfer completes, bytes delivered = requested per transfer
    (checked inside the network), no link ever above capacity (checked at every re-rate),
    and link byte counters equal the bytes of the transfers that crossed them."""
    net, links, done = _run(impl, transfers, caps, check=True)
    assert len(done) == len(transfers)
    assert net.bytes_delivered == pytest.approx(net.bytes_requested)
    net.flush()
    for j, l in enumerate(links):
        expect = sum(s for (route, s, *_r) in transfers if j in route)
        assert l.delivered(net.env.now) == pytest.approx(expect, rel=1e-6, abs=1e-6)
    # No transfer can beat its bottleneck alone.
    for i, (route, s, prio, delay, mr) in enumerate(transfers):
        best = min([caps[j] for j in route] + [mr])
        assert done[i] - delay >= s / best * (1 - 1e-9)


@both
def test_bad_transfer_arguments(impl):
    env = simpy.Environment()
    net = impl.Network(env)
    l = net.add_link("l", 1.0)
    with pytest.raises(ValueError, match="size"):
        net.transfer([l], -1.0)
    with pytest.raises(ValueError, match="max_rate"):
        net.transfer([l], 1.0, max_rate=0.0)
    with pytest.raises(ValueError, match="capacity"):
        net.add_link("bad", 0.0)
    with pytest.raises(ValueError, match="high_share"):
        impl.Network(env, high_share=0.0)


@both
def test_external_backend_completes_when_told(impl):
    from dpsim.net import ExternalBackend

    class Later(ExternalBackend):
        def __init__(self):
            self.started = []

        def start(self, net, tr):
            self.started.append(tr)
            # Pretend the hardware takes 2 s per transfer.
            ev = net.env.timeout(2.0)
            ev.callbacks.append(lambda _e: net.complete(tr))

    env = simpy.Environment()
    be = Later()
    net = impl.Network(env, backend=be)
    l = net.add_link("l", 1.0)
    done = []
    net.transfer([l], 10.0, lambda t: done.append(env.now))
    net.transfer([l], 10.0, lambda t: done.append(env.now), latency=1.0)
    env.run()
    assert done == [2.0, 3.0]
    assert net.n_completed == 2 and net.bytes_delivered == 20.0
    assert l.delivered(env.now) == 20.0


@both
def test_cap_change_on_unsaturated_links_applies_at_once(impl):
    """A stream at its cap whose links are not saturated before or after a cap change: its new
    rate holds at once (no re-rating wake-up; nobody else's rate can change), and the books agree
    with a full recomputation (check mode).  On a link the change would saturate it waits for the
    re-rating at the end of the instant (priority classes, max-min within them)."""
    env = simpy.Environment()
    net = impl.Network(env, check=True)
    l = net.add_link("l", 100.0)
    other = net.add_link("o", 100.0)
    st = net.stream([l, other], 30.0, prio=HIGH)
    bulk = net.transfer([other], 1e9, max_rate=20.0)  # capped: other stays unsaturated (50 < 100)
    env.run(until=1.0)
    assert (st.rate, bulk.rate) == (pytest.approx(30.0), pytest.approx(20.0))
    wakes = net.wakeups
    net.set_max_rate(st, 45.0)
    assert st.rate == 45.0 and l.rate_sum == pytest.approx(45.0) and other.rate_sum == pytest.approx(65.0)
    env.run(until=2.0)
    assert net.wakeups == wakes  # no re-rating was needed
    net.flush()  # byte counters are brought up to date lazily
    assert l.acc_bytes == pytest.approx(30.0 + 45.0) and other.acc_bytes == pytest.approx(50.0 + 65.0)
    net.set_max_rate(st, 95.0)  # other would carry 115 > 100: re-rated at the end of the instant
    assert st.rate == 45.0
    env.run(until=3.0)
    # the high-priority stream gets its 95 (<= 99% of the link), the low-priority transfer the rest
    assert st.rate == pytest.approx(95.0) and bulk.rate == pytest.approx(5.0)
    assert other.rate_sum == pytest.approx(100.0)


@both
def test_streams_and_stop(impl):
    """A stream wants a rate until stopped; stopping during its latency means it never flows;
    stopping a transfer frees its share for the others at once."""
    env = simpy.Environment()
    net = impl.Network(env, check=True)
    l = net.add_link("l", 100.0)
    st = net.stream([l], 30.0, prio=HIGH)
    late = net.stream([l], 10.0, prio=HIGH)
    late_delayed = net.transfer([l], 50.0, latency=1.0)
    done = []
    bulk = net.transfer([l], 140.0, lambda t: done.append(env.now))
    net.stop(late_delayed)  # never starts flowing
    env.run(until=1.0)
    assert st.rate == pytest.approx(30.0) and late.rate == pytest.approx(10.0)
    assert bulk.rate == pytest.approx(60.0)
    net.stop(late)
    net.set_max_rate(st, 20.0)
    env.run(until=2.0)
    assert bulk.rate == pytest.approx(80.0)
    env.run()
    assert done == [pytest.approx(2.0)]  # 60 B in the first second, 80 B in the second
    assert late_delayed.t_start < 0 and late_delayed.done
    net.stop(st)
    assert l.rate_sum == pytest.approx(0.0) and l.n_flows == 0 and not l.live_flows()


@both
def test_many_pending_wakeups_run_in_time_order(impl):
    """Each new wake-up is the earliest pending (the network keeps them as a stack, grown when
    full): 40 transfers whose first bytes are due in reverse order of submission each arm one,
    and every transfer still ends at its own latency + size / capacity, in time order."""
    env = simpy.Environment()
    net = impl.Network(env, check=True)
    links = [net.add_link(f"l{i}", 10.0) for i in range(40)]
    ends = []
    for i in range(40):
        lat = 40.0 - i
        net.transfer([links[i]], 5.0, lambda t, lat=lat: ends.append((env.now, lat)), latency=lat)
    env.run()
    assert [lat for _, lat in ends] == sorted(40.0 - i for i in range(40))
    assert all(t == pytest.approx(lat + 0.5) for t, lat in ends)
    assert net.wakeups >= 40 and not net.busy()


@both
def test_link_flows_keep_their_start_order(impl):
    """A link lists its flowing transfers in the order they started: one that ends leaves the
    list (the others keep their order), a new one goes last, one that never flowed is not
    there, and none is listed twice.  (The re-rating walks this order: it fixes the bits.)"""
    env = simpy.Environment()
    net = impl.Network(env, check=True)
    a, b = net.add_link("a", 100.0), net.add_link("b", 100.0)
    s1 = net.stream([a, b], 10.0)
    s2 = net.stream([a], 10.0)
    s3 = net.stream([b, a], 10.0)
    never = net.transfer([a], 5.0, latency=1.0)
    env.run(until=0.5)
    assert a.live_flows() == [s1, s2, s3] and b.live_flows() == [s1, s3]
    net.stop(s2)
    net.stop(never)
    assert a.live_flows() == [s1, s3] and a.n_flows == 2
    s4 = net.stream([a], 10.0)
    env.run(until=0.6)
    assert a.live_flows() == [s1, s3, s4] and b.live_flows() == [s1, s3]
    net.stop(s1)
    assert a.live_flows() == [s3, s4] and b.live_flows() == [s3] and b.n_flows == 1
    assert sorted(t.id for t in net.stuck_transfers()) == sorted([s3.id, s4.id])
    net.stop(s3), net.stop(s4)
    assert a.n_flows == b.n_flows == 0 and not a.live_flows() and a.rate_sum == 0.0


@both
def test_check_mode_waits_for_a_pending_rerating(impl):
    """A capped flow that fits is admitted at once (no re-rating) even while a re-rating is
    pending for this instant (a flow just left a saturated link): check mode verifies the
    allocation at that re-rating, not half-way through the instant -- where the flows the
    leaver held back have not sped up yet (it used to raise a false CapacityViolation)."""
    env = simpy.Environment()
    net = impl.Network(env, check=True)
    l0 = net.add_link("l0", 5.0)
    a = net.transfer((l0,), 10.0)
    c = net.transfer((l0,), 10.0)
    seen = []

    def at_quarter(_e):
        net.stop(a)  # l0 was saturated: c may speed up, at the end of this instant
        d = net.stream((l0,), 1.0, prio=LOW)  # fits under l0 at once
        env.timeout(0.0).callbacks.append(lambda _e: seen.append((c.rate, d.rate)))
    env.timeout(0.25).callbacks.append(at_quarter)
    env.run(until=1.0)
    assert seen == [(4.0, 1.0)]


@both
def test_on_transfer_sees_every_transfer_before_it_starts(impl):
    """The network's observer hook (what hw.replay.record_transfers uses): every transfer,
    from transfer() and stream(), once, in the order submitted, before it starts."""
    env = simpy.Environment()
    net = impl.Network(env)
    l = net.add_link("l", 10.0)
    seen = []
    net.on_transfer = lambda tr: seen.append((tr.tag, tr.t_start))
    a = net.transfer([l], 10.0, tag="a", latency=1.0)
    s = net.stream([l], 2.0, tag="s")
    c = net.transfer((l,), 5.0, None, LOW, math.inf, 0.0, "c")
    assert seen == [("a", -1.0), ("s", -1.0), ("c", -1.0)]  # seen before starting
    env.run()
    assert a.t_start == 1.0 and c.t_end > 0 and s.rate > 0
    net.on_transfer = None
    net.transfer([l], 1.0, tag="unseen")
    assert len(seen) == 3


@both
def test_completion_leaving_a_saturated_link_empty_needs_no_rerating(impl):
    """A flow that saturated a link alone completes: nobody is left to speed up, so the link is
    settled at once (zero load) and no re-rating runs; a link it shared is still re-rated and
    the other flow speeds up to the full link."""
    env = simpy.Environment()
    net = impl.Network(env, check=True)
    a, b = net.add_link("a", 10.0), net.add_link("b", 10.0)
    done = []
    net.transfer([a], 10.0, lambda t: done.append(env.now))  # alone on a: 1 s
    env.run(until=0.5)
    before = net.rerates
    env.run(until=1.5)
    assert done == [1.0] and net.rerates == before and a.rate_sum == 0.0 and a.high_rate == 0.0
    assert a.acc_bytes == pytest.approx(10.0)
    x = net.transfer([b], 5.0, lambda t: done.append(env.now))  # shares b: 5 B/s each
    y = net.transfer([b], 20.0, lambda t: done.append(env.now))
    env.run(until=2.0)
    assert x.rate == y.rate == 5.0
    before = net.rerates
    env.run()
    # both start at 1.5; x ends at 2.5 (5 B at 5 B/s); y (15 B left) then runs alone at 10 B/s
    assert done == [1.0, 2.5, pytest.approx(4.0)] and net.rerates == before + 1


@both
def test_sum_bytes_reads_the_link_counters_at_now(impl):
    """The metrics sampler's sum: each group's bytes up to ``now`` (counter + rate since), the
    same bits in both builds."""
    import numpy as np
    env = simpy.Environment()
    net = impl.Network(env)
    a, b, c = net.add_link("a", 10.0), net.add_link("b", 4.0), net.add_link("c", 1.0)
    net.transfer([a, b], 100.0)
    net.transfer([c], 0.3)
    env.run(until=2.5)
    out = np.full(3, np.nan)
    impl.links.sum_bytes([[a], [b, c], []], env.now, out)
    assert out.tolist() == [10.0, 10.3, 0.0]  # a, b at 4 B/s for 2.5 s; c done at 0.3 s; empty
    py = np.full(3, np.nan)
    dnet.PYTHON.links.sum_bytes([[a], [b, c], []], env.now, py)
    assert py.tobytes() == out.tobytes()
