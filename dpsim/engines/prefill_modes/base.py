"""What every prefill strategy's batch does at its start: stamp the requests, price the
forward with the compute model, and work out each request's inbound and outbound KV."""
from __future__ import annotations

from ...lifecycle.stage import Stage

# Stage members as module constants: read on every transition, and a module global is
# much cheaper to read than an enum class attribute.
_PREFILL = Stage.PREFILL


class BatchBase:
    """One forward pass of a PE over ``items`` = [(request, new tokens this pass)]."""

    layer_blocks = True  # KV moves in Layer Blocks (layerwise) or Full Blocks (whole)

    def __init__(self, eng, items: list):
        self._begin(eng, items)

    def _begin(self, eng, items: list) -> None:
        """Stamp, price and start the forward (``__init__``'s body: a typed method in the compiled
        core, where ``__init__`` itself cannot declare its locals)."""
        d = eng.deps
        self.eng = eng
        self.items = items
        self.t0 = t0 = d.clock.time()
        cm = d.compute
        new_sum = 0
        work = 0.0
        for req, bsz in items:
            if req.n_chunks == 0:
                req.t_pf0 = t0
            req.n_chunks += 1
            req.stage = _PREFILL
            new_sum += bsz
            work += cm.attn_work(req.hit + req.computed, bsz)
        self.T = cm.prefill_time(new_sum, work, len(items))
        eng.attn_times.append(cm.attention_time_forward(new_sum, work, len(items)))
        self.L = d.n_layers
        self.ep = new_sum * d.ep_tok  # model traffic leaving the node
        self.finished = False
        self.start()

    def kv_in_out(self, div: int = 1) -> tuple[list, list]:
        """[(req, inbound bytes)] of cached KV (hit + earlier chunks) and [(req, outbound
        bytes)]: the new KV, plus on a request's first chunk the hit KV its PE node read (the PE
        side forwards it to the DE buffer, §S4 step 3); both divided by ``div`` (per layer)."""
        kvb = self.eng.deps.kvb
        ins, outs = [], []
        for req, bsz in self.items:
            inb = (req.hit + req.computed) * kvb
            outb = bsz * kvb
            if req.computed == 0 and req.path != "de":
                outb += req.pe_hit * kvb
            if div != 1:
                inb /= div
                outb /= div
            ins.append((req, inb))
            outs.append((req, outb))
        return ins, outs

    def start(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def done(self) -> None:
        if not self.finished:
            self.finished = True
            self.eng.batch_done(self)
