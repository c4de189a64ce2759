"""Per-request fixed costs of the lifecycle (#11 item 4), read from the config once.

Like the stamps on a letter: none of them moves bytes, each just takes its time at its counter.
The config holds each cost with its source (``system.costs`` in ``conf/system/_common.yaml``,
``cluster.storage_queue_depth`` in ``conf/cluster/hopper.yaml``); :class:`LifecycleCosts` is the
plain bundle :class:`~dpsim.lifecycle.transitions.Lifecycle` reads (and
:class:`~dpsim.lifecycle.ports.KVPort` its ``read_queue_depth``).  A zero cost adds no event
(the lifecycle tests ``> 0`` before it sets a timer), so a config with every cost at 0 runs the
exact event sequence of a lifecycle without them.  docs/fixed_costs.md lists where each is paid.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class LifecycleCosts:
    sched_s: float = 0.0         # scheduler decision + its RPC to the engines, per assignment
    alloc_s: float = 0.0         # DRAM KV buffer allocation, once per request
    handoff_s: float = 0.0       # PE -> DE hand-off (control message + acknowledgement)
    read_queue_depth: int = 0    # storage reads outstanding per request per node (0: unlimited)

    @classmethod
    def from_config(cls, cfg: Mapping) -> "LifecycleCosts":
        """The costs of a validated config.  Systems whose KV moves are free (§S9 Oracle: a route
        transform in :data:`dpsim.cluster.routes.FREE_BUFFERS`) pay the control costs (scheduler,
        hand-off) but no I/O ones (buffer allocation, storage queue rounds)."""
        from ..cluster.routes import FREE_BUFFERS

        sc = cfg["system"]
        c = sc.get("costs") or {}
        io_free = sc.get("route_transform", "none") in FREE_BUFFERS
        qd = int(cfg["cluster"].get("storage_queue_depth", 0) or 0)
        return cls(sched_s=float(c.get("sched_decision_s", 0.0)) + float(c.get("sched_rpc_s", 0.0)),
                   alloc_s=0.0 if io_free else float(c.get("buffer_alloc_s", 0.0)),
                   handoff_s=float(c.get("handoff_s", 0.0)),
                   read_queue_depth=0 if io_free else qd)


def read_rounds(tokens: int, block: int, queue_depth: int) -> int:
    """Latency rounds of reading ``tokens`` hit tokens as Full Blocks of ``block`` tokens with at
    most ``queue_depth`` reads outstanding: ceil(ceil(tokens / block) / queue_depth) (>= 1)."""
    if queue_depth <= 0 or tokens <= 0:
        return 1
    blocks = -(-int(tokens) // int(block))
    return max(1, -(-blocks // int(queue_depth)))
