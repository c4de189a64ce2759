"""``round_robin``: alternate PE and DE paths, request by request (the ablation's "dual-path
loading with round-robin choices", §S9); the first request goes to the PE side."""
from . import ReadPlan, register


@register("round_robin")
class RoundRobin:
    def __init__(self, ctx):
        self._next_pe = True

    def __call__(self, req, pe, de) -> ReadPlan:
        pe_side = self._next_pe
        self._next_pe = not pe_side
        return ReadPlan.pe() if pe_side else ReadPlan.de(req.hit)
