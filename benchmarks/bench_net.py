"""Micro-benchmark of the flow-level network: the same random transfer workload through the
pure-Python reference and the compiled build (dpsim.net._c), with a bit-identity check.

    python benchmarks/bench_net.py [--transfers 50000] [--links 24] [--concurrency 16]
                                   [--seed 1] [--repeat 3] [--env simpy|mini]

The workload mimics the cluster's: KV transfers (low class) over 1-3 of a few shared links,
a third of them capped (submission-bound), some with a latency, plus high-class capped streams
that are re-capped and stopped; every completion starts the next transfer of its chain."""
from __future__ import annotations

import argparse
import heapq
import random
import time

import simpy

import dpsim.net as dnet


class _Event:
    __slots__ = ("callbacks",)

    def __init__(self):
        self.callbacks = []


class MiniEnv:
    """The part of SimPy's API the network uses (``now``, ``timeout``, ``event.callbacks``) plus
    ``process`` for generators of timeouts, in a few lines: with it the timing shows the
    network's own cost rather than SimPy's."""

    def __init__(self):
        self.now = 0.0
        self._q = []
        self._seq = 0

    def timeout(self, delay):
        ev = _Event()
        self._seq += 1
        heapq.heappush(self._q, (self.now + delay, self._seq, ev))
        return ev

    def process(self, gen):
        def resume(_ev=None):
            try:
                ev = next(gen)
            except StopIteration:
                return
            ev.callbacks.append(resume)
        resume()

    def run(self):
        q = self._q
        pop = heapq.heappop
        while q:
            t, _s, ev = pop(q)
            self.now = t
            for cb in ev.callbacks:
                cb(ev)


ENVS = {"simpy": simpy.Environment, "mini": MiniEnv}


def workload(impl, n_transfers: int, n_links: int, seed: int, check: bool = False,
             concurrency: int = 16, env: str = "simpy"):
    """Run the workload on ``impl`` (a ``dpsim.net.implementation()`` namespace); returns the
    network, a trace of (id, t_end, bytes delivered) per finished transfer, and the seconds
    the simulation took (the script is drawn before the clock starts)."""
    rng = random.Random(seed)
    env = ENVS[env]()
    net = impl.Network(env, high_share=0.9, check=check)
    links = [net.add_link(f"l{i}", rng.choice((12.5e9, 25e9, 50e9, 100e9)), kind="nic")
             for i in range(n_links)]
    trace = []
    chains = concurrency

    # The random script is drawn up front, so the timed run is mostly the network (and SimPy).
    script = []
    for _ in range(n_transfers):
        k = rng.randint(1, 3)
        script.append((tuple(rng.sample(links, k)), rng.choice((64e3, 1e6, 16e6, 256e6)) * rng.random(),
                       rng.choice((dnet.INF, dnet.INF, 5e9 * rng.random() + 1e8)),
                       rng.choice((0.0, 0.0, 5e-6))))
    script.reverse()
    pop = script.pop
    transfer = net.transfer

    def start(_tr=None):
        if _tr is not None:
            trace.append((_tr.id, _tr.t_end, _tr.delivered_check))
        if script:
            route, size, cap, lat = pop()
            transfer(route, size, start, max_rate=cap, latency=lat, tag="kv")

    def streams():
        while True:
            yield env.timeout(rng.random() * 2e-3)
            route = tuple(rng.sample(links, 2))
            s = net.stream(route, rng.random() * 20e9, tag="ep")
            yield env.timeout(rng.random() * 1e-3)
            net.set_max_rate(s, rng.random() * 20e9 + 1.0)
            yield env.timeout(rng.random() * 1e-3)
            net.stop(s)
            trace.append((s.id, s.t_end, s.delivered_check))
            if not script:
                return

    def arrivals():
        for _ in range(chains):
            start()
            yield env.timeout(rng.expovariate(1e4))

    env.process(arrivals())
    env.process(streams())
    t0 = time.perf_counter()
    env.run()
    return net, trace, time.perf_counter() - t0


def summary(net):
    return (net.n_started, net.n_completed, net.bytes_requested, net.bytes_delivered, net.rerates,
            net.wakeups, net.max_overload, net.active)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transfers", type=int, default=50000)
    ap.add_argument("--links", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=16, help="transfer chains in flight")
    ap.add_argument("--env", choices=sorted(ENVS), default=None,
                    help="event loop: SimPy, or a minimal one that isolates the network's cost "
                         "(default: both)")
    a = ap.parse_args(argv)
    impls = [dnet.implementation("python")]
    if dnet.COMPILED is not None:
        impls.append(dnet.implementation("compiled"))
    else:
        print(f"compiled build not available: {dnet.COMPILED_ERROR}")
    for env in ([a.env] if a.env else ["simpy", "mini"]):
        print(f"-- {a.transfers} transfer chain steps, {a.links} links, {a.concurrency} chains, "
              f"{env} event loop, best of {a.repeat}")
        best, results = {}, {}
        for impl in impls:
            for _ in range(a.repeat):
                net, trace, dt = workload(impl, a.transfers, a.links, a.seed,
                                          concurrency=a.concurrency, env=env)
                best[impl.IMPLEMENTATION] = min(dt, best.get(impl.IMPLEMENTATION, dt))
            results[impl.IMPLEMENTATION] = (summary(net), trace)
            s = summary(net)
            print(f"{impl.IMPLEMENTATION:9s} {best[impl.IMPLEMENTATION]:8.3f} s   started {s[0]} "
                  f"completed {s[1]} rerates {s[4]} wakeups {s[5]}")
        if len(results) == 2:
            same = results["python"] == results["compiled"]
            print(f"speed-up  {best['python'] / best['compiled']:8.2f} x   bit-identical: {same}")
            if not same:
                raise SystemExit("pure and compiled results differ")


if __name__ == "__main__":
    main()
