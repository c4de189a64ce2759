"""``pe``: the PE read path only (Basic, §S9): the PE node reads all hit KV."""
from . import ReadPlan, register


@register("pe")
class PeOnly:
    def __init__(self, ctx):
        pass

    def __call__(self, req, pe, de) -> ReadPlan:
        return ReadPlan.pe()
