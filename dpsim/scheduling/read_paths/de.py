"""``de``: the DE read path only: the DE node reads all hit KV into its buffer (§S4)."""
from . import ReadPlan, register


@register("de")
class DeOnly:
    def __init__(self, ctx):
        pass

    def __call__(self, req, pe, de) -> ReadPlan:
        return ReadPlan.de(req.hit)
