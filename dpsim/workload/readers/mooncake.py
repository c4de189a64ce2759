"""Mooncake FAST'25 traces (github.com/kvcache-ai/Mooncake, ``FAST25-release/traces/*.jsonl``).

One request per line: ``{"timestamp": ms, "input_length", "output_length", "hash_ids"}`` where
``hash_ids`` are remapped prefix-block hashes of 512 tokens in one global namespace.  There are no
session ids, so sessions are inferred from prefix chains (rule below); each inferred session is a
trajectory ``s<k>`` (k in order of the session's first request).

Session rule: requests are taken in timestamp order (stable).  A request *continues* an earlier
request E when E's full blocks (its first ``floor(input_length/512)`` hashes, at least one) are a
prefix of the request's own hashes and E has not been continued yet; among such E the one with the
most full blocks wins (the latest on ties).  Otherwise the request starts a new session.

``hit`` = ``min(512 k, input_length)`` with k the longest prefix of the request's hashes stored by
earlier requests of the *same inferred session* (cross-session reuse is not a hit: §S8 hits are
within a trajectory).  ``think_s`` = timestamp gap to the predecessor in seconds (the trace has no
completion times, so the gap includes the predecessor's service time); 0 for a first request.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..trajectory import TraceError, Trajectory
from ._common import PrefixCache, as_num, build_trajectory, check_hashes, req_int

FORMAT = "mooncake"
ALIASES = ()
ORDER = 40             # place in readers.FORMATS
SNIFF_PRIORITY = 30    # readers.sniff tries lower values first
BLOCK = 512


def sniff(path: Path, head: str) -> bool:
    first = head.lstrip().split("\n", 1)[0]
    return first.startswith("{") and '"input_length"' in first and '"hash_ids"' in first


def read(path: str | Path, block: int = BLOCK) -> list[Trajectory]:
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: file not found")
    recs = []
    with open(path, errors="replace") as f:
        for ln, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}: line {ln}"
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise TraceError(f"{where}: not valid JSON ({e.msg}); the file may be truncated") from None
            if not isinstance(r, dict):
                raise TraceError(f"{where}: expected an object with input_length, output_length, "
                                 f"hash_ids, timestamp")
            n_in = req_int(r, "input_length", where, minimum=1)
            n_out = req_int(r, "output_length", where, minimum=0)
            if "timestamp" not in r:
                raise TraceError(f"{where}: missing field 'timestamp'")
            ts = as_num(r["timestamp"], f"{where}, field 'timestamp'")
            if "hash_ids" not in r:
                raise TraceError(f"{where}: missing field 'hash_ids'")
            h = check_hashes(r["hash_ids"], n_in, block, where)
            recs.append((ts, n_in, n_out, h, ln))
    if not recs:
        raise TraceError(f"{path}: no requests (empty trace)")
    recs.sort(key=lambda x: x[0])  # stable: file order on equal timestamps

    open_ends: dict[tuple, list[int]] = {}  # (n_full, last full hash) -> requests not yet continued
    session_of: list[int] = []
    sessions: list[dict] = []
    for i, (ts, n_in, n_out, h, ln) in enumerate(recs):
        pred = -1
        for k in range(len(h), 0, -1):
            cands = open_ends.get((k, h[k - 1]))
            if not cands:
                continue
            for j in reversed(cands):
                if list(recs[j][3][:k]) == list(h[:k]):
                    pred = j
                    break
            if pred >= 0:
                cands.remove(pred)
                break
        if pred < 0:
            sid = len(sessions)
            sessions.append({"idx": [], "cache": PrefixCache(), "t0": ts})
        else:
            sid = session_of[pred]
        session_of.append(sid)
        s = sessions[sid]
        s["idx"].append(i)
        s.setdefault("hits", []).append(min(block * s["cache"].lookup_and_store(h), n_in))
        nf = min(n_in // block, len(h))  # full blocks (a hash list may be short within the slack)
        if nf >= 1:
            open_ends.setdefault((nf, h[nf - 1]), []).append(i)

    out = []
    for k, s in enumerate(sessions):
        idx = s["idx"]
        ts = [recs[i][0] for i in idx]
        thinks = [0.0] + [(b - a) / 1000.0 for a, b in zip(ts, ts[1:])]
        out.append(build_trajectory(
            f"s{k}", [recs[i][1] for i in idx], [recs[i][2] for i in idx], thinks, s["hits"],
            meta={"t_s": round(s["t0"] / 1000.0, 3), "line": recs[idx[0]][4]},
            where=f"{path}: session s{k} (line {recs[idx[0]][4]})"))
    return out
