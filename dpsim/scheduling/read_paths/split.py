"""``split``: one request's hit KV through both paths, the DE side taking the x tokens that
make the two nodes' read queues end equal (beyond the paper: its stated future work, §S6)."""
from . import ReadPlan, register


@register("split")
class Split:
    def __init__(self, ctx):
        pass

    def __call__(self, req, pe, de) -> ReadPlan:
        h = req.hit
        x = (pe.gpu.node.read_q + h - de.gpu.node.read_q) / 2.0
        x = int(round(min(max(x, 0.0), h)))
        return ReadPlan.split(h, x)
