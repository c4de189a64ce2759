"""dpsim: discrete-event simulator of DualPath (arXiv 2602.21548)."""
__version__ = "0.1.0"

# Before any core module is imported: pick the compiled core or the pure-Python reference.
from ._core import IMPLEMENTATION as CORE_IMPLEMENTATION  # noqa: E402,F401
