"""Flow-level network: links, transfers, max-min sharing with priority classes, link backends;
and the event loop the whole simulation runs on (:class:`EventLoop`, or :class:`SimpyClock` over
a SimPy environment).

Two builds of the same sources: the pure-Python modules (``dpsim.net.links`` / ``maxmin`` /
``loop`` / ``network``, the reference) and, when the Cython extension was built at install time, the
compiled ``dpsim.net._c.*`` modules generated from those very files.  This package exports the
compiled classes when they are available, the pure ones when the environment variable
``DPSIM_PURE_PYTHON=1`` is set or the extension is missing; :data:`IMPLEMENTATION` says which
(``"compiled"`` or ``"python"``).  :func:`implementation` returns either set explicitly.
"""
from __future__ import annotations

import os
from types import SimpleNamespace

from . import heap as _py_heap, links as _py_links, loop as _py_loop, maxmin as _py_maxmin, network as _py_network
from .backends import (CapacityViolation, ExternalBackend, FixedRateBackend, FlowBackend,
                       LinkBackend)
from .links import HIGH, INF, LOW

_NAMES = ("Link", "Transfer", "allocate", "allocate_scratch", "fill", "fill_scratch", "EventLoop", "Network")


def _load(links, maxmin, loop, network, heap, name):
    ns = {"IMPLEMENTATION": name, "links": links, "maxmin": maxmin, "loop": loop, "network": network,
          "EventLoop": loop.EventLoop, "SimpyClock": loop.SimpyClock, "as_clock": loop.as_clock,
          "Link": links.Link, "Transfer": links.Transfer, "allocate": maxmin.allocate,
          "allocate_scratch": maxmin.allocate_scratch, "fill": maxmin.fill,
          "fill_scratch": maxmin.fill_scratch, "Network": network.Network, "sum_bytes": links.sum_bytes,
          "TimeHeap": heap.TimeHeap}
    return SimpleNamespace(**ns)


PYTHON = _load(_py_links, _py_maxmin, _py_loop, _py_network, _py_heap, "python")

COMPILED = None
COMPILED_ERROR = None
try:
    from ._c import heap as _c_heap  # noqa: F401 - the typed heap the compiled loop and network use
    from ._c import (_srchash as _c_stamp, links as _c_links, loop as _c_loop, maxmin as _c_maxmin,
                     network as _c_network)
    from ._srchash_calc import source_hash as _source_hash
    if _c_stamp.SOURCE_HASH != _source_hash(os.path.dirname(os.path.abspath(__file__))):
        raise ImportError("the compiled build is stale (dpsim/net/*.py changed since it was built; "
                          "rebuild with `pip install -e .`)")
except (ImportError, OSError) as e:  # not built (DPSIM_NO_EXT=1, no compiler, source checkout)
    COMPILED_ERROR = f"{type(e).__name__}: {e}"
    if "stale" in str(e) and os.environ.get("DPSIM_PURE_PYTHON", "") in ("", "0"):
        import warnings
        warnings.warn(f"dpsim.net: {e}; using the pure-Python network", RuntimeWarning, stacklevel=2)
else:
    class Network(_c_network.Network):
        # A Python subclass of the compiled class, so that it can be monkeypatched (tests spy
        # on Network.stream) like the pure one; the hot paths are C methods either way.
        __doc__ = _c_network.Network.__doc__
        __module__ = "dpsim.net"

        def _submit(self, route, size, on_done, prio, max_rate, latency, tag, rid):
            """The KV port's entry for a pure-Python core (a stale compiled core falls back to
            its sources while this network stays compiled): the compiled ``_submit`` is a C
            method, so this goes through :meth:`transfer`, with the tag the C path would give."""
            return self.transfer(route, size, on_done, prio, max_rate, latency, tag if rid < 0 else (tag, rid))

    COMPILED = _load(_c_links, _c_maxmin, _c_loop, _c_network, _c_heap, "compiled")
    COMPILED.Network = Network
    del Network


def implementation(name: str | None = None) -> SimpleNamespace:
    """The namespace of one implementation: ``"python"``, ``"compiled"`` (ImportError when not
    built), or ``None`` for the active one."""
    if name is None:
        return _ACTIVE
    if name == "python":
        return PYTHON
    if name == "compiled":
        if COMPILED is None:
            raise ImportError(f"dpsim.net compiled extension not available ({COMPILED_ERROR})")
        return COMPILED
    raise ValueError(f"unknown dpsim.net implementation {name!r}")


_ACTIVE = PYTHON if (COMPILED is None or os.environ.get("DPSIM_PURE_PYTHON", "") not in ("", "0")) \
    else COMPILED
IMPLEMENTATION: str = _ACTIVE.IMPLEMENTATION
Link = _ACTIVE.Link
Transfer = _ACTIVE.Transfer
allocate = _ACTIVE.allocate
allocate_scratch = _ACTIVE.allocate_scratch
fill = _ACTIVE.fill
fill_scratch = _ACTIVE.fill_scratch
EventLoop = _ACTIVE.EventLoop
SimpyClock = _ACTIVE.SimpyClock
as_clock = _ACTIVE.as_clock
Network = _ACTIVE.Network
sum_bytes = _ACTIVE.sum_bytes

__all__ = ["HIGH", "LOW", "INF", "Link", "Transfer", "allocate", "fill", "EventLoop", "SimpyClock", "as_clock",
           "Network", "LinkBackend",
           "FlowBackend", "FixedRateBackend", "ExternalBackend", "CapacityViolation",
           "IMPLEMENTATION", "implementation", "sum_bytes"]
