"""The one load ledger of §S6: seq_e / tok_e per engine and read_q per node.

Like a shop's stock book, it is written in one place only: every change to an engine's
``seq``/``tok`` or a node's ``read_q`` goes through these methods, so the figures the
scheduler reads are always the sum of what was charged and not yet released.  The values
live on the engine and node objects (``e.seq``, ``e.tok``, ``node.read_q``) so that a policy
reads them at attribute speed; nothing else writes them.

* A PE is charged the tokens it must prefill (prompt - hit) from the moment it is chosen until
  the request's first token; a DE the tokens it will hold in HBM (prompt + generated) until
  the request ends.  A request is charged at most once per side (``req.pe_charged``).
* read_q counts the tokens of storage reads queued or in flight on a node's SNIC.

A policy that keeps its own index of the engines' loads (Basic's tournament trees,
:mod:`dpsim.scheduling.engine_tree`) sets ``on_pe`` / ``on_de``: called with the engine after
every change of its ``tok``.  None (the default) costs one test per change.
"""
from __future__ import annotations


def new_tokens(req) -> int:
    """Tokens a PE computes for ``req``: at least one (the first token's logits)."""
    h = req.hit
    if h > req.prompt - 1:
        h = req.prompt - 1
    if h < 0:
        h = 0
    return req.prompt - h


class LoadLedger:
    __slots__ = ("on_pe", "on_de")

    def __init__(self):
        self.on_pe = None
        self.on_de = None

    def charge_pe(self, req, pe) -> None:
        if req.pe_charged:
            raise AssertionError(f"request {req.rid} charged to a PE twice")
        t = new_tokens(req)
        req.pe = pe
        req.pe_charged = t
        pe.seq += 1
        pe.tok += t
        if self.on_pe is not None:
            self.on_pe(pe)

    def charge_de(self, req, de) -> None:
        if req.de_charged:
            raise AssertionError(f"request {req.rid} charged to a DE twice")
        t = req.prompt + req.gen
        req.de = de
        req.de_charged = t
        de.seq += 1
        de.tok += t
        if self.on_de is not None:
            self.on_de(de)

    def recharge_pe(self, req) -> None:
        """The request's hit shrank (only stored Full Blocks hit): its PE computes more."""
        if req.pe_charged:
            pe = req.pe
            d = req.new - req.pe_charged
            pe.tok += d
            req.pe_charged = req.new
            if self.on_pe is not None:
                self.on_pe(pe)

    def release_pe(self, req) -> None:
        if req.pe_charged:
            pe = req.pe
            pe.seq -= 1
            pe.tok -= req.pe_charged
            req.pe_charged = 0
            if self.on_pe is not None:
                self.on_pe(pe)

    def release_de(self, req) -> None:
        if req.de_charged:
            de = req.de
            de.seq -= 1
            de.tok -= req.de_charged
            req.de_charged = 0
            if self.on_de is not None:
                self.on_de(de)

    def read_started(self, node, tokens: int) -> None:
        node.read_q += tokens

    def read_finished(self, node, tokens: int) -> None:
        node.read_q -= tokens
