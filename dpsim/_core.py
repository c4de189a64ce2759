"""Which build of dpsim's hot core runs: the compiled one, or the pure-Python reference.

The modules in :data:`CORE` (the request lifecycle, the engines, the DualPath scheduler, the
route book) are ordinary Python files.  At install time ``setup.py`` also compiles each of them
with Cython *in place* -- typed by the augmenting ``.pxd`` file beside it -- into an extension
module of the same name, which Python's import system prefers over the ``.py``.  Like a
translated edition printed beside the original: the same text, read faster.

The pure files stay the reference (tests run both and compare results byte for byte).  The
compiled edition is used unless

* ``DPSIM_PURE_PYTHON=1`` is set (the pure network too, see :mod:`dpsim.net`), or
* it is stale: ``dpsim._corehash`` (built with it) does not match the hash of the sources now,
  e.g. an editable checkout whose ``.py`` changed since the build -- then dpsim warns once and
  imports the sources, so an old build can never silently run instead of the code you read; or
* the compiled network (:mod:`dpsim.net`) is not in use (stale or missing): the compiled core
  calls the network and the event loop as C types, so it runs only beside them.

:data:`IMPLEMENTATION` says which (``"compiled"``/``"python"``); :data:`REASON` says why.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys

#: The compiled core modules, by dotted name (each has a ``.pxd`` beside its ``.py``).
CORE = (
    "dpsim.lifecycle.request",
    "dpsim.lifecycle.join",
    "dpsim.lifecycle.transitions",
    "dpsim.lifecycle.ports",
    "dpsim.lifecycle.log",
    "dpsim.engines.attn_kernel",
    "dpsim.engines.decode",
    "dpsim.engines.prefill",
    "dpsim.engines.prefill_modes.base",
    "dpsim.engines.prefill_modes.layerwise",
    "dpsim.scheduling.ledger",
    "dpsim.scheduling.base",
    "dpsim.scheduling.dualpath",
    "dpsim.scheduling.read_paths.shorter_queue",
    "dpsim.cluster.routes",
    "dpsim.cluster.topology",
)

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_path(name: str, root: str = _ROOT) -> str:
    return os.path.join(root, *name.split(".")) + ".py"


#: The compiled network's declarations the core cimports (its C view of the network and clock):
#: a change there makes a core built before it stale too.
NET_PXD = ("heap", "links", "loop", "network")


def source_hash(root: str = _ROOT) -> str:
    """SHA-256 over the core's ``.py`` and ``.pxd`` files and the network ``.pxd`` files it
    cimports (what a build was made from)."""
    h = hashlib.sha256()
    for name in CORE:
        base = source_path(name, root)[:-3]
        for ext in (".py", ".pxd"):
            with open(base + ext, "rb") as f:
                h.update(name.encode() + ext.encode() + b"\0" + f.read() + b"\0")
    for m in NET_PXD:
        with open(os.path.join(root, "dpsim", "net", m + ".pxd"), "rb") as f:
            h.update(b"dpsim.net." + m.encode() + b".pxd\0" + f.read() + b"\0")
    return h.hexdigest()


class _SourcesFirst:
    """A meta-path finder that loads the :data:`CORE` modules from their ``.py`` files even
    where a compiled extension sits beside them."""

    def find_spec(self, name, path=None, target=None):
        if name not in CORE:
            return None
        path = source_path(name)
        return importlib.util.spec_from_file_location(
            name, path, loader=importlib.machinery.SourceFileLoader(name, path))


def _compiled_present() -> bool:
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return any(os.path.exists(source_path(n)[:-3] + s) for n in CORE for s in suffixes)


def _select() -> tuple[str, str]:
    if os.environ.get("DPSIM_PURE_PYTHON", "") not in ("", "0"):
        why = "DPSIM_PURE_PYTHON is set"
    elif not _compiled_present():
        return "python", "not built (DPSIM_NO_EXT=1, no compiler, or a source checkout)"
    else:
        try:
            from dpsim import _corehash
        except ImportError as e:
            why = f"the build is incomplete ({e})"
        else:
            try:
                now = source_hash()
            except OSError as e:  # an install without the .pxd files: cannot tell, so do not trust it
                now = f"unreadable ({e})"
            if _corehash.SOURCE_HASH != now:
                why = "the build is stale (the core's .py/.pxd changed since; rebuild with `pip install -e .`)"
            else:
                # The compiled core calls the compiled network and event loop as C types (their
                # .pxd), so it runs only beside them.
                from dpsim import net
                if net.IMPLEMENTATION == "compiled":
                    return "compiled", "built from these sources"
                why = f"the compiled network is not in use ({net.COMPILED_ERROR})"
            import warnings
            warnings.warn(f"dpsim core: {why}; using the pure-Python core", RuntimeWarning, stacklevel=3)
    if not any(isinstance(f, _SourcesFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourcesFirst())
    return "python", why


# (setup.py loads this file under another name for CORE and source_hash only: no selection there.)
IMPLEMENTATION, REASON = _select() if __name__ == "dpsim._core" else ("python", "build-time copy")
