"""dpsim: discrete-event simulator of DualPath (arXiv 2602.21548)."""
__version__ = "0.1.0"

# First: CPython's object arenas on huge pages (dpsim.hugepages), so that everything built after
# this -- agents, engines, links, the simulation's objects -- lives there.
from .hugepages import ACTIVE as HUGE_PAGES, REASON as HUGE_PAGES_REASON  # noqa: E402,F401

# Before any core module is imported: pick the compiled core or the pure-Python reference.
from ._core import IMPLEMENTATION as CORE_IMPLEMENTATION  # noqa: E402,F401
