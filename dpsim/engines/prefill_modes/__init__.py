"""Prefill strategies: how one forward pass moves its KV (a registry, one file each).

``system.layerwise`` and ``system.prefill_mode`` pick one (:func:`strategy_for`):

* ``layerwise`` (layerwise.py, §S3, the default): cached KV streams in paced by compute, the
  produced KV streams out from the first layer on; one event per forward.
* ``layerwise_fine`` (fine.py): one event chain per layer, to validate the coarse mode.
* ``whole`` (whole.py, Basic §S9): all cached KV is in HBM before the forward; the produced KV
  leaves after it.
"""
from __future__ import annotations

from .base import BatchBase  # noqa: F401
from .fine import FineLayerwiseBatch
from .layerwise import LayerwiseBatch
from .whole import WholeBatch

STRATEGIES = {"layerwise": LayerwiseBatch, "layerwise_fine": FineLayerwiseBatch, "whole": WholeBatch}


def strategy_for(syscfg: dict) -> type:
    """The strategy a system config names (``layerwise`` x ``prefill_mode``)."""
    mode = syscfg["prefill_mode"]
    if mode not in ("coarse", "fine"):
        raise ValueError(f"system.prefill_mode={mode!r} must be 'coarse' or 'fine'")
    if not syscfg["layerwise"]:
        return STRATEGIES["whole"]
    return STRATEGIES["layerwise_fine" if mode == "fine" else "layerwise"]
