"""Simple policies: immediate assignment at arrival.

``simple``: the PE with the least queued prefill tokens and the DE with the least context
tokens (ties: lowest index), or plain round robin over engines with
``system.engine_choice=round_robin``; the read path by ``system.read_path``.
"""
from __future__ import annotations

from .base import Policy, register


@register("simple")
class SimplePolicy(Policy):
    def __init__(self, sim, syscfg):
        super().__init__(sim, syscfg)
        ec = syscfg.get("engine_choice", "least_tokens")
        if ec not in ("least_tokens", "round_robin"):
            raise ValueError(f"system.engine_choice={ec!r} must be 'least_tokens' or 'round_robin'")
        self.rr = ec == "round_robin"
        self._pe_i = -1
        self._de_i = -1

    def submit(self, req) -> None:
        sim = self.sim
        if self.rr:
            self._pe_i = (self._pe_i + 1) % len(sim.pes)
            self._de_i = (self._de_i + 1) % len(sim.des)
            pe = sim.pes[self._pe_i]
            de = sim.des[self._de_i]
        else:
            pe = min(sim.pes, key=_pe_key)
            de = min(sim.des, key=_de_key)
        path, x = self.choose_path(req, pe, de)
        sim.assign(req, pe, de, path, x)


def _pe_key(e):
    return (e.tok, e.idx)


def _de_key(e):
    return (e.tok, e.idx)
