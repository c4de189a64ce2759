"""Routes with identity: what a transfer crosses, and what kind of move it is (§S4).

A route is like a railway ticket: it lists the stations (links) a shipment passes and says
what kind of journey it is -- storage to a node's DRAM, DRAM to a GPU, a PE's HBM to a DE's
buffer.  The network only needs the stations; everyone else (the hardware-in-the-loop backend,
link profiles, metrics) reads the *kind* and the endpoints, through :data:`RouteKind`, instead
of guessing from link names.

The cluster builds every route once (:class:`RouteBook`, cached per endpoints), so starting a
transfer allocates no route.  A *transform* chosen by config rewrites routes when they are
built: the Oracle system (§S9) is :func:`oracle_transform` -- every KV move costs nothing -- not
a branch in the mechanism.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Callable


class RouteKind(StrEnum):
    """Every kind of move a transfer can be (the names match ``cluster.profile.LinkMapping``)."""

    STORAGE_READ = "storage_read"    # storage -> SNIC rx -> node DRAM (hit KV read)
    STORAGE_WRITE = "storage_write"  # node DRAM -> SNIC tx -> storage (persisting KV)
    H2D = "h2d"                      # node DRAM -> own GPU, loop-back through its CNIC
    D2H = "d2h"                      # GPU -> own node DRAM, loop-back through its CNIC
    REMOTE_H2D = "remote_h2d"        # DE node DRAM -> PE GPU over the compute network
    GPU_TO_REMOTE = "gpu_to_remote"  # PE GPU HBM -> DE node DRAM over the compute network
    MODEL = "model"                  # expert-parallel all-to-all between nodes (high priority)


#: Kinds that move KV-Cache (what the Oracle system makes free); MODEL is model execution.
KV_KINDS = frozenset(k for k in RouteKind if k is not RouteKind.MODEL)


class Route(tuple):
    """A tuple of links (what the network shares bandwidth over) with its ``kind``, its
    endpoints ``src``/``dst`` (a Node or GPU each) and the ``latency`` before its first byte."""

    def __new__(cls, links, kind: RouteKind, src, dst, latency: float = 0.0):
        r = super().__new__(cls, links)
        r.kind = kind
        r.src = src
        r.dst = dst
        r.latency = float(latency)
        return r

    def __reduce__(self):  # picklable despite the attributes
        return (Route, (tuple(self), self.kind, self.src, self.dst, self.latency))

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Route({self.kind}, {[l.name for l in self]})"


Transform = Callable[[Route], Route]


def identity_transform(route: Route) -> Route:
    return route


def oracle_transform(route: Route) -> Route:
    """§S9 Oracle: disk reads, H2D/D2H and PE->DE KV transfers cost nothing (an empty route
    completes at once).  Storage kinds keep their per-I/O latency (the request still waits
    for the storage round trip); network copies lose theirs.  Model traffic is untouched."""
    if route.kind not in KV_KINDS:
        return route
    keep = route.latency if route.kind in (RouteKind.STORAGE_READ, RouteKind.STORAGE_WRITE) else 0.0
    return Route((), route.kind, route.src, route.dst, keep)


TRANSFORMS: dict[str, Transform] = {"none": identity_transform, "oracle": oracle_transform}

#: Transforms under which a host-DRAM KV buffer never makes a request wait (its capacity is
#: unbounded): §S9's Oracle makes every KV move free, so staging that KV costs nothing either.
FREE_BUFFERS: set[str] = {"oracle"}


class RouteBook:
    """Every route of a cluster, built on first use and cached per (kind, src, dst).

    Latencies (``cluster.storage_latency_s``, ``cluster.net_latency_s``) belong to the route
    kind: storage I/O pays the storage latency, CNIC copies the network latency, local D2H and
    model traffic none (as before core v2).

    Lookups go through one table per kind: a small dict keyed by a node's ``nid`` or a GPU's
    ``gid``, and for a pair of GPUs a flat list indexed by ``src.gid * n + dst.gid`` (n GPUs;
    made on first use): no hashing, no boxed key, one memory access however many pairs the
    cluster has (a 1,152-GPU run builds ~600,000 pair routes).  :meth:`built` lists them all."""

    def __init__(self, cluster, storage_latency: float, net_latency: float,
                 transform: Transform = identity_transform):
        self.cl = cluster
        self.transform = transform
        self.lat = {RouteKind.STORAGE_READ: storage_latency, RouteKind.STORAGE_WRITE: storage_latency,
                    RouteKind.H2D: net_latency, RouteKind.REMOTE_H2D: net_latency,
                    RouteKind.GPU_TO_REMOTE: net_latency, RouteKind.D2H: 0.0, RouteKind.MODEL: 0.0}
        self._n = len(cluster.gpus)
        self._read: dict = {}
        self._write: dict = {}
        self._h2d: dict = {}
        self._d2h: dict = {}
        self._remote_h2d: list = []  # (pair tables: [None] * n * n once a route is built)
        self._to_remote: list = []
        self._model: list = []

    def _make(self, kind: RouteKind, src, dst, links) -> Route:
        return self.transform(Route(links, kind, src, dst, self.lat[kind]))

    def _pair(self, table: list, k: int, r: Route) -> Route:
        """Keep ``r`` at ``k`` in a pair table (sized on first use)."""
        if not table:
            table.extend([None] * (self._n * self._n))
        table[k] = r
        return r

    def built(self) -> list[Route]:
        """Every route built so far (for inspection)."""
        out = [r for d in (self._read, self._write, self._h2d, self._d2h) for r in d.values()]
        return out + [r for t in (self._remote_h2d, self._to_remote, self._model) for r in t
                      if r is not None]

    def storage_read(self, node) -> Route:
        r = self._read.get(node.nid)
        if r is None:
            links = (node.snic_rx, node.dram)
            st = self.cl.storage
            r = self._make(RouteKind.STORAGE_READ, node, node, ((st,) + links) if st is not None else links)
            self._read[node.nid] = r
        return r

    def storage_write(self, node) -> Route:
        r = self._write.get(node.nid)
        if r is None:
            links = (node.dram, node.snic_tx)
            st = self.cl.storage
            r = self._make(RouteKind.STORAGE_WRITE, node, node, (links + (st,)) if st is not None else links)
            self._write[node.nid] = r
        return r

    def h2d(self, gpu) -> Route:
        """Host DRAM of the GPU's node -> the GPU: a loop-back RDMA write through its CNIC."""
        r = self._h2d.get(gpu.gid)
        if r is None:
            links = (gpu.node.dram, gpu.cnic_rd, gpu.cnic_wr)
            if gpu.pcie_dn is not None:
                links += (gpu.pcie_dn,)
            r = self._make(RouteKind.H2D, gpu.node, gpu, links)
            self._h2d[gpu.gid] = r
        return r

    def remote_h2d(self, src_gpu, dst_gpu) -> Route:
        """DRAM buffer of ``src_gpu``'s node -> ``dst_gpu`` (DE read path: DE buffer -> DE CNIC
        -> PE CNIC -> PE GPU)."""
        k = src_gpu.gid * self._n + dst_gpu.gid
        r = self._remote_h2d[k] if self._remote_h2d else None
        if r is None:
            links = (src_gpu.node.dram, src_gpu.cnic_rd, dst_gpu.cnic_wr)
            if dst_gpu.pcie_dn is not None:
                links += (dst_gpu.pcie_dn,)
            r = self._pair(self._remote_h2d, k,
                           self._make(RouteKind.REMOTE_H2D, src_gpu, dst_gpu, links))
        return r

    def gpu_to_remote(self, src_gpu, dst_gpu) -> Route:
        """``src_gpu`` HBM -> ``dst_gpu``'s node DRAM via ``dst_gpu``'s CNIC (PE -> DE buffer)."""
        k = src_gpu.gid * self._n + dst_gpu.gid
        r = self._to_remote[k] if self._to_remote else None
        if r is None:
            links = (src_gpu.cnic_rd, dst_gpu.cnic_wr, dst_gpu.node.dram)
            if src_gpu.pcie_up is not None:
                links = (src_gpu.pcie_up,) + links
            r = self._pair(self._to_remote, k,
                           self._make(RouteKind.GPU_TO_REMOTE, src_gpu, dst_gpu, links))
        return r

    def d2h(self, gpu) -> Route:
        """GPU -> its node's DRAM through its own CNIC (loop-back)."""
        r = self._d2h.get(gpu.gid)
        if r is None:
            links = (gpu.cnic_rd, gpu.cnic_wr, gpu.node.dram)
            if gpu.pcie_up is not None:
                links = (gpu.pcie_up,) + links
            r = self._make(RouteKind.D2H, gpu, gpu.node, links)
            self._d2h[gpu.gid] = r
        return r

    def model(self, src_gpu, dst_gpu) -> Route:
        """EP all-to-all between GPUs of different nodes (high priority, §S5)."""
        k = src_gpu.gid * self._n + dst_gpu.gid
        r = self._model[k] if self._model else None
        if r is None:
            r = self._pair(self._model, k, self._make(RouteKind.MODEL, src_gpu, dst_gpu,
                                                      (src_gpu.cnic_rd, dst_gpu.cnic_wr)))
        return r
