"""The compiled (Cython) network against the pure-Python reference it is generated from:
bit-identical rates, completion times and counters on random transfer scripts, check mode,
the implementation switch, and the small public additions (busy, wakeups, routes kept as given)."""
import math
import os
import subprocess
import sys

import pytest
import simpy
from hypothesis import HealthCheck, given, settings, strategies as st

import dpsim.net as dnet
from dpsim.net import HIGH, LOW

needs_compiled = pytest.mark.skipif(dnet.COMPILED is None,
                                    reason=f"compiled dpsim.net not built ({dnet.COMPILED_ERROR})")
IMPLS = [pytest.param(dnet.PYTHON, id="python"),
         pytest.param(dnet.COMPILED, id="compiled", marks=needs_compiled)]
both = pytest.mark.parametrize("impl", IMPLS)

_TIMES = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]), st.floats(0.0, 4.0))
_RATES = st.one_of(st.just(math.inf), st.floats(0.5, 500.0))
_ROUTE = st.lists(st.integers(0, 4), min_size=0, max_size=3, unique=True)
_ACTION = st.one_of(
    st.tuples(st.just("t"), _ROUTE, st.one_of(st.just(0.0), st.floats(1.0, 2e3)),
              st.sampled_from([LOW, LOW, HIGH]), _RATES,
              st.sampled_from([0.0, 0.0, 0.1, 0.25]), st.integers(0, 2)),
    st.tuples(st.just("s"), _ROUTE.filter(bool), st.floats(0.5, 300.0), st.sampled_from([LOW, HIGH])),
    st.tuples(st.just("cap"), st.integers(0, 30), st.floats(0.5, 500.0)),
    st.tuples(st.just("stop"), st.integers(0, 30)),
)
SCRIPTS = st.tuples(st.lists(st.floats(5.0, 1e3), min_size=5, max_size=5),
                    st.lists(st.tuples(_TIMES, _ACTION), min_size=1, max_size=30),
                    st.sampled_from([0.99, 0.9, 0.5, 1.0]))


def run_script(impl, caps, script, share, check=False):
    """Play ``script`` (timed actions) on ``impl``'s Network; return everything observable."""
    env = simpy.Environment()
    net = impl.Network(env, high_share=share, check=check)
    links = [net.add_link(f"l{i}", c, kind="k", node=i) for i, c in enumerate(caps)]
    trs = []
    log = []

    def snap(what):
        log.append((what, env.now, net.busy(), tuple(t.rate for t in trs), tuple(l.rate_sum for l in links)))

    def done(tr):
        log.append(("done", tr.tag[:2], env.now, tr.delivered_check))
        if tr.tag[1] > 0:  # a chain: the next transfer starts at this very instant
            route, size, prio, mr = tr.tag[2]
            trs.append(net.transfer(route, size, done, prio=prio, max_rate=mr,
                                    tag=(tr.tag[0] + "+", tr.tag[1] - 1, tr.tag[2])))

    def act(i, a):
        kind = a[0]
        if kind == "t":
            _k, route, size, prio, mr, lat, chain = a
            r = tuple(links[j] for j in route)
            trs.append(net.transfer(r, size, done, prio=prio, max_rate=mr, latency=lat,
                                    tag=(str(i), chain, (r, size, prio, mr))))
        elif kind == "s":
            _k, route, rate, prio = a
            trs.append(net.stream([links[j] for j in route], rate, prio=prio, tag=("s", 0, None)))
        elif kind == "cap" and trs:
            net.set_max_rate(trs[a[1] % len(trs)], a[2])
        elif kind == "stop" and trs:
            net.stop(trs[a[1] % len(trs)])
        snap(kind)

    for i, (t, a) in enumerate(script):
        ev = env.timeout(t)
        ev.callbacks.append(lambda _e, i=i, a=a: act(i, a))
    env.run(until=50.0)
    snap("end")
    for tr in list(trs):
        if tr.size == math.inf:
            net.stop(tr)
    env.run()
    snap("after")
    net.flush()
    return {
        "counters": (net.n_started, net.n_completed, net.bytes_requested, net.bytes_delivered,
                     net.rerates, net.max_overload, net.active, net.wakeups, net.busy()),
        "transfers": [(t.id, t.size, t.remaining, t.rate, t.prio, t.max_rate, t.last_t, t.t_submit,
                       t.t_start, t.t_end, t.version, t.delivered_check, t.done)
                      for t in trs],
        "links": [(l.acc_bytes, l.acc_t, l.rate_sum, l.high_rate, l.n_low,
                   [t.id for t in l.live_flows()],
                   l.delivered(env.now)) for l in links],
        "stuck": sorted(t.id for t in net.stuck_transfers()),
        "log": log,
    }


@needs_compiled
@settings(max_examples=int(os.environ.get("DPSIM_HYP_EXAMPLES", 150)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(SCRIPTS)
def test_compiled_bit_identical_to_pure(s):
    caps, script, share = s
    pure = run_script(dnet.PYTHON, caps, script, share)
    comp = run_script(dnet.COMPILED, caps, script, share)
    assert comp == pure  # floats compared exactly: same operations in the same order


@needs_compiled
@settings(max_examples=int(os.environ.get("DPSIM_HYP_EXAMPLES", 60)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(SCRIPTS)
def test_check_mode_compiled(s):
    """check=True (capacity and full max-min recomputation at every re-rating, bytes per
    transfer at completion) passes under the compiled path and changes no result."""
    caps, script, share = s
    comp = run_script(dnet.COMPILED, caps, script, share, check=True)
    pure = run_script(dnet.PYTHON, caps, script, share, check=True)
    assert comp == pure
    plain = run_script(dnet.COMPILED, caps, script, share, check=False)
    assert plain["transfers"] == comp["transfers"] and plain["links"] == comp["links"]


@needs_compiled
def test_bench_workload_identical_with_check():
    """The benchmark's workload (capped and uncapped KV transfers, latencies, high-class
    streams re-capped and stopped), in check mode, through both builds."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    try:
        import bench_net
    finally:
        sys.path.pop(0)
    out = {}
    for impl in (dnet.PYTHON, dnet.COMPILED):
        net, trace, _dt = bench_net.workload(impl, 1500, 8, 7, check=True)
        out[impl.IMPLEMENTATION] = (bench_net.summary(net), trace)
    assert out["compiled"] == out["python"]
    assert out["compiled"][0][0] > 1500 and out["compiled"][0][1] == out["compiled"][0][0]


@needs_compiled
def test_compiled_modules_are_extensions():
    c = dnet.COMPILED
    for mod in (c.links, c.maxmin, c.network):
        assert not mod.__file__.endswith(".py"), mod.__file__
    # Extension types: fixed C slots, no instance __dict__.
    l = c.Link("x", 1.0)
    with pytest.raises(AttributeError):
        l.not_an_attribute = 1
    assert isinstance(c.network.Network, type) and issubclass(c.Network, c.network.Network)
    # The backends and the exception are shared (one class for both builds).
    assert c.network.CapacityViolation is dnet.PYTHON.network.CapacityViolation is dnet.CapacityViolation
    assert c.network.FlowBackend is dnet.FlowBackend


def _implementation_in_subprocess(**env):
    e = dict(os.environ)
    e.pop("DPSIM_PURE_PYTHON", None)
    e.update(env)
    out = subprocess.run([sys.executable, "-c",
                          "import dpsim.net as n; print(n.IMPLEMENTATION, n.Network.__module__)"],
                         env=e, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_env_var_switch():
    impl, mod = _implementation_in_subprocess(DPSIM_PURE_PYTHON="1")
    assert impl == "python" and mod == "dpsim.net.network"
    impl, mod = _implementation_in_subprocess()
    if dnet.COMPILED is None:
        assert impl == "python"
    else:
        assert impl == "compiled" and mod == "dpsim.net"
    assert dnet.implementation().IMPLEMENTATION == dnet.IMPLEMENTATION
    assert dnet.implementation("python") is dnet.PYTHON
    with pytest.raises(ValueError):
        dnet.implementation("fortran")


@needs_compiled
def test_stale_build_falls_back(tmp_path, monkeypatch):
    """A compiled build whose sources changed since (an editable checkout) is not used."""
    from dpsim.net import _srchash_calc
    here = os.path.dirname(dnet.PYTHON.network.__file__)
    assert dnet.COMPILED is not None  # built from the current sources
    from dpsim.net._c import _srchash
    assert _srchash.SOURCE_HASH == _srchash_calc.source_hash(here)
    for name in _srchash_calc.SOURCES:
        (tmp_path / name).write_bytes(open(os.path.join(here, name), "rb").read())
    (tmp_path / "network.py").write_text((tmp_path / "network.py").read_text() + "\n# edited\n")
    assert _srchash_calc.source_hash(str(tmp_path)) != _srchash.SOURCE_HASH


@needs_compiled
def test_compiled_network_can_be_monkeypatched(monkeypatch):
    calls = []
    orig = dnet.COMPILED.Network.stream

    def spy(self, route, rate, prio=HIGH, tag=None):
        calls.append(tag)
        return orig(self, route, rate, prio=prio, tag=tag)
    monkeypatch.setattr(dnet.COMPILED.Network, "stream", spy)
    env = simpy.Environment()
    net = dnet.COMPILED.Network(env)
    l = net.add_link("l", 10.0)
    s = net.stream([l], 5.0, tag="ep")
    assert calls == ["ep"] and s.rate == 5.0


class _Route(tuple):
    """A tuple subclass with attributes (dpsim.cluster.routes.Route was one until session 14)."""

    def __new__(cls, links, kind):
        r = super().__new__(cls, links)
        r.kind = kind
        return r


@both
def test_route_kept_as_given(impl):
    env = simpy.Environment()
    net = impl.Network(env)
    a, b = net.add_link("a", 10.0), net.add_link("b", 5.0)
    r = _Route((a, b), "storage_read")
    tr = net.transfer(r, 10.0)
    assert tr.route is r and tr.route.kind == "storage_read"
    t2 = net.transfer([a], 10.0)  # another iterable becomes a tuple
    assert type(t2.route) is tuple and t2.route == (a,)
    t3 = net.transfer((l for l in (b,)), 1.0, latency=0.5)
    assert t3.route == (b,)
    env.run()
    assert tr.done and t2.done and t3.done and net.n_completed == 3


@both
def test_route_object_with_links_kept_as_given(impl):
    """A route object that is not a tuple but carries ``links`` (a tuple), like
    dpsim.cluster.routes.Route: the transfer keeps it and flows over its links."""
    from dpsim.cluster.routes import Route, RouteKind
    env = simpy.Environment()
    net = impl.Network(env)
    a, b = net.add_link("a", 10.0), net.add_link("b", 5.0)
    r = Route([a, b], RouteKind.H2D, None, None, 0.25)
    assert r.links == (a, b) and len(r) == 2 and r[-1] is b and list(r) == [a, b]
    tr = net.transfer(r, 10.0, latency=r.latency)
    assert tr.route is r and tr.links is r.links
    env.run()
    assert tr.done and tr.t_end == 0.25 + 10.0 / 5.0  # b is the bottleneck
    assert a.acc_bytes == b.acc_bytes == 10.0
    # A Transfer made directly keeps any iterable of links as a tuple beside it.
    t = impl.Transfer(7, [a, b], 1.0, 1, 1e9, None, "x")
    assert t.links == (a, b) and type(t.links) is tuple and t.route == [a, b]


@both
def test_busy_and_wakeups(impl):
    env = simpy.Environment()
    net = impl.Network(env)
    l = net.add_link("l", 10.0)
    assert not net.busy() and net.wakeups == 0
    tr = net.transfer([l], 10.0, latency=1.0)
    assert net.busy()  # a pending start
    env.run(until=0.5)
    assert net.busy() and net.active == 0
    env.run(until=1.5)
    assert net.busy() and net.active == 1 and tr.rate == 10.0
    env.run()
    assert not net.busy() and tr.t_end == 2.0
    assert net.wakeups >= 2  # the start at 1.0 and the completion at 2.0
    # Work that is only pending (a re-rating at this instant) also counts as busy.
    t2 = net.transfer([l], 5.0)
    assert net.busy()
    env.run()
    assert not net.busy() and t2.t_end == 2.5


@both
def test_leaving_flows_keep_their_order_and_references(impl):
    """A flow leaving from the middle of a link's list (the compiled build moves only the live
    pointers, not the spare room): the rest keep the order they started in, the spare room
    stays None, the list keeps its length, and no reference is lost or left behind -- every
    finished transfer ends held exactly as often as one that left from the end."""
    env = simpy.Environment()
    net = impl.Network(env)
    l = net.add_link("l", 1e3)
    sizes = [90.0, 10.0, 70.0, 20.0, 50.0, 30.0, 80.0, 40.0, 60.0]  # capped: each finishes alone
    trs = [net.transfer([l], s, max_rate=10.0) for s in sizes]
    env.run(until=0.5)
    cap = len(l.flows)
    assert cap > l.n_flows == len(trs)  # spare room behind the live entries
    left = []
    while l.n_flows:
        env.run(until=env.now + 1.0)
        live = [t for t in trs if t.t_end < 0.0]
        left = [t for t in trs if t.t_end >= 0.0]
        assert l.flows[:l.n_flows] == live  # start order kept
        assert l.flows[l.n_flows:] == [None] * (cap - l.n_flows)
        assert len(l.flows) == cap
    assert [t.size for t in left] == sizes
    del live
    counts = {sys.getrefcount(t) for t in trs}
    assert len(counts) == 1, counts  # the middle leavers (10, 20, ...) as the end ones (90)



@both
def test_tag_pair_is_made_when_read(impl):
    """A transfer tagged with a kind and a request id keeps them apart (the KV port's entry: no
    tuple, no boxed integer per transfer); ``tag`` reads as the pair, any other tag as given,
    and a tag assigned later replaces both."""
    env = simpy.Environment()
    net = impl.Network(env)
    l = net.add_link("l", 10.0)
    a = impl.Transfer(1, (l,), 5.0, LOW, math.inf, None, "read", 123456789)
    assert a.tag == ("read", 123456789)
    a.tag = "relabelled"
    assert a.tag == "relabelled"
    assert impl.Transfer(2, (l,), 5.0, LOW, math.inf, None, ("persist", 7)).tag == ("persist", 7)
    assert net.transfer([l], 5.0, tag=("persist", 7)).tag == ("persist", 7)
    assert net.transfer([l], 5.0).tag is None


def test_kv_port_tags_read_as_kind_and_request_id():
    """Every KV transfer of a small run reads its tag as (kind, request id), the id of a request
    of that run -- through the compiled port and network when built, as the HIL backend and the
    replay read them."""
    sys.path.insert(0, os.path.dirname(__file__))
    from helpers import make_cfg
    from dpsim.runner import build
    sim = build(make_cfg("cluster.prefill_nodes=1", "cluster.decode_nodes=1", "workload.agents=4",
                         "experiment.max_sim_s=60"))
    tags = []
    sim.net.on_transfer = lambda tr: tags.append(tr.tag)
    sim.run()
    kv = [t for t in tags if isinstance(t, tuple) and t[0] in ("read", "de_h2d", "d2h", "pe_in", "pe_out")]
    assert {t[0] for t in kv} >= {"read", "pe_in", "pe_out"}
    rids = set(range(1, sim.life.n_rid + 1))  # the requests issued (ids from 1)
    assert len(rids) > 0
    assert all(len(t) == 2 and type(t[1]) is int and t[1] in rids for t in kv)
