"""Layerwise prefill, coarse (§S3, the default).

A forward of compute time T over L layers streams each request's cached KV in, paced by
compute (it cannot run more than a layer ahead, so its rate is capped at bytes / (T (L-1)/L)),
and streams the produced KV out from the end of the first layer on.  The batch ends at
max(t0 + T, inputs done + T/L, outputs done): compute waits for inputs, and the last layer's
attention runs after its KV arrived.  One event per forward, not per layer.
"""
from __future__ import annotations

from . import register
from .base import BatchBase


class LayerwiseBatch(BatchBase):
    # Registered below the class (not decorated): the compiled core makes it an extension type
    # (its fields are declared in layerwise.pxd), which takes no Python decorator.
    name = "layerwise"

    def start(self) -> None:
        d = self.eng.deps
        gpu = self.eng.gpu
        self.pin = 0
        self.pout = 0
        self.t_in = self.t0
        self.timer_fired = False
        self.compute_done = False
        self.out_started = False
        ins, self.out_list = self.kv_in_out()
        T, L = self.T, self.L
        pace = T * (L - 1) / L if L > 1 else 0.0
        port = d.port
        in_done = self._in_done  # bound once per batch, not once per request
        for req, inb in ins:
            if inb > 0:
                self.pin += port.pe_input(req, gpu, inb, pace, in_done, True)
        self.pout += port.model_traffic(gpu, self.ep, T, self._out_done, self.eng.idx)
        d.clock.timer(T, self._timer)
        d.clock.timer(T / L, self._start_out)

    def _in_done(self, _tr=None) -> None:
        self.pin -= 1
        if self.pin == 0:
            self.t_in = self.eng.deps.clock.time()
            if self.timer_fired:
                self._after_compute()

    def _timer(self, _ev=None) -> None:
        self.timer_fired = True
        if self.pin == 0:
            self._after_compute()

    def _after_compute(self) -> None:
        clock = self.eng.deps.clock
        tail = self.t_in + self.T / self.L
        now = clock.time()
        if tail > now + 1e-15:
            clock.timer(tail - now, self._compute_finished)
        else:
            self._compute_finished()

    def _compute_finished(self, _ev=None) -> None:
        self.compute_done = True
        self._check()

    def _start_out(self, _ev=None) -> None:
        d = self.eng.deps
        self.out_started = True
        pace = self.T * (self.L - 1) / self.L if self.L > 1 else 0.0
        gpu = self.eng.gpu
        port = d.port
        out_done = self._out_done  # bound once per batch (kept in no field: no reference cycle)
        for req, outb in self.out_list:
            if outb > 0:
                self.pout += port.pe_output(req, gpu, outb, pace, out_done, True)
        self._check()

    def _out_done(self, _tr=None) -> None:
        self.pout -= 1
        self._check()

    def _check(self) -> None:
        if self.compute_done and self.out_started and self.pout == 0:
            self.done()


register("layerwise")(LayerwiseBatch)
