"""How transfers progress (the seam for real hardware), shared by the pure-Python and the
compiled network so that ``isinstance`` checks and ``except CapacityViolation`` hold for both."""
from __future__ import annotations


class CapacityViolation(AssertionError):
    pass


class LinkBackend:
    """How transfers progress.  ``duration(net, transfer)`` returns the seconds a transfer takes
    once it starts flowing, or ``None`` to let the network share bandwidth (flow model)."""

    name = "abstract"

    def duration(self, net, tr) -> float | None:  # pragma: no cover
        raise NotImplementedError


class FlowBackend(LinkBackend):
    """Analytical max-min sharing with priority classes (the default)."""

    name = "flow"

    def duration(self, net, tr):
        return None


class FixedRateBackend(LinkBackend):
    """Every transfer runs alone at its route's bottleneck (no sharing): an example of a
    backend that decides durations itself, as a hardware backend does with measured times."""

    name = "fixed"

    def duration(self, net, tr):
        bw = min([l.capacity for l in tr.links] + [tr.max_rate])
        return tr.size / bw if bw > 0 else 0.0


class ExternalBackend(LinkBackend):
    """Transfers run somewhere else (real hardware) and report back: ``start(net, tr)`` launches
    the transfer and returns at once; whoever runs it later calls ``net.complete(tr)`` from the
    simulation's thread at the simulated time it finished.  ``dpsim.hw.replay`` drives this with a
    real-time environment, so simulated time follows measured time."""

    name = "external"

    def duration(self, net, tr):
        return None

    def start(self, net, tr) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


__all__ = ["CapacityViolation", "LinkBackend", "FlowBackend", "FixedRateBackend", "ExternalBackend"]
