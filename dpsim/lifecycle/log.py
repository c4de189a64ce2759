# cython: boundscheck=False, wraparound=False
"""Finished requests, stored by column.

A ledger book rather than a filing cabinet: when a request ends, its numbers are written as
one line -- its integers into one typed page and its times into another, row after row -- and
the Python object is dropped, so memory grows by ~200 bytes per request instead of a whole
object graph.  A page holds :data:`PAGE_ROWS` rows (NumPy buffers written through
memoryviews: C stores in the compiled build, no tuple and no boxing per request); a full page is
kept and a fresh one begun.  Requests still in flight stay objects (``live``) until they end.
:meth:`columns` gives NumPy arrays in request-id order.
"""
from __future__ import annotations

import numpy as np

from .stage import Stage

PATHS = ("", "pe", "de", "split")
_PATH_CODE = {p: i for i, p in enumerate(PATHS)}
STATUS = ("done", "failed", "unfinished")
_DONE, _FAILED = Stage.DONE, Stage.FAILED

INT_COLS = ("rid", "agent", "round", "prompt", "hit", "new", "gen", "split_de_tokens", "pe", "de",
            "n_chunks")
TIME_COLS = (("arrival_s", "arrival"), ("sched_s", "t_sched"), ("alloc_s", "t_alloc"),
             ("read_start_s", "t_read0"), ("read_end_s", "t_read1"), ("prefill_start_s", "t_pf0"),
             ("first_token_s", "t_first"), ("de_h2d_end_s", "t_h2d"), ("second_token_s", "t_second"),
             ("end_s", "t_end"))


PAGE_ROWS = 16384  # rows per page (a page: ~2.8 MB; the last one is trimmed when read)
_NI, _NT = len(INT_COLS), len(TIME_COLS)
assert (_NI, _NT) == (11, 10), "RequestLog._write writes 11 ints and 10 times per row"


def _rid(r) -> int:
    return r.rid


class RequestLog:
    def __init__(self) -> None:
        # The requests in flight, each in a slot (``req._lslot``) of ``_live`` (None: free), the
        # free slots a stack of int objects made once each: issuing and finishing a request
        # hashes nothing and boxes nothing (a rid-keyed dict did both, on a table too large to
        # stay in cache at scale).  :attr:`live` is the rid -> Request view.
        self._live: list = []
        self._free: list = []
        self._nlive = 0
        self.fail_reason: dict = {}  # rid -> reason (failed requests only)
        self._pages: list = []  # full pages: (ints, times, path, status) arrays
        self._n = 0  # rows written
        self._k = 0  # rows in the current page
        self._new_page()

    def _new_page(self) -> None:
        """Begin a page: row-major buffers (ints: _NI per row, times: _NT per row, a path and a
        status code per row), written through memoryviews ``_iv``/``_tv``/``_pv``/``_sv``
        until full.  Allocated, not filled: only the rows written are ever read, and zeroing
        (then copying) 2.8 MB per page streamed it through the cache, evicting the state of
        the requests in flight."""
        self._page = (np.empty(_NI * PAGE_ROWS, np.int64), np.empty(_NT * PAGE_ROWS, np.float64),
                      np.empty(PAGE_ROWS, np.int8), np.empty(PAGE_ROWS, np.int8))
        self._iv = memoryview(self._page[0])
        self._tv = memoryview(self._page[1])
        self._pv = memoryview(self._page[2])
        self._sv = memoryview(self._page[3])
        self._k = 0

    def __len__(self) -> int:
        return self._n + self._nlive

    @property
    def live(self) -> dict:
        """rid -> Request still in flight, in rid order."""
        return {r.rid: r for r in sorted([r for r in self._live if r is not None], key=_rid)}

    def issued(self, req) -> None:
        if req._lslot is not None:
            raise ValueError(f"request {req.rid} issued twice (it is already in flight)")
        free = self._free
        if free:
            s = free.pop()
            self._live[s] = req
        else:
            s = len(self._live)
            self._live.append(req)
        req._lslot = s
        self._nlive += 1

    def finished(self, req) -> None:
        """Write ``req`` (done or failed) as a row and forget the object."""
        s = req._lslot
        if s is None:
            raise ValueError(f"request {req.rid} finished but not in flight (never issued, or finished twice)")
        self._live[s] = None
        self._free.append(s)
        req._lslot = None
        self._nlive -= 1
        self._write(req)

    def _write(self, r) -> None:
        path = r.path
        k = self._k
        if k == PAGE_ROWS:
            self._pages.append(self._page)
            self._new_page()
            k = 0
        # One row, in the order of INT_COLS / TIME_COLS: the hot path's only writes.
        i = k * 11  # _NI
        self._iv[i] = r.rid
        self._iv[i + 1] = r.agent.aid
        self._iv[i + 2] = r.round
        self._iv[i + 3] = r.prompt
        self._iv[i + 4] = r.hit
        self._iv[i + 5] = r.new
        self._iv[i + 6] = r.gen
        self._iv[i + 7] = r.de_hit if path == "split" else 0
        self._iv[i + 8] = r.pe.idx if r.pe is not None else -1
        self._iv[i + 9] = r.de.idx if r.de is not None else -1
        self._iv[i + 10] = r.n_chunks
        i = k * 10  # _NT
        self._tv[i] = r.arrival
        self._tv[i + 1] = r.t_sched
        self._tv[i + 2] = r.t_alloc
        self._tv[i + 3] = r.t_read0
        self._tv[i + 4] = r.t_read1
        self._tv[i + 5] = r.t_pf0
        self._tv[i + 6] = r.t_first
        self._tv[i + 7] = r.t_h2d
        self._tv[i + 8] = r.t_second
        self._tv[i + 9] = r.t_end
        self._pv[k] = _PATH_CODE[path]
        st = r.stage
        if st is _DONE:
            self._sv[k] = 0
        elif st is _FAILED:
            self._sv[k] = 1
            self.fail_reason[r.rid] = r.fail
        else:
            self._sv[k] = 2
        self._k = k + 1
        self._n += 1

    def _arrays(self) -> tuple:
        """The rows written so far as NumPy arrays (ints (n, _NI), times (n, _NT), path, status)."""
        pages = self._pages + [tuple(a[:len(a) * self._k // PAGE_ROWS] for a in self._page)]
        return (np.concatenate([np.frombuffer(p[0], dtype=np.int64) for p in pages]).reshape(-1, _NI),
                np.concatenate([np.frombuffer(p[1], dtype=np.float64) for p in pages]).reshape(-1, _NT),
                np.concatenate([np.frombuffer(p[2], dtype=np.int8) for p in pages]),
                np.concatenate([np.frombuffer(p[3], dtype=np.int8) for p in pages]))

    def columns(self) -> dict:
        """Every request (finished rows, then the live ones as unfinished), sorted by rid:
        {column: ndarray}, plus ``path`` and ``status`` as codes into PATHS / STATUS."""
        im, tm, path, status = self._arrays()
        i = {c: im[:, k] for k, c in enumerate(INT_COLS)}
        t = {c: tm[:, k] for k, (c, _a) in enumerate(TIME_COLS)}
        live = self.live
        if live:
            tmp = RequestLog()
            for r in live.values():
                tmp._write(r)
            extra = tmp.columns()
            i = {c: np.concatenate([i[c], extra[c]]) for c in INT_COLS}
            t = {c: np.concatenate([t[c], extra[c]]) for c, _a in TIME_COLS}
            path = np.concatenate([path, extra["path"]])
            status = np.concatenate([status, extra["status"]])
            fail = dict(self.fail_reason)
        else:
            fail = self.fail_reason
        order = np.argsort(i["rid"], kind="stable")
        out = {c: v[order] for c, v in i.items()}
        out.update({c: v[order] for c, v in t.items()})
        out["path"] = path[order]
        out["status"] = status[order]
        out["fail_reason"] = [fail.get(int(r), "") for r in out["rid"]] if fail else [""] * len(order)
        return out

    def records(self, agents, pes, des) -> list:
        """Every request as a read-only record with the Request attribute names (rid, agent,
        round, prompt, hit, new, gen, path, pe, de, t_*, stage, fail): for inspection and tests."""
        c = self.columns()
        out = []
        for k in range(len(c["rid"])):
            rec = RequestRecord()
            for col, v in c.items():
                if col in _REC_NAMES:
                    setattr(rec, _REC_NAMES[col], v[k])
            rec.agent = agents[int(c["agent"][k])]
            rec.pe = pes[int(c["pe"][k])] if c["pe"][k] >= 0 else None
            rec.de = des[int(c["de"][k])] if c["de"][k] >= 0 else None
            rec.path = PATHS[int(c["path"][k])]
            rec.stage = STATUS[int(c["status"][k])]
            for name in ("rid", "round", "prompt", "hit", "new", "gen", "n_chunks", "de_hit"):
                setattr(rec, name, int(getattr(rec, name)))
            for _col, a in TIME_COLS:
                setattr(rec, a, float(getattr(rec, a)))
            out.append(rec)
        return out


_REC_NAMES = {"rid": "rid", "round": "round", "prompt": "prompt", "hit": "hit", "new": "new",
              "gen": "gen", "split_de_tokens": "de_hit", "n_chunks": "n_chunks", "fail_reason": "fail"}
_REC_NAMES.update({c: a for c, a in TIME_COLS})


class RequestRecord:
    """A finished request as read back from the log (plain attributes)."""

    def __repr__(self) -> str:  # pragma: no cover
        return f"RequestRecord({self.rid}, {self.stage})"
