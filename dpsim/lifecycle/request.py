"""A request (one round of one agent) and the agent that issues its rounds."""
from __future__ import annotations

import math

import numpy as np

from .stage import Stage

NAN = math.nan
_ARRIVED = Stage.ARRIVED  # (a module global: much cheaper to read than an enum class attribute)


def _col(a, dtype):
    """A trajectory column as a contiguous array of ``dtype`` (the same array when it already is
    one; a converted copy holds the same values as the element-wise ``int()``/``float()``)."""
    return np.ascontiguousarray(a, dtype=dtype)


class Request:
    """One round of an agent, with its timestamps through §S4 (NaN until reached).

    ``hit`` is the number of prompt tokens whose KV is read from storage; ``de_hit`` of them
    are read through the decode node (the read plan), the rest through the prefill node.
    """

    __slots__ = (
        "rid", "agent", "round", "prompt", "hit", "gen", "new", "arrival",
        "t_sched", "t_alloc", "t_read0", "t_read1", "t_pf0", "t_first", "t_h2d", "t_second",
        "t_end", "pe", "de", "path", "de_hit", "computed", "stage", "fail", "pe_buf",
        "de_buf", "n_chunks", "pe_charged", "de_charged", "_lslot",
    )

    def __init__(self, rid: int, agent, rnd: int, prompt: int, hit: int, gen: int, arrival: float):
        self._init(rid, agent, rnd, prompt, hit, gen, arrival)

    def _init(self, rid: int, agent, rnd: int, prompt: int, hit: int, gen: int, arrival: float) -> None:
        self.rid = rid
        self.agent = agent
        self.round = rnd
        self.prompt = prompt
        self.hit = hit
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
        self.path = ""  # the read plan's label: pe | de | split
        self.de_hit = 0  # hit tokens read through the DE node
        self.computed = 0  # new tokens prefilled so far (chunked prefill)
        self.stage = _ARRIVED
        self.fail = ""
        self.pe_buf = 0.0  # bytes held in the PE node's buffer
        self.de_buf = 0.0  # bytes held in the DE node's buffer
        self.n_chunks = 0
        self.pe_charged = 0  # tokens this request adds to its PE's tok_e (LoadLedger)
        self.de_charged = 0  # tokens it adds to its DE's tok_e
        self._lslot = None  # its place among the request log's live requests (while in flight)

    @property
    def pe_hit(self) -> int:
        """Hit tokens read through the PE node."""
        return self.hit - self.de_hit

    @property
    def split_de(self) -> int:  # the name before core v2
        return self.de_hit

    def __repr__(self) -> str:  # pragma: no cover
        return (f"Request({self.rid}, agent {self.agent.aid}, round {self.round}, stage {self.stage}, "
                f"prompt {self.prompt}, hit {self.hit})")


def new_request(rid: int, agent, rnd: int, prompt: int, hit: int, gen: int, arrival: float) -> Request:
    """``Request(...)`` as the lifecycle makes one per round: in the compiled core a C call with
    C arguments (no argument tuple, nothing boxed and parsed again)."""
    r = Request.__new__(Request)
    r._init(rid, agent, rnd, prompt, hit, gen, arrival)
    return r


class Agent:
    """An agent replays one trajectory, a round at a time; ``stored`` counts the tokens of its
    context whose Full Blocks are in storage (only those can hit)."""

    __slots__ = ("aid", "traj", "n_rounds", "next_round", "stored", "persist_pending",
                 "persist_waiters", "t_start", "t_end", "failed", "n_done", "_prompt", "_hit", "_gen",
                 "_think")

    def __init__(self, aid: int, traj):
        self.aid = aid
        self.traj = traj
        self.n_rounds = traj.n_rounds  # (read once per round: a trajectory is not changed in a run)
        # The per-round columns the lifecycle reads each round (typed views in the compiled core:
        # a round's numbers are C array reads, not numpy scalars).
        self._prompt = _col(traj.prompt, np.int64)
        self._hit = _col(traj.hit, np.int64)
        self._gen = _col(traj.gen, np.int64)
        self._think = _col(traj.think_s, np.float64)
        self.next_round = 0
        self.stored = 0
        self.persist_pending = 0
        self.persist_waiters: list = []
        self.t_start = NAN
        self.t_end = NAN
        self.failed = False
        self.n_done = 0
