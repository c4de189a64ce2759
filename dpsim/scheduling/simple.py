"""Simple policies: immediate assignment at arrival.

``simple``: the PE with the least queued prefill tokens and the DE with the least context
tokens (ties: lowest index), or plain round robin over engines with
``system.engine_choice=round_robin``; the read plan by ``system.read_path``.  Used by the
what-if systems pe_only, de_only and round_robin.  Basic and its ablation steps queue instead
(basic.py), which with an unbounded look-ahead is exactly this policy.
"""
from __future__ import annotations

from .base import Policy, register


@register("simple")
class SimplePolicy(Policy):
    def __init__(self, ctx, syscfg):
        super().__init__(ctx, syscfg)
        self.rr = round_robin_choice(syscfg)
        self._pe_i = -1
        self._de_i = -1

    def submit(self, req) -> None:
        ctx = self.ctx
        if self.rr:
            self._pe_i = (self._pe_i + 1) % len(ctx.pes)
            self._de_i = (self._de_i + 1) % len(ctx.des)
            pe = ctx.pes[self._pe_i]
            de = ctx.des[self._de_i]
        else:
            pe = min(ctx.pes, key=_key)
            de = min(ctx.des, key=_key)
        plan = self.plan(req, pe, de)
        self.ledger.charge_pe(req, pe)
        self.ledger.charge_de(req, de)
        ctx.assign(req, pe, de, plan)


def _key(e):
    return (e.tok, e.idx)


def round_robin_choice(syscfg) -> bool:
    """``system.engine_choice``: True for ``round_robin``, False for ``least_tokens`` (checked)."""
    ec = syscfg["engine_choice"]
    if ec not in ("least_tokens", "round_robin"):
        raise ValueError(f"system.engine_choice={ec!r} must be 'least_tokens' or 'round_robin'")
    return ec == "round_robin"
