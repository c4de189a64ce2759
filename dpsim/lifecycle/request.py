"""A request (one round of one agent) and the agent that issues its rounds."""
from __future__ import annotations

import math

import numpy as np

from .stage import Stage

NAN = math.nan
_ARRIVED = Stage.ARRIVED  # (a module global: much cheaper to read than an enum class attribute)


#: Numbers per round in a :func:`round_table`: prompt, hit, gen (tokens), think_s (seconds).
ROUND_COLS = 4
_EXACT = 2.0 ** 53  # integers below this are exact as float64


def round_table(traj) -> np.ndarray:
    """The per-round numbers the lifecycle reads, side by side in one float64 array:
    ``[prompt, hit, gen, think_s]`` of round 0, then of round 1, and so on.

    Like a ledger with one row per round instead of four separate books: two rounds share a
    cache line, where four columns put every round on four lines -- and with tens of thousands
    of agents in flight, each line a round reads is a cache miss.  Token counts go through
    ``int64`` first (the same truncation as reading an int column) and must stay below 2**53,
    where float64 holds every integer exactly."""
    n = int(traj.n_rounds)
    t = np.empty(ROUND_COLS * n, np.float64)
    for k, (name, col) in enumerate((("prompt", traj.prompt), ("hit", traj.hit), ("gen", traj.gen))):
        c = np.ascontiguousarray(col, dtype=np.int64)
        if n and int(np.abs(c).max()) >= _EXACT:
            raise ValueError(f"trajectory {getattr(traj, 'id', '?')!r}: field {name!r} holds a token "
                             f"count of 2**53 or more; token counts must be below 2**53")
        t[k::ROUND_COLS] = c
    t[3::ROUND_COLS] = np.ascontiguousarray(traj.think_s, dtype=np.float64)
    return t


def make_agents(trajs) -> list:
    """One :class:`Agent` per trajectory, ``aid`` its position; agents given the same
    trajectory object share its :func:`round_table` (the built-in workloads make one trajectory
    per agent, so there each table is its agent's own: 32 bytes per round)."""
    tables: dict = {}
    out = []
    for i, t in enumerate(trajs):
        tab = tables.get(id(t))
        if tab is None:
            tab = tables[id(t)] = round_table(t)
        out.append(Agent(i, t, tab))
    return out


class Request:
    """One round of an agent, with its timestamps through §S4 (NaN until reached).

    ``hit`` is the number of prompt tokens whose KV is read from storage; ``de_hit`` of them
    are read through the decode node (the read plan), the rest through the prefill node.
    """

    __slots__ = (
        "rid", "agent", "round", "prompt", "hit", "gen", "new", "arrival",
        "t_sched", "t_alloc", "t_read0", "t_read1", "t_pf0", "t_first", "t_h2d", "t_second",
        "t_end", "pe", "de", "path", "de_hit", "computed", "stage", "fail", "pe_buf",
        "de_buf", "n_chunks", "pe_charged", "de_charged", "dec_base", "_lslot",
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
        self.dec_base = 0  # in a decode batch: its attended context minus the batch's step count
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
    context whose Full Blocks are in storage (only those can hit).

    ``rounds`` is the trajectory's :func:`round_table` (made here when not given; agents that
    replay the same trajectory may share one, see :func:`make_agents`)."""

    __slots__ = ("aid", "traj", "n_rounds", "next_round", "stored", "persist_pending",
                 "persist_waiters", "t_start", "t_end", "failed", "n_done", "_rounds")

    def __init__(self, aid: int, traj, rounds=None):
        self.aid = aid
        self.traj = traj
        self.n_rounds = traj.n_rounds  # (read once per round: a trajectory is not changed in a run)
        # The per-round numbers the lifecycle reads each round, side by side (a typed view in
        # the compiled core: a round's numbers are C array reads, not numpy scalars).
        self._rounds = round_table(traj) if rounds is None else rounds
        if self._rounds.shape[0] != ROUND_COLS * self.n_rounds:
            raise ValueError(f"agent {aid}: a round table of {self._rounds.shape[0]} numbers for "
                             f"{self.n_rounds} rounds (expected {ROUND_COLS} per round)")
        self.next_round = 0
        self.stored = 0
        self.persist_pending = 0
        # Requests waiting for the agent's previous context to be persisted (None when none:
        # the check on every persist then reads no second object)
        self.persist_waiters: list | None = None
        self.t_start = NAN
        self.t_end = NAN
        self.failed = False
        self.n_done = 0

    def wait_for_persist(self, req) -> None:
        """``req`` reads from storage once this agent's pending persists are done (the
        lifecycle's ``_persisted`` takes the waiters)."""
        if self.persist_waiters is None:
            self.persist_waiters = [req]
        else:
            self.persist_waiters.append(req)
