"""Canonical trajectory format (see traces/FORMAT.md).

A trajectory is an ordered list of rounds.  Round i of an agent:

* ``append``  -- tokens appended to the context before the request (tool output, user text);
* ``gen``     -- tokens the model generates (forced to exactly this many, §S8);
* ``think_s`` -- seconds between the previous round's last token and this request's arrival;
* ``prompt``  -- optional: total prompt tokens.  Default: previous context + ``append``
  (context = previous prompt + previous gen).  Given explicitly when a real trace shrinks
  its context (compaction);
* ``hit``     -- optional: prompt tokens whose KV is already in storage.  Default: the previous
  context (``prompt - append``) -- §S8 "hit = the previous rounds' tokens".

The file is JSON Lines: a header object, then one object per trajectory::

    {"format": "dpsim-trajectories", "version": 1, "source": "...", "licence": "..."}
    {"id": "t0", "rounds": [[append, gen, think_s], [append, gen, think_s, prompt, hit], ...]}

Rounds are arrays (3 or 5 numbers) to keep files small.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

FORMAT_NAME = "dpsim-trajectories"
FORMAT_VERSION = 1


class TraceError(ValueError):
    """A trace file or trajectory is malformed.  The message names file, record and field."""


@dataclass(frozen=True)
class Trajectory:
    """One agent's rounds, as numpy int/float arrays (compact, fast to replay)."""

    id: str
    append: np.ndarray  # int64, tokens appended per round
    gen: np.ndarray  # int64, tokens generated per round
    think_s: np.ndarray  # float64
    prompt: np.ndarray  # int64, total prompt tokens per round
    hit: np.ndarray  # int64, prompt tokens already in storage per round
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def n_rounds(self) -> int:
        return int(self.append.shape[0])

    @property
    def total_tokens(self) -> int:
        """Final context length: last prompt + last generation."""
        return int(self.prompt[-1] + self.gen[-1]) if self.n_rounds else 0

    @staticmethod
    def from_rounds(tid: str, rounds: Sequence[Sequence[float]], *, where: str = "") -> "Trajectory":
        """Build from ``[append, gen, think_s(, prompt, hit)]`` rows, validating every field."""
        where = where or f"trajectory {tid!r}"
        n = len(rounds)
        if n == 0:
            raise TraceError(f"{where}: field 'rounds' is empty; a trajectory needs at least one round")
        append = np.empty(n, np.int64)
        gen = np.empty(n, np.int64)
        think = np.empty(n, np.float64)
        prompt = np.empty(n, np.int64)
        hit = np.empty(n, np.int64)
        ctx = 0
        for i, r in enumerate(rounds):
            if not isinstance(r, (list, tuple)) or len(r) not in (3, 5):
                raise TraceError(f"{where}, round {i}: expected [append, gen, think_s] or "
                                 f"[append, gen, think_s, prompt, hit], got {r!r}")
            a = _int(r[0], f"{where}, round {i}, field 'append'")
            g = _int(r[1], f"{where}, round {i}, field 'gen'")
            t = _num(r[2], f"{where}, round {i}, field 'think_s'")
            if len(r) == 5:
                p = _int(r[3], f"{where}, round {i}, field 'prompt'")
                h = _int(r[4], f"{where}, round {i}, field 'hit'")
            else:
                p = ctx + a
                h = ctx
            if g < 1:
                raise TraceError(f"{where}, round {i}, field 'gen': must be >= 1 (got {g})")
            if p < 1:
                raise TraceError(f"{where}, round {i}, field 'prompt': must be >= 1 (got {p})")
            if h > p:
                raise TraceError(f"{where}, round {i}, field 'hit': {h} exceeds prompt {p}")
            if h > ctx:
                raise TraceError(f"{where}, round {i}, field 'hit': {h} exceeds the tokens stored "
                                 f"by earlier rounds ({ctx})")
            append[i], gen[i], think[i], prompt[i], hit[i] = a, g, t, p, h
            ctx = p + g
        return Trajectory(tid, append, gen, think, prompt, hit)

    def rounds(self) -> list[list]:
        """Rows for writing; 3-field rows where prompt/hit follow the default rule."""
        out = []
        ctx = 0
        for i in range(self.n_rounds):
            a, g, t = int(self.append[i]), int(self.gen[i]), float(self.think_s[i])
            p, h = int(self.prompt[i]), int(self.hit[i])
            if p == ctx + a and h == ctx:
                out.append([a, g, _compact(t)])
            else:
                out.append([a, g, _compact(t), p, h])
            ctx = p + g
        return out


def _compact(t: float):
    return int(t) if float(t).is_integer() else round(t, 6)


_MAX_INT = 2**40  # token counts beyond this are corrupt data (and would overflow int64 sums)


def _int(v, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or isinstance(v, float) and not v.is_integer():
        raise TraceError(f"{where}: must be a non-negative integer (got {v!r})")
    v = int(v)
    if v < 0:
        raise TraceError(f"{where}: must be a non-negative integer (got {v})")
    if v > _MAX_INT:
        raise TraceError(f"{where}: implausibly large ({v} > {_MAX_INT})")
    return v


def _num(v, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise TraceError(f"{where}: must be a finite number >= 0 (got {v!r})")
    return float(v)


def write_trajectories(path: str | Path, trajs: Iterable[Trajectory], *, source: str = "",
                       licence: str = "", extra: dict | None = None) -> Path:
    """Write the canonical JSONL file atomically (temp file + rename: nothing half-written)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "source": source, "licence": licence}
    if extra:
        header.update(extra)
    with open(tmp, "w") as f:
        f.write(json.dumps(header) + "\n")
        for t in trajs:
            rec = {"id": t.id, "rounds": t.rounds()}
            if t.meta:
                rec["meta"] = t.meta
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    tmp.replace(path)
    return path


def read_trajectories(path: str | Path) -> list[Trajectory]:
    """Read a canonical file; any defect raises one TraceError naming file, line and field."""
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: file not found")
    out: list[Trajectory] = []
    seen: set[str] = set()
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except UnicodeDecodeError as e:
        raise TraceError(f"{path}: not UTF-8 text (byte {e.start}); expected JSON Lines") from None
    except IsADirectoryError:
        raise TraceError(f"{path}: is a directory; expected a JSON Lines file") from None
    if not lines:
        raise TraceError(f"{path}: empty file; expected a header line then one trajectory per line")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError as e:
        raise TraceError(f"{path}:1: header is not valid JSON ({e.msg})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise TraceError(f"{path}:1: field 'format' must be {FORMAT_NAME!r}; "
                         f"convert other traces with `dpsim trace convert`")
    if header.get("version") != FORMAT_VERSION:
        raise TraceError(f"{path}:1: field 'version' must be {FORMAT_VERSION} (got {header.get('version')!r})")
    for ln, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{path}:{ln}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise TraceError(f"{where}: not valid JSON ({e.msg}); the file may be truncated") from None
        if not isinstance(rec, dict):
            raise TraceError(f"{where}: expected an object with fields 'id' and 'rounds'")
        for k in ("id", "rounds"):
            if k not in rec:
                raise TraceError(f"{where}: missing field {k!r}")
        tid = str(rec["id"])
        if tid in seen:
            raise TraceError(f"{where}: field 'id': duplicate trajectory id {tid!r}")
        seen.add(tid)
        if not isinstance(rec["rounds"], list):
            raise TraceError(f"{where}: field 'rounds' must be a list")
        t = Trajectory.from_rounds(tid, rec["rounds"], where=f"{where} (id {tid!r})")
        if "meta" in rec and isinstance(rec["meta"], dict):
            t = Trajectory(t.id, t.append, t.gen, t.think_s, t.prompt, t.hit, meta=rec["meta"])
        out.append(t)
    if not out:
        raise TraceError(f"{path}: no trajectories after the header")
    return out
