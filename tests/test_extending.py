"""Every recipe of docs/extending.md, exercised: a toy extension of each kind is added in a few
lines, a tiny simulation runs with it, and its behaviour is checked with values.  Every toy is
removed from its registry afterwards (fixtures), so nothing leaks into other tests.
"""
from __future__ import annotations

import pkgutil
import types

import pytest

from dpsim.cluster import routes as R
from dpsim.cluster.profile import LinkMapping
from dpsim.engines.prefill_modes import MODE_ALIASES, STRATEGIES, mode_names
from dpsim.engines.prefill_modes import register as register_strategy
from dpsim.engines.prefill_modes.base import BatchBase
from dpsim.net import FixedRateBackend, LinkBackend
from dpsim.runner import build, run
from dpsim.scheduling import POLICIES, Policy, register as register_policy
from dpsim.scheduling.read_paths import READ_PATHS, ReadPlan, register as register_read_path
from dpsim.workload import readers
from dpsim.workload.trajectory import Trajectory

from helpers import make_cfg

TINY = ("workload.agents=4",)


@pytest.fixture
def unregister():
    """``unregister(registry, name)``: drop ``name`` from ``registry`` when the test ends."""
    added = []
    yield lambda registry, name: added.append((registry, name))
    for registry, name in added:
        registry.pop(name, None)


# ----------------------------------------------------------------------------- (1) read-path rule
def test_read_path_rule_fixed_fraction(unregister):
    unregister(READ_PATHS, "toy_30_70")

    @register_read_path("toy_30_70")
    class Fixed3070:
        """30% of every hit through the DE read path, 70% through the PE read path."""

        def __init__(self, ctx):
            pass

        def __call__(self, req, pe, de) -> ReadPlan:
            return ReadPlan.split(req.hit, int(round(0.3 * req.hit)))

    summ, sim = run(make_cfg("system=pe_only", "system.read_path=toy_30_70", "system.name=toy_30_70", *TINY))
    assert summ["requests_completed"] == summ["requests_total"] > 0
    p, d = summ["snic_read_bytes_prefill_nodes"], summ["snic_read_bytes_decode_nodes"]
    assert d / (p + d) == pytest.approx(0.3, abs=0.01)
    # Every request with a hit of 2+ tokens is a split plan (1-token hits round to the PE side).
    assert summ["read_path_share"]["split"] > 0.9 * summ["requests_completed"]
    assert summ["read_path_share"]["de"] == 0
    # The registry refuses a second rule of the same name.
    with pytest.raises(ValueError, match="registered twice"):
        register_read_path("toy_30_70")(Fixed3070)
    # An unknown name is refused by config validation, naming the key.
    with pytest.raises(ValueError, match="system.read_path"):
        build(make_cfg("system=pe_only", "system.read_path=no_such_rule", *TINY))


# ----------------------------------------------------------------------------- (2) system
def test_system_by_overrides_runs_under_its_name():
    """A system is a combination of keys: here DualPath's scheduler with the DE read path only."""
    cfg = make_cfg("system=dualpath", "system.name=toy_system", "system.read_path=de", *TINY)
    summ, sim = run(cfg)
    assert summ["system"] == "toy_system"
    assert type(sim.policy).name == "dualpath"
    assert summ["snic_read_bytes_prefill_nodes"] == 0
    assert summ["snic_read_bytes_decode_nodes"] > 0
    assert summ["read_path_share"]["de"] == summ["requests_completed"]


def test_system_yaml_file(tmp_path):
    """A system YAML file on Hydra's search path composes over ``_common`` like the shipped ones."""
    (tmp_path / "system").mkdir()
    (tmp_path / "system" / "toy_yaml.yaml").write_text(
        "defaults:\n  - _common@_here_\n  - _self_\n"
        "name: toy_yaml\nscheduler: simple\nread_path: de\nlayerwise: false\n")
    cfg = make_cfg(f"hydra.searchpath=[file://{tmp_path}]", "system=toy_yaml", *TINY)
    assert cfg["system"]["batching"]["max_prefill_tokens"] == 16384  # from _common
    summ, sim = run(cfg)
    assert summ["system"] == "toy_yaml"
    assert sim.strategy is STRATEGIES["whole"]
    assert summ["snic_read_bytes_prefill_nodes"] == 0


# ----------------------------------------------------------------------------- (3) routes
def test_every_route_kind_is_mapped_everywhere():
    """The checklist of recipe 3: a new RouteKind needs a latency, a hardware op (or to be
    model traffic) and a profile link."""
    hw_replay = pytest.importorskip("dpsim.hw.replay")
    cfg = make_cfg(*TINY)
    sim = build(cfg)
    book = sim.cluster.routes
    mapping = LinkMapping("check").kinds()
    for kind in R.RouteKind:
        assert kind in book.lat, kind
        if kind is R.RouteKind.MODEL:
            continue
        assert kind in hw_replay._OPS, kind
        assert str(kind) in mapping, kind
    # Each RouteBook method builds a route of its kind (one method per kind).
    pe, de = sim.pes[0].gpu, sim.des[0].gpu
    made = [book.storage_read(pe.node), book.storage_write(pe.node), book.h2d(pe), book.d2h(pe),
            book.remote_h2d(de, pe), book.gpu_to_remote(pe, de), book.model(pe, de)]
    assert {r.kind for r in made} == set(R.RouteKind)
    # ... with its kind's latency from the one table (pair routes pass theirs to _fresh).
    assert all(r.latency == book.lat[r.kind] for r in made)


@pytest.fixture
def slow_storage():
    """A toy transform (like Oracle's) in ``TRANSFORMS``: 0.5 s more before the first byte of
    every storage read.  Removed again when the test ends."""
    def transform(route):
        if route.kind is R.RouteKind.STORAGE_READ:
            return R.Route(route.links, route.kind, route.src, route.dst, route.latency + 0.5)
        return route

    assert "toy_slow_storage" not in R.TRANSFORMS
    R.TRANSFORMS["toy_slow_storage"] = transform
    yield 0.5
    del R.TRANSFORMS["toy_slow_storage"]


def test_route_transform_adds_storage_latency(slow_storage):
    extra = slow_storage
    cfg = make_cfg("system=pe_only", "system.route_transform=toy_slow_storage", *TINY)
    assert cfg["system"]["route_transform"] == "toy_slow_storage"
    summ, sim = run(cfg)
    assert sim.cluster.routes.transform is R.TRANSFORMS["toy_slow_storage"]
    lat = sim.cfg["cluster"]["storage_latency_s"]
    reads = [r for r in sim.cluster.routes.built() if r.kind is R.RouteKind.STORAGE_READ]
    assert reads and all(r.latency == pytest.approx(lat + extra) for r in reads)
    assert all(r.latency == 0.0 for r in sim.cluster.routes.built() if r.kind is R.RouteKind.D2H)
    # Every request that read storage waited at least the added latency for it.
    hit = [r for r in sim.requests if r.stage == "done" and r.t_read0 < r.t_read1]
    assert hit and min(r.t_read1 - r.t_read0 for r in hit) >= lat + extra - 1e-9
    # The default (route_transform: none) leaves storage reads at the cluster's latency.
    base, sim0 = run(make_cfg("system=pe_only", *TINY))
    assert sim0.cluster.routes.transform is R.TRANSFORMS["none"]
    base_hit = [r for r in sim0.requests if r.stage == "done" and r.t_read0 < r.t_read1]
    assert min(r.t_read1 - r.t_read0 for r in base_hit) < extra
    # An unknown name is refused by config validation, naming the key.
    with pytest.raises(ValueError, match="system.route_transform"):
        build(make_cfg("system=pe_only", "system.route_transform=no_such_transform", *TINY))


# ----------------------------------------------------------------------------- (4) trace reader
def _toy_reader_module():
    """The one-file reader of recipe 4 ('agent append gen' lines, one round per line, rounds in
    file order), built in memory instead of as dpsim/workload/readers/toy_lines.py."""
    mod = types.ModuleType("dpsim.workload.readers.toy_lines")

    def sniff(path, head):
        return head.startswith("#toy-lines")

    def read(path):
        rounds: dict = {}
        for ln in open(path).read().splitlines()[1:]:
            aid, a, g = ln.split()
            rounds.setdefault(aid, []).append([int(a), int(g), 0.0])
        return [Trajectory.from_rounds(aid, rs) for aid, rs in rounds.items()]

    mod.FORMAT, mod.ALIASES, mod.SNIFF_PRIORITY = "toy_lines", ("toy",), 5
    mod.sniff, mod.read = sniff, read
    return mod


@pytest.fixture
def toy_reader():
    """Register the toy reader as package discovery would; unregister it when the test ends."""
    assert "toy_lines" not in readers.READERS
    mod = readers.add_reader(_toy_reader_module())
    yield mod
    readers.remove_reader("toy_lines")
    assert "toy_lines" not in readers.FORMATS and "toy" not in readers.ALIASES


def test_shipped_readers_are_discovered():
    """Every non-underscore module of the readers package is a registered reader."""
    mods = {m.name for m in pkgutil.iter_modules(readers.__path__) if not m.name.startswith("_")}
    assert set(readers.FORMATS) == set(readers.SNIFF_ORDER) == mods
    assert readers.FORMATS == ("canonical", "weka", "weka_csv", "mooncake", "azure")
    assert readers.SNIFF_ORDER == ("canonical", "weka", "mooncake", "weka_csv", "azure")
    assert readers.ALIASES["splitwise"] == "azure" and readers.ALIASES["derived"] == "weka_csv"


def test_trace_reader(tmp_path, toy_reader):
    path = tmp_path / "trace.txt"
    path.write_text("#toy-lines\na 3000 50\nb 2000 40\na 200 30\nb 100 20\na 300 10\n")
    assert readers.FORMATS[-1] == "toy_lines"            # no ORDER: listed after the shipped ones
    assert readers.SNIFF_ORDER[0] == "toy_lines"         # SNIFF_PRIORITY 5: tried first
    assert readers.sniff(path) == "toy_lines"
    assert readers.normalise_format("TOY") == "toy_lines"
    assert [t.id for t in readers.load(path, "toy_lines")] == ["a", "b"]
    # A second reader with the same name (or a name taken as an alias) is refused.
    with pytest.raises(ValueError, match="registered twice"):
        readers.add_reader(_toy_reader_module())
    cfg = make_cfg("workload.source=file", f"workload.path={path}", "workload.format=null",
                   "workload.agents=null")
    summ, sim = run(cfg)
    assert [a.traj.id for a in sim.agents] == ["a", "b"]
    assert summ["requests_completed"] == summ["requests_total"] == 5
    req = sorted(sim.requests, key=lambda r: (r.agent.traj.id, r.round))
    assert [(r.agent.traj.id, r.prompt, r.gen) for r in req] == [
        ("a", 3000, 50), ("a", 3250, 30), ("a", 3580, 10), ("b", 2000, 40), ("b", 2140, 20)]


# ----------------------------------------------------------------------------- (5) link backend
class ConstantPlusRate(LinkBackend):
    """Every transfer takes 2 ms plus its bytes at 10 GB/s, shared with nobody."""

    name = "toy_constant"

    def __init__(self):
        self.seen = []

    def duration(self, net, tr):
        d = 2e-3 + tr.size / 10e9
        self.seen.append((tr, d))
        return d


def test_link_backend_durations_are_what_it_returns():
    be = ConstantPlusRate()
    cfg = make_cfg("system=pe_only", "system.model_traffic=false", *TINY)
    summ, sim = run(cfg, backend=be)
    assert summ["requests_completed"] == summ["requests_total"] > 0
    assert sim.net.backend is be and len(be.seen) > 10
    for tr, d in be.seen:
        assert tr.t_end - tr.t_start == pytest.approx(d, rel=1e-9, abs=1e-12)
    # The shipped FixedRateBackend: each transfer alone at its route's bottleneck (or its cap).
    fixed = FixedRateBackend()
    summ2, sim2 = run(cfg, backend=fixed)
    assert summ2["requests_completed"] == summ["requests_completed"]
    assert summ2["jct_s"] != pytest.approx(summ["jct_s"])


# ----------------------------------------------------------------------------- (6) policy
def test_policy_always_last_engines(unregister):
    unregister(POLICIES, "toy_last")

    @register_policy("toy_last")
    class LastEngines(Policy):
        def submit(self, req) -> None:
            pe, de = self.ctx.pes[-1], self.ctx.des[-1]
            plan = self.plan(req, pe, de)
            self.ledger.charge_pe(req, pe)
            self.ledger.charge_de(req, de)
            self.ctx.assign(req, pe, de, plan)

    with pytest.raises(ValueError, match="registered twice"):
        register_policy("toy_last")(LastEngines)
    summ, sim = run(make_cfg("system=pe_only", "system.scheduler=toy_last", "system.name=toy_last", *TINY))
    from dpsim.metrics.tables import request_table
    df = request_table(sim)
    assert summ["requests_completed"] == len(df) > 0
    assert set(df.pe) == {len(sim.pes) - 1} and set(df.de) == {len(sim.des) - 1}
    assert [e.batches > 0 for e in sim.pes] == [False] * (len(sim.pes) - 1) + [True]
    assert all(e.seq == 0 and e.tok == 0 for e in sim.pes + sim.des)  # the ledger drained


# ----------------------------------------------------------------------------- (7) prefill strategy
def test_prefill_strategy(unregister):
    unregister(STRATEGIES, "toy_compute_only")

    @register_strategy("toy_compute_only")
    class ComputeOnlyBatch(BatchBase):
        """A toy strategy: the forward costs its compute time T and moves no KV at all."""

        log: list = []

        def start(self) -> None:
            ComputeOnlyBatch.log.append((self.eng.idx, self.T))
            self.eng.deps.clock.timer(self.T, lambda _ev=None: self.done())

    assert ComputeOnlyBatch.name == "toy_compute_only" and "toy_compute_only" in mode_names()
    with pytest.raises(ValueError, match="registered twice"):
        register_strategy("toy_compute_only")(ComputeOnlyBatch)
    with pytest.raises(ValueError, match="registered twice"):  # the mode aliases are taken too
        register_strategy(next(iter(MODE_ALIASES)))(ComputeOnlyBatch)
    sim = build(make_cfg("system=pe_only", "system.model_traffic=false",
                         "system.prefill_mode=toy_compute_only", *TINY))
    assert sim.strategy is ComputeOnlyBatch
    sim.run()
    assert sim.n_done == sim.total_requests > 0
    assert len(ComputeOnlyBatch.log) == sum(e.batches for e in sim.pes) > 0
    for e in sim.pes:  # a PE is busy exactly the compute time of its forwards
        assert e.busy_time == pytest.approx(sum(T for i, T in ComputeOnlyBatch.log if i == e.idx))
    now = sim.env.now
    # No KV entered or left a PE GPU (its CNIC links carried nothing), yet hit KV was read.
    assert all(g.cnic_rd.delivered(now) == 0 and g.cnic_wr.delivered(now) == 0 for e in sim.pes for g in [e.gpu])
    assert sum(n.snic_rx.delivered(now) for n in sim.cluster.prefill_nodes) > 0
    # layerwise: false always means the whole strategy, whatever prefill_mode names.
    off = build(make_cfg("system=pe_only", "system.layerwise=false",
                         "system.prefill_mode=toy_compute_only", *TINY))
    assert off.strategy is STRATEGIES["whole"]
    # An unknown name is refused by config validation, naming the key.
    with pytest.raises(ValueError, match="system.prefill_mode"):
        build(make_cfg("system=pe_only", "system.prefill_mode=no_such_strategy", *TINY))
