"""The stages of one round (a *request*) through the cluster (§S4), in order.

Think of a parcel's tracking page: each request is always at exactly one stage, and each
transition in :mod:`dpsim.lifecycle.transitions` moves it to the next one.  ``Stage`` is a
``StrEnum``, so ``req.stage == "done"`` still reads naturally in tests and tables.
"""
from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    ARRIVED = "arrived"              # issued by its agent, waiting for the scheduler
    SCHEDULED = "scheduled"          # has a PE, a DE and a read plan; waiting for DRAM buffers
    ALLOCATED = "allocated"          # buffers held; waiting for the previous round's KV to persist
    READING = "reading"              # hit KV moving storage -> SNIC -> DRAM
    PREFILL_QUEUE = "prefill_queue"  # in its PE's ready queue
    PREFILL = "prefill"              # in a PE forward pass
    DE_ALLOC = "de_alloc"            # first token out; waiting for DE HBM
    DE_H2D = "de_h2d"                # prompt KV moving DE buffer -> DE HBM
    DECODE = "decode"                # in the DE's decode batch
    DONE = "done"
    FAILED = "failed"


#: Stages a request can be stuck in, in lifecycle order (stall reports use it).
STAGES = tuple(s.value for s in Stage)
FINAL = (Stage.DONE, Stage.FAILED)
