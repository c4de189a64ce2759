"""Flow-level network: links, transfers, max-min sharing with priority classes, link backends."""
from .links import HIGH, INF, LOW, Link, Transfer
from .maxmin import allocate, allocate_scratch, fill, fill_scratch
from .network import (CapacityViolation, ExternalBackend, FixedRateBackend, FlowBackend, LinkBackend,
                      Network)

__all__ = ["HIGH", "LOW", "INF", "Link", "Transfer", "allocate", "fill", "Network", "LinkBackend",
           "FlowBackend", "FixedRateBackend", "ExternalBackend", "CapacityViolation"]
