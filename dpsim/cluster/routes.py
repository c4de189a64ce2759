"""Routes with identity: what a transfer crosses, and what kind of move it is (§S4).

A route is like a railway ticket: it lists the stations (links) a shipment passes and says
what kind of journey it is -- storage to a node's DRAM, DRAM to a GPU, a PE's HBM to a DE's
buffer.  The network only needs the stations; everyone else (the hardware-in-the-loop backend,
link profiles, metrics) reads the *kind* and the endpoints, through :data:`RouteKind`, instead
of guessing from link names.

The cluster builds routes in one place (:class:`RouteBook`): a node's or a GPU's own routes
once each, kept; a route between two GPUs (there are n^2 pairs) afresh for each transfer -- a
small object, cheaper than finding a kept one in a table too large for the processor's caches.
A *transform* chosen by config rewrites routes when they are built: the Oracle system (§S9) is
:func:`oracle_transform` -- every KV move costs nothing -- not a branch in the mechanism.
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


class Route:
    """The links a transfer crosses (``links``, a tuple: all the network reads), with its
    ``kind``, its endpoints ``src``/``dst`` (a Node or GPU each) and the ``latency`` before its
    first byte.  It reads as the tuple of its links (``len``, iteration, indexing).  Small and
    flat: pair routes are made per transfer (see :class:`RouteBook`)."""

    __slots__ = ("links", "kind", "src", "dst", "latency")

    def __init__(self, links, kind, src, dst, latency: float = 0.0):
        self.links = links if type(links) is tuple else tuple(links)
        self.kind = kind
        self.src = src
        self.dst = dst
        self.latency = float(latency)

    def __len__(self) -> int:
        return len(self.links)

    def __iter__(self):
        return iter(self.links)

    def __getitem__(self, i):
        return self.links[i]

    def __reduce__(self):  # picklable
        return (Route, (self.links, self.kind, self.src, self.dst, self.latency))

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Route({self.kind}, {[getattr(l, 'name', l) for l in self.links]})"


def new_route(links: tuple, kind, src, dst, latency: float) -> Route:
    """``Route(...)`` as the route book makes one per pair transfer: in the compiled build a C
    call with C arguments (``links`` must be a tuple)."""
    r = Route.__new__(Route)
    r.links = links
    r.kind = kind
    r.src = src
    r.dst = dst
    r.latency = latency
    return r


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


#: The kinds as module constants (read per transfer by the pair routes).
_REMOTE_H2D, _GPU_TO_REMOTE, _MODEL = RouteKind.REMOTE_H2D, RouteKind.GPU_TO_REMOTE, RouteKind.MODEL


class RouteBook:
    """Every route of a cluster: a node's and a GPU's own routes (storage, H2D, D2H) built on
    first use and kept, per (kind, endpoint); a route between two GPUs built per call.

    Latencies (``cluster.storage_latency_s``, ``cluster.net_latency_s``) belong to the route
    kind: storage I/O pays the storage latency, CNIC copies the network latency, local D2H and
    model traffic none (as before core v2).

    Kept routes sit in one list per kind indexed by a node's ``nid`` or a GPU's ``gid`` (no
    hashing, no boxed key).  Pair routes are not kept: a 1,152-GPU run has 1.3 million GPU
    pairs, and a table of their routes (~600,000 built, ~200 MB) is read at random, one cache
    miss after another; a new 4-link route per transfer costs less and holds nothing.
    :meth:`built` lists the kept ones."""

    def __init__(self, cluster, storage_latency: float, net_latency: float,
                 transform: Transform = identity_transform):
        self.cl = cluster
        self.transform = transform
        self._tf = None if transform is identity_transform else transform
        self.lat = {RouteKind.STORAGE_READ: storage_latency, RouteKind.STORAGE_WRITE: storage_latency,
                    RouteKind.H2D: net_latency, RouteKind.REMOTE_H2D: net_latency,
                    RouteKind.GPU_TO_REMOTE: net_latency, RouteKind.D2H: 0.0, RouteKind.MODEL: 0.0}
        self.net_lat = float(net_latency)
        n_nodes, n_gpus = len(cluster.nodes), len(cluster.gpus)
        self._read: list = [None] * n_nodes
        self._write: list = [None] * n_nodes
        self._h2d: list = [None] * n_gpus
        self._d2h: list = [None] * n_gpus

    def _make(self, kind: RouteKind, src, dst, links: tuple):
        """A route with its kind's latency from :attr:`lat`."""
        return self._fresh(kind, src, dst, links, float(self.lat[kind]))

    def _fresh(self, kind: RouteKind, src, dst, links: tuple, latency: float):
        """A route with the transform applied (every route is made here; a pair route, made
        per transfer, passes its latency rather than looking it up)."""
        r = new_route(links, kind, src, dst, latency)
        return r if self._tf is None else self._tf(r)

    def built(self) -> list:
        """Every kept route built so far (a node's or a GPU's own; pair routes are not kept)."""
        return [r for t in (self._read, self._write, self._h2d, self._d2h) for r in t if r is not None]

    def storage_read(self, node):
        r = self._read[node.nid]
        if r is None:
            links = (node.snic_rx, node.dram)
            st = self.cl.storage
            r = self._make(RouteKind.STORAGE_READ, node, node, ((st,) + links) if st is not None else links)
            self._read[node.nid] = r
        return r

    def storage_write(self, node):
        r = self._write[node.nid]
        if r is None:
            links = (node.dram, node.snic_tx)
            st = self.cl.storage
            r = self._make(RouteKind.STORAGE_WRITE, node, node, (links + (st,)) if st is not None else links)
            self._write[node.nid] = r
        return r

    def h2d(self, gpu):
        """Host DRAM of the GPU's node -> the GPU: a loop-back RDMA write through its CNIC."""
        r = self._h2d[gpu.gid]
        if r is None:
            links = (gpu.node.dram, gpu.cnic_rd, gpu.cnic_wr)
            if gpu.pcie_dn is not None:
                links += (gpu.pcie_dn,)
            r = self._make(RouteKind.H2D, gpu.node, gpu, links)
            self._h2d[gpu.gid] = r
        return r

    def remote_h2d(self, src_gpu, dst_gpu):
        """DRAM buffer of ``src_gpu``'s node -> ``dst_gpu`` (DE read path: DE buffer -> DE CNIC
        -> PE CNIC -> PE GPU)."""
        if dst_gpu.pcie_dn is not None:
            links = (src_gpu.node.dram, src_gpu.cnic_rd, dst_gpu.cnic_wr, dst_gpu.pcie_dn)
        else:
            links = (src_gpu.node.dram, src_gpu.cnic_rd, dst_gpu.cnic_wr)
        return self._fresh(_REMOTE_H2D, src_gpu, dst_gpu, links, self.net_lat)

    def gpu_to_remote(self, src_gpu, dst_gpu):
        """``src_gpu`` HBM -> ``dst_gpu``'s node DRAM via ``dst_gpu``'s CNIC (PE -> DE buffer)."""
        if src_gpu.pcie_up is not None:
            links = (src_gpu.pcie_up, src_gpu.cnic_rd, dst_gpu.cnic_wr, dst_gpu.node.dram)
        else:
            links = (src_gpu.cnic_rd, dst_gpu.cnic_wr, dst_gpu.node.dram)
        return self._fresh(_GPU_TO_REMOTE, src_gpu, dst_gpu, links, self.net_lat)

    def d2h(self, gpu):
        """GPU -> its node's DRAM through its own CNIC (loop-back)."""
        r = self._d2h[gpu.gid]
        if r is None:
            links = (gpu.cnic_rd, gpu.cnic_wr, gpu.node.dram)
            if gpu.pcie_up is not None:
                links = (gpu.pcie_up,) + links
            r = self._make(RouteKind.D2H, gpu, gpu.node, links)
            self._d2h[gpu.gid] = r
        return r

    def model(self, src_gpu, dst_gpu):
        """EP all-to-all between GPUs of different nodes (high priority, §S5)."""
        return self._fresh(_MODEL, src_gpu, dst_gpu, (src_gpu.cnic_rd, dst_gpu.cnic_wr), 0.0)
