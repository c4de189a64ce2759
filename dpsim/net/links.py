"""Links and transfers: the objects the flow-level network shares bandwidth over."""
from __future__ import annotations

import math

HIGH = 0  # model-execution traffic (EP all-to-all, collectives): high-priority lane (§S5)
LOW = 1  # KV-Cache traffic: low-priority lane (§S5)

INF = math.inf


class Link:
    """A unidirectional (or half-duplex, when shared by both directions) capacity in bytes/s.

    ``acc_bytes`` + ``rate_sum`` x (now - ``acc_t``) is the number of bytes delivered so far:
    counters are O(1) to sample, so time series need no per-transfer bookkeeping.
    """

    __slots__ = ("name", "kind", "capacity", "sat_cap", "flows", "n_flows", "rate_sum", "acc_bytes",
                 "acc_t", "high_rate", "n_low", "node", "index", "_mark", "_cmark",
                 "_bgh", "_bgl", "_load", "_hload", "_avail", "_cnt")

    def __init__(self, name: str, capacity: float, kind: str = "", node: int = -1, index: int = -1):
        if not capacity > 0:
            raise ValueError(f"link {name!r}: capacity must be > 0 bytes/s (got {capacity!r})")
        self.name = name
        self.kind = kind
        self.capacity = float(capacity)
        self.sat_cap = self.capacity * (1.0 - 1e-9)  # at or above: saturated
        # The transfers flowing on this link, in the order they started (deterministic
        # iteration): the first ``n_flows`` entries of ``flows`` (the rest are None).  A list,
        # not a dict: a few entries each, so leaving is a short identity scan of one contiguous
        # array of pointers (network._drop), with no hashing, table churn or reallocation, and
        # no other transfer touched.
        self.flows: list = []
        self.n_flows = 0
        self.rate_sum = 0.0
        self.high_rate = 0.0  # sum of the rates of high-class flows on this link
        self.n_low = 0  # low-class flows on this link
        self._cmark = 0
        # Scratch space of the re-rating (background loads, new loads, filling state).
        self._bgh = self._bgl = self._load = self._hload = self._avail = 0.0
        self._cnt = 0
        self.acc_bytes = 0.0
        self.acc_t = 0.0
        self.node = node
        self.index = index
        self._mark = 0

    def delivered(self, now: float) -> float:
        """Bytes that crossed this link up to ``now``."""
        return self.acc_bytes + self.rate_sum * (now - self.acc_t)

    def live_flows(self) -> list:
        """The transfers flowing on this link now, in the order they started."""
        return self.flows[:self.n_flows]

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Link({self.name}, {self.capacity:.3g} B/s, {self.n_flows} flows)"


class Transfer:
    """Bytes moving over a route of links.  ``on_done(transfer)`` fires at completion."""

    __slots__ = ("id", "route", "links", "size", "remaining", "rate", "prio", "max_rate", "last_t",
                 "on_done", "t_submit", "t_start", "t_end", "version", "_tag", "_rid", "delivered_check",
                 "_mark", "_old", "_hslot")

    def __init__(self, tid: int, route: tuple, size: float, prio: int, max_rate: float,
                 on_done, tag, rid: int = -1) -> None:
        _fill(self, tid, route, size, prio, max_rate, on_done, tag, rid)

    @property
    def tag(self):
        """What the transfer was started with as its tag (``(kind, rid)`` for the KV port's)."""
        return self._tag if self._rid < 0 else (self._tag, self._rid)

    @tag.setter
    def tag(self, value) -> None:
        self._tag = value
        self._rid = -1

    @property
    def done(self) -> bool:
        return self.t_end >= 0.0

    def __repr__(self) -> str:  # pragma: no cover
        return (f"Transfer#{self.id}({self.tag}, {self.size:.3g} B, rem {self.remaining:.3g}, "
                f"rate {self.rate:.3g})")


def new_transfer(tid: int, route: tuple, size: float, prio: int, max_rate: float, on_done, tag,
                 rid: int) -> Transfer:
    """``Transfer(...)`` as the network makes one per transfer: in the compiled build a C call
    with C arguments (no Python-level constructor call, nothing boxed)."""
    tr = Transfer.__new__(Transfer)
    _fill(tr, tid, route, size, prio, max_rate, on_done, tag, rid)
    return tr


def _fill(tr: Transfer, tid, route, size, prio, max_rate, on_done, tag, rid) -> None:
    """Set every field of a new transfer (its constructor's body: a function, not a method, so
    that the compiled Transfer has no method table and its size keeps it line-aligned, as
    links.pxd says)."""
    tr.id = tid
    tr.route = route
    # The links as an exact tuple: the network's hot loops walk ``links``, which the
    # compiled build iterates by index, allocating no iterator.
    if type(route) is tuple:
        tr.links = route
    elif isinstance(route, tuple):  # a tuple subclass with attributes
        tr.links = tuple(route)
    else:  # a route object (dpsim.cluster.routes.Route) carries its links as a tuple
        links = getattr(route, "links", None)
        tr.links = links if type(links) is tuple else tuple(route)
    tr.size = float(size)
    tr.remaining = float(size)
    tr.rate = 0.0
    tr.prio = prio
    tr.max_rate = max_rate
    tr.last_t = 0.0
    tr.on_done = on_done
    tr.t_submit = 0.0
    tr.t_start = -1.0
    tr.t_end = -1.0
    tr.version = 0
    # The tag: ``tag`` itself, or with ``rid`` >= 0 the pair ``(tag, rid)`` -- made when read,
    # so the KV port's tags (a kind and a request id, one per transfer) cost no tuple and no
    # boxed integer in the hot path.
    tr._tag = tag
    tr._rid = rid
    tr.delivered_check = 0.0
    tr._mark = 0
    tr._old = 0.0
    tr._hslot = -1  # handle of its completion entry in the network's heap (compiled heap only)


def sum_bytes(groups: list, now: float, out) -> None:
    """``out[i]`` = the bytes the links of ``groups[i]`` carried up to ``now``, from their O(1)
    counters: the metrics sampler's loop (C in the compiled build; ``out`` a float64 array)."""
    i = 0
    for ls in groups:
        s = 0.0
        for l in ls:
            s += l.acc_bytes + l.rate_sum * (now - l.acc_t)
        out[i] = s
        i += 1
