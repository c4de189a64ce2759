"""Whole-request prefill (non-layerwise, Basic §S9): all cached KV must be in HBM before the
forward (one transfer of Full Blocks per request), then compute T, then the KV goes out to the
DE buffer; the engine is busy until the KV has left HBM."""
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
