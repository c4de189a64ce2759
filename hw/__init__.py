"""Real transports: CPU memcpy, file reads (O_DIRECT), CUDA copies, NCCL, ibverbs.

Each transport lives in its own module and is importable without the optional
libraries of the others; heavy imports (torch, pyverbs) happen lazily inside
``check()`` so that a missing library becomes one clear
:class:`TransportUnavailable` message.

    >>> from dpsim.hw import get_transport
    >>> t = get_transport("cpu"); t.check()
"""
from __future__ import annotations

import importlib

if __name__ != "dpsim.hw":  # the checkout folder imported by its pre-#14 top-level name
    import sys as _sys

    _msg = (f"`{__name__}` is now `dpsim.hw` (issue #14): `import dpsim.hw` "
            "(from a checkout after `pip install -e .`)")
    if _sys.argv[:1] == ["-m"]:  # `python -m hw...`: the one line, no traceback
        raise SystemExit(_msg)
    raise ImportError(_msg)

from .base import Route, TransferSpec, Transport, TransportUnavailable

__all__ = [
    "TransportUnavailable",
    "Transport",
    "TransferSpec",
    "Route",
    "TRANSPORTS",
    "get_transport",
]

#: name -> "module:Class"
TRANSPORTS = {
    "cpu": "dpsim.hw.cpu:CpuTransport",
    "file": "dpsim.hw.file:FileTransport",
    "cuda": "dpsim.hw.cuda:CudaTransport",
    "nccl": "dpsim.hw.nccl:NcclTransport",
    "verbs": "dpsim.hw.verbs:VerbsTransport",
}


def get_transport(name: str, **options) -> Transport:
    """Build the transport called ``name`` (not yet checked: call ``check()``)."""
    try:
        target = TRANSPORTS[name]
    except KeyError:
        raise ValueError(f"unknown transport {name!r}; choose one of {sorted(TRANSPORTS)}") from None
    mod_name, cls_name = target.split(":")
    mod = importlib.import_module(mod_name)
    return getattr(mod, cls_name)(**options)
