"""``shorter_queue``: the node whose SNIC has the shorter read queue reads (DualPath, §S6);
ties go to the PE side.  Part of the compiled core (DualPath's default rule: one call per
request); the file is an ordinary rule all the same."""
from . import ReadPlan, register


class ShorterQueue:
    # Registered below the class (not decorated): the compiled core makes it an extension type
    # (shorter_queue.pxd), which takes no Python decorator.
    name = "shorter_queue"

    def __init__(self, ctx):
        pass

    def __call__(self, req, pe, de) -> ReadPlan:
        if self.pe_reads(pe, de):
            return ReadPlan.pe()
        return ReadPlan.de(req.hit)

    def pe_reads(self, pe, de) -> bool:
        """The PE node's read queue is no longer than the DE node's."""
        return pe.gpu.node.read_q <= de.gpu.node.read_q


register("shorter_queue")(ShorterQueue)
