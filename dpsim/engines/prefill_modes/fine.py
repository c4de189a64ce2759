"""Layerwise prefill, fine: one event chain per layer (for validating the coarse mode on small
cases).  Layer l waits for its inbound Layer Blocks, computes T/L, then sends its outbound KV;
the inbound KV of layer l+1 is fetched while layer l computes (double buffering)."""
from __future__ import annotations

from . import register
from .base import BatchBase


@register("layerwise_fine")
class FineLayerwiseBatch(BatchBase):
    def start(self) -> None:
        self.ins, self.out_list = self.kv_in_out(self.L)
        self.in_pending = {}
        self.in_ready = set()
        self.computing = -1
        self.next_compute = 0
        self.out_pending = 0
        self.done_layers = 0
        self.compute_done = False
        self.fetch(0)

    def fetch(self, l: int) -> None:
        if l >= self.L:
            return
        d = self.eng.deps
        n = 0
        for req, inb in self.ins:
            if inb > 0:
                n += d.port.pe_input(req, self.eng.gpu, inb, 0.0, lambda _t, l=l: self._in_done(l), True)
        self.in_pending[l] = n
        if n == 0:
            self._in_done(l, counted=False)

    def _in_done(self, l: int, counted: bool = True) -> None:
        if counted:
            self.in_pending[l] -= 1
        if self.in_pending[l] == 0:
            self.in_ready.add(l)
            self._try_compute()

    def _try_compute(self) -> None:
        l = self.next_compute
        if self.computing < 0 and l in self.in_ready and l < self.L:
            self.computing = l
            self.next_compute += 1
            if l + 1 < self.L:
                self.fetch(l + 1)
            self.eng.deps.clock.timer(self.T / self.L, lambda _e, l=l: self._computed(l))

    def _computed(self, l: int) -> None:
        d = self.eng.deps
        self.computing = -1
        for req, outb in self.out_list:
            if outb > 0:
                self.out_pending += d.port.pe_output(req, self.eng.gpu, outb, 0.0, self._out_done, True)
        self.done_layers += 1
        if self.done_layers == self.L:
            self.compute_done = True
            self._maybe_finish()
        else:
            self._try_compute()

    def _out_done(self, _t) -> None:
        self.out_pending -= 1
        if self.compute_done:
            self._maybe_finish()

    def _maybe_finish(self) -> None:
        if self.compute_done and self.out_pending == 0:
            self.done()
