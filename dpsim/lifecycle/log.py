"""Finished requests, stored by column.

A ledger book rather than a filing cabinet: when a request ends, its numbers are written as
one line -- its integers appended to one typed ``array`` and its times to another, row after
row -- and the Python object is dropped, so memory grows by ~200 bytes per request instead of a
whole object graph.  Requests still in flight stay
objects (``live``) until they end.  :meth:`columns` gives NumPy arrays in request-id order.
"""
from __future__ import annotations

from array import array

import numpy as np

from .stage import Stage

PATHS = ("", "pe", "de", "split")
_PATH_CODE = {p: i for i, p in enumerate(PATHS)}
STATUS = ("done", "failed", "unfinished")

INT_COLS = ("rid", "agent", "round", "prompt", "hit", "new", "gen", "split_de_tokens", "pe", "de",
            "n_chunks")
TIME_COLS = (("arrival_s", "arrival"), ("sched_s", "t_sched"), ("alloc_s", "t_alloc"),
             ("read_start_s", "t_read0"), ("read_end_s", "t_read1"), ("prefill_start_s", "t_pf0"),
             ("first_token_s", "t_first"), ("de_h2d_end_s", "t_h2d"), ("second_token_s", "t_second"),
             ("end_s", "t_end"))


class RequestLog:
    def __init__(self) -> None:
        self.live: dict = {}  # rid -> Request still in flight
        self._ints = array("q")  # row-major: len(INT_COLS) values per finished request
        self._times = array("d")  # row-major: len(TIME_COLS) values per finished request
        self._path = array("b")
        self._status = array("b")
        self.fail_reason: dict = {}  # rid -> reason (failed requests only)

    def __len__(self) -> int:
        return len(self._path) + len(self.live)

    def issued(self, req) -> None:
        self.live[req.rid] = req

    def finished(self, req) -> None:
        """Write ``req`` (done or failed) as a row and forget the object."""
        del self.live[req.rid]
        self._write(req)

    def _write(self, r) -> None:
        path = r.path
        # One call per array (the order of INT_COLS / TIME_COLS): the hot path's only writes.
        self._ints.extend((r.rid, r.agent.aid, r.round, r.prompt, r.hit, r.new, r.gen,
                           r.de_hit if path == "split" else 0, r.pe.idx if r.pe is not None else -1,
                           r.de.idx if r.de is not None else -1, r.n_chunks))
        self._times.extend((r.arrival, r.t_sched, r.t_alloc, r.t_read0, r.t_read1, r.t_pf0, r.t_first,
                            r.t_h2d, r.t_second, r.t_end))
        self._path.append(_PATH_CODE[path])
        st = r.stage
        if st == Stage.DONE:
            self._status.append(0)
        elif st == Stage.FAILED:
            self._status.append(1)
            self.fail_reason[r.rid] = r.fail
        else:
            self._status.append(2)

    def columns(self) -> dict:
        """Every request (finished rows, then the live ones as unfinished), sorted by rid:
        {column: ndarray}, plus ``path`` and ``status`` as codes into PATHS / STATUS."""
        ni, nt = len(INT_COLS), len(TIME_COLS)
        im = (np.frombuffer(self._ints, dtype=np.int64) if len(self._ints) else np.zeros(0, np.int64)).reshape(-1, ni)
        tm = (np.frombuffer(self._times, dtype=np.float64) if len(self._times) else np.zeros(0, np.float64)).reshape(-1, nt)
        i = {c: im[:, k] for k, c in enumerate(INT_COLS)}
        t = {c: tm[:, k] for k, (c, _a) in enumerate(TIME_COLS)}
        path = np.frombuffer(self._path, dtype=np.int8) if len(self._path) else np.zeros(0, np.int8)
        status = np.frombuffer(self._status, dtype=np.int8) if len(self._status) else np.zeros(0, np.int8)
        if self.live:
            tmp = RequestLog()
            for r in self.live.values():
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
