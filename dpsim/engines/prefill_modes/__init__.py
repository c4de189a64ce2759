"""Prefill strategies: how one forward pass moves its KV (a registry, one file each).

``system.layerwise`` and ``system.prefill_mode`` pick one (:func:`strategy_for`):

* ``layerwise`` (layerwise.py, §S3, the default; ``prefill_mode: coarse``): cached KV streams
  in paced by compute, the produced KV streams out from the first layer on; one event per
  forward.
* ``layerwise_fine`` (fine.py; ``prefill_mode: fine``): one event chain per layer, to validate
  the coarse mode.
* ``whole`` (whole.py, Basic §S9; ``layerwise: false``): all cached KV is in HBM before the
  forward; the produced KV leaves after it.

A new strategy is one file here: a :class:`BatchBase` subclass decorated with
``@register("name")``; run it with ``system.prefill_mode=name`` (and ``layerwise: true``).
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import BatchBase  # noqa: F401

STRATEGIES: dict = {}

# prefill_mode names that select a built-in strategy under layerwise prefill
MODE_ALIASES = {"coarse": "layerwise", "fine": "layerwise_fine"}


def register(name: str):
    def deco(cls):
        if name in STRATEGIES or name in MODE_ALIASES:
            raise ValueError(f"prefill strategy {name!r} registered twice")
        STRATEGIES[name] = cls
        if cls.__dict__.get("name") != name:
            cls.name = name  # (a compiled strategy, an extension type, names itself in its body)
        return cls
    return deco


def mode_names() -> set:
    """Every value ``system.prefill_mode`` accepts."""
    return set(MODE_ALIASES) | set(STRATEGIES)


def strategy_for(syscfg: dict) -> type:
    """The strategy a system config names (``layerwise`` x ``prefill_mode``)."""
    mode = syscfg["prefill_mode"]
    if mode not in mode_names():
        raise ValueError(f"system.prefill_mode={mode!r} must be one of {sorted(mode_names())}")
    if not syscfg["layerwise"]:
        return STRATEGIES["whole"]
    return STRATEGIES[MODE_ALIASES.get(mode, mode)]


for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")
