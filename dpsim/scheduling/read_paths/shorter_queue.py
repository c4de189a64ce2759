"""``shorter_queue``: the node whose SNIC has the shorter read queue reads (DualPath, §S6);
ties go to the PE side."""
from . import ReadPlan, register


@register("shorter_queue")
class ShorterQueue:
    def __init__(self, ctx):
        pass

    def __call__(self, req, pe, de) -> ReadPlan:
        if pe.gpu.node.read_q <= de.gpu.node.read_q:
            return ReadPlan.pe()
        return ReadPlan.de(req.hit)
