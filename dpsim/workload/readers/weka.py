"""WEKA Claude Code session JSON (github.com/callanjfox/kv-cache-tester, ``traces/trace_XXXX.json``).

One JSON object per file: ``id, block_size (64), requests[]``.  A request has ``t`` (seconds from
the session start), ``in``/``out`` (tokens), ``hash_ids`` (64-token chained block hashes of the
whole prompt), ``think_time`` (seconds since the previous response ended; absent on a few
requests) and ``api_time``.  A request of ``type: "subagent"`` nests its own ``requests[]``; each
sub-agent becomes its own trajectory ``<session>/sub_<agent_id>`` with a prefix cache of its own
(``meta.t0`` = its spawn time in the parent's timeline, ``meta.parent`` = the parent's id).

Mapping into the canonical format (see traces/FORMAT.md):

* ``prompt`` = ``in``; ``gen`` = ``out`` (raised to 1 where 0);
* ``hit`` = ``min(block_size * k, in)`` where ``k`` is the length of the longest prefix of the
  request's hashes stored by *earlier requests of the same (sub-)session* -- not "all previous
  tokens": contexts shrink after compaction, and the previous response is only stored once a later
  prompt contains it.  Clamped to the previous context (prompt + gen of the previous round);
* ``think_s`` = ``think_time``; where absent: ``t - t_prev - api_time_prev`` (>= 0), or
  ``t - t_prev`` without ``api_time``; 0 for the first request;
* ``append`` = prompt - previous context when the prompt grows, else the tokens not hit.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..trajectory import TraceError, Trajectory
from ._common import PrefixCache, as_num, build_trajectory, check_hashes, req_int

FORMAT = "weka"
ALIASES = ("weka_json", "claude_code")
ORDER = 20             # place in readers.FORMATS
SNIFF_PRIORITY = 20    # readers.sniff tries lower values first


def sniff(path: Path, head: str) -> bool:
    h = head.lstrip()
    return h.startswith("{") and '"requests"' in head and ('"hash_ids"' in head or '"block_size"' in head)


def read(path: str | Path) -> list[Trajectory]:
    """All (sub-)sessions of one WEKA file, or of every ``*.json`` file of a directory (sorted)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise TraceError(f"{path}: directory holds no *.json WEKA session files")
        out: list[Trajectory] = []
        for f in files:
            out.extend(read_session(f))
        return out
    return read_session(path)


def read_session(path: str | Path) -> list[Trajectory]:
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: file not found")
    text = path.read_text(errors="replace")
    if not text.strip():
        raise TraceError(f"{path}: empty file; expected a WEKA session JSON object")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise TraceError(f"{path}: not valid JSON at line {e.lineno} column {e.colno} ({e.msg}); "
                         f"the file may be truncated") from None
    if not isinstance(doc, dict):
        raise TraceError(f"{path}: expected a JSON object with field 'requests'")
    if "requests" not in doc:
        raise TraceError(f"{path}: missing field 'requests'")
    block = req_int(doc, "block_size", str(path), minimum=1) if "block_size" in doc else 64
    sid = doc.get("id")
    sid = sid if isinstance(sid, str) and sid else path.stem
    out: list[Trajectory] = []
    _session(path, sid, doc["requests"], block, "requests", None, 0.0, {}, out)
    if not out:
        raise TraceError(f"{path}: field 'requests' holds no requests (empty trace)")
    return out


def _session(path: Path, tid: str, reqs, block: int, loc: str, parent: str | None, t0: float,
             extra: dict, out: list) -> None:
    if not isinstance(reqs, list):
        raise TraceError(f"{path}: field {loc!r} must be a list")
    cache = PrefixCache()
    prompts, gens, thinks, hits = [], [], [], []
    subs = []
    prev_t = prev_api = None
    for i, r in enumerate(reqs):
        where = f"{path}: record {loc}[{i}]"
        if not isinstance(r, dict):
            raise TraceError(f"{where}: expected an object, got {type(r).__name__}")
        if r.get("type") == "subagent":
            subs.append((i, r))
            continue
        n_in = req_int(r, "in", where, minimum=1)
        n_out = req_int(r, "out", where, minimum=0)
        if "t" not in r:
            raise TraceError(f"{where}: missing field 't'")
        t = as_num(r["t"], f"{where}, field 't'")
        if "hash_ids" not in r:
            raise TraceError(f"{where}: missing field 'hash_ids'")
        hashes = check_hashes(r["hash_ids"], n_in, block, where)
        api = as_num(r.get("api_time"), f"{where}, field 'api_time'", allow_none=True)
        think = as_num(r.get("think_time"), f"{where}, field 'think_time'", allow_none=True)
        if think is None:
            if prev_t is None:
                think = 0.0
            else:
                think = max(0.0, t - prev_t - (prev_api or 0.0))
        k = cache.lookup_and_store(hashes)
        prompts.append(n_in)
        gens.append(n_out)
        thinks.append(think)
        hits.append(min(block * k, n_in))
        prev_t, prev_api = t, api
    if prompts:
        meta = {"session": tid.split("/")[0], "t0": round(t0, 3)}
        if parent is not None:
            meta["parent"] = parent
        meta.update(extra)
        out.append(build_trajectory(tid, prompts, gens, thinks, hits, meta=meta, where=f"{path}: {loc}"))
    for i, r in subs:
        where = f"{path}: record {loc}[{i}]"
        if "requests" not in r:
            raise TraceError(f"{where}: sub-agent missing field 'requests'")
        if "t" not in r:
            raise TraceError(f"{where}: missing field 't'")
        st = as_num(r["t"], f"{where}, field 't'")
        aid = r.get("agent_id")
        aid = str(aid) if isinstance(aid, (str, int)) and not isinstance(aid, bool) else f"{i}"
        ex = {"subagent_type": r["subagent_type"]} if isinstance(r.get("subagent_type"), str) else {}
        _session(path, f"{tid}/sub_{aid}", r["requests"], block, f"{loc}[{i}].requests", tid,
                 t0 + st, ex, out)
