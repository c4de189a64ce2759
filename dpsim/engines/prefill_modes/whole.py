"""Whole-request prefill (non-layerwise, Basic §S9): the batch's whole prompt KV sits in PE HBM
(the batcher's limit: batching KV <= the PE's KV HBM), so a forward runs in three steps that do
not overlap -- (1) all cached KV of the batch (hit + earlier chunks) is copied into HBM, one
transfer of Full Blocks per request (PE buffer -> CNIC loop-back, or DE buffer -> PE over the
compute network); (2) compute T (the model traffic of EP rides the CNICs meanwhile); (3) the KV
goes out to the DE buffer (new KV, and on a PE-path request's first chunk its hit KV, §S4 step 3).
The engine is busy from (1) until the KV has left HBM.

What may overlap, and why (#11 item 2):

* The *storage read* of the next batch into the PE node's DRAM overlaps this forward: it is the
  framework's own step before prefill (§S4 step 1: storage -> SNIC -> host buffer, done by the
  node's storage client, not the GPU), which nothing in it ties to layerwise prefill.  How far
  ahead a PE reads is the scheduler's choice: Basic's queue (dpsim/scheduling/basic.py) lets a
  PE hold one batch's worth beyond its running forward (``system.basic.prefetch_batches``).
* The *copy into HBM* of the next batch does not overlap this forward.  Assumption: the engine
  sizes a batch to the whole of its KV HBM (§S10: Basic's batching is HBM-limited), so it can
  give the next batch HBM only once this batch's KV has gone out -- a double-buffered HBM would
  halve every batch instead; and that copy would share the PE's CNIC with step (3) anyway.
  Hiding this copy behind compute is what layerwise prefill adds (§S3: it "alleviates PE HBM
  bottlenecks and hides transfer overhead").
"""
from __future__ import annotations

from . import register
from .base import BatchBase


@register("whole")
class WholeBatch(BatchBase):
    __slots__ = ("pin", "pout", "out_list", "compute_done")
    layer_blocks = False

    def start(self) -> None:
        d = self.eng.deps
        gpu = self.eng.gpu
        self.pin = 0
        self.pout = 0
        self.compute_done = False
        ins, self.out_list = self.kv_in_out()
        for req, inb in ins:
            if inb > 0:
                self.pin += d.port.pe_input(req, gpu, inb, 0.0, self._in_done, False)
        if self.pin == 0:
            self._compute()

    def _in_done(self, _tr=None) -> None:
        self.pin -= 1
        if self.pin == 0:
            self._compute()

    def _compute(self) -> None:
        d = self.eng.deps
        self.pout += d.port.model_traffic(self.eng.gpu, self.ep, self.T, self._out_done, self.eng.idx)
        d.clock.timer(self.T, self._computed)

    def _computed(self, _ev=None) -> None:
        d = self.eng.deps
        gpu = self.eng.gpu
        for req, outb in self.out_list:
            if outb > 0:
                self.pout += d.port.pe_output(req, gpu, outb, 0.0, self._out_done, False)
        self.compute_done = True
        self._check()

    def _out_done(self, _tr=None) -> None:
        self.pout -= 1
        self._check()

    def _check(self) -> None:
        if self.compute_done and self.pout == 0:
            self.done()
