"""The request record: one round (turn) of one agent, and its timestamps through §S4."""
from __future__ import annotations

NAN = float("nan")

# Stages a request can be stuck in (reported by stall detection).
STAGES = ("arrived", "scheduled", "allocated", "reading", "prefill_queue", "prefill", "de_alloc",
          "de_h2d", "decode", "done", "failed")


class Request:
    __slots__ = (
        "rid", "agent", "round", "prompt", "hit", "gen", "new", "arrival",
        "t_sched", "t_alloc", "t_read0", "t_read1", "t_pf0", "t_first", "t_h2d", "t_second",
        "t_end", "pe", "de", "path", "computed", "stage", "fail", "in_src", "pe_buf",
        "de_buf", "pend", "split", "split_de", "sched_note", "n_chunks",
    )

    def __init__(self, rid: int, agent, rnd: int, prompt: int, hit: int, gen: int, arrival: float):
        self.rid = rid
        self.agent = agent
        self.round = rnd
        self.prompt = prompt
        self.hit = hit  # tokens read from storage (hit KV), set when scheduled
        self.gen = gen
        self.new = prompt - hit  # tokens the PE computes
        self.arrival = arrival
        self.t_sched = NAN
        self.t_alloc = NAN
        self.t_read0 = NAN
        self.t_read1 = NAN
        self.t_pf0 = NAN
        self.t_first = NAN
        self.t_h2d = NAN
        self.t_second = NAN
        self.t_end = NAN
        self.pe = None
        self.de = None
        self.path = ""
        self.computed = 0  # new tokens prefilled so far (chunked prefill)
        self.stage = "arrived"
        self.fail = ""
        self.in_src = None
        self.pe_buf = 0.0  # bytes held in the PE node's buffer
        self.de_buf = 0.0  # bytes held in the DE node's buffer
        self.pend = 0  # outstanding parts of the current stage
        self.split = 0.0  # fraction of hit KV read through the DE path (policy `split`)
        self.split_de = 0
        self.sched_note = ""
        self.n_chunks = 0

    def __repr__(self) -> str:  # pragma: no cover
        return (f"Request({self.rid}, agent {self.agent.aid}, round {self.round}, stage {self.stage}, "
                f"prompt {self.prompt}, hit {self.hit})")
