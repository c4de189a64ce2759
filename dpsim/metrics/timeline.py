"""Chrome / Perfetto trace-event export (``output.timeline=true`` writes ``timeline.json``).

Tracks:
* ``prefill engines``: one thread per PE, a complete event ("X") per forward pass;
* ``decode engines``: a counter per DE with its batch size (sequences) over time;
* ``links``: counters of every sampled SNIC / CNIC / DRAM series in GB/s;
* ``agents``: one thread per agent (up to ``output.timeline_max_agents``), the phases of each of
  its requests as complete events: schedule+allocate, read, prefill (queue + compute),
  KV to decode (HBM wait + H2D), decode.
Times are microseconds of simulated time.  Open in https://ui.perfetto.dev or chrome://tracing.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

PHASES = (("schedule+alloc", "arrival", "t_read0"), ("read", "t_read0", "t_read1"),
          ("prefill", "t_read1", "t_first"), ("kv to decode", "t_first", "t_h2d"),
          ("decode", "t_h2d", "t_end"))

US = 1e6


def _ok(*xs) -> bool:
    return all(isinstance(x, float) and math.isfinite(x) or isinstance(x, int) for x in xs)


def events(sim, max_agents: int = 256) -> list[dict]:
    ev: list[dict] = []
    meta = lambda pid, name: {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}}
    ev += [meta(1, "prefill engines"), meta(2, "decode engines"), meta(3, "links"), meta(4, "agents")]
    for e in sim.pes:
        ev.append({"ph": "M", "name": "thread_name", "pid": 1, "tid": e.idx, "args": {"name": e.name}})
        for (t0, t1, n, tok) in e.batch_log:
            ev.append({"ph": "X", "name": f"forward ({n} req)", "cat": "prefill", "pid": 1, "tid": e.idx,
                       "ts": t0 * US, "dur": (t1 - t0) * US, "args": {"requests": n, "new_tokens": tok}})
    for e in sim.des:
        for (t, n) in e.size_log:
            ev.append({"ph": "C", "name": e.name, "pid": 2, "tid": 0, "ts": t * US, "args": {"sequences": n}})
    m = sim.metrics
    prev = None
    for t, row in zip(m.times, m.rows):
        if prev is not None and t > prev[0]:
            dt = t - prev[0]
            for c, b1, b0 in zip(m.columns, row, prev[1]):
                ev.append({"ph": "C", "name": c, "pid": 3, "tid": 0, "ts": prev[0] * US,
                           "args": {"GB/s": (b1 - b0) / dt / 1e9}})
        prev = (t, row)
    agents = set(range(min(max_agents, len(sim.agents))))
    for a in agents:
        ev.append({"ph": "M", "name": "thread_name", "pid": 4, "tid": a, "args": {"name": f"agent {a}"}})
    for r in sim.requests:
        aid = r.agent.aid
        if aid not in agents:
            continue
        for name, a, b in PHASES:
            t0, t1 = getattr(r, a), getattr(r, b)
            if _ok(t0, t1) and t1 >= t0:
                ev.append({"ph": "X", "name": name, "cat": "request", "pid": 4, "tid": aid, "ts": t0 * US,
                           "dur": (t1 - t0) * US, "args": {"rid": r.rid, "round": r.round, "path": r.path}})
    return ev


def write_timeline(path: Path, sim, max_agents: int = 256) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"traceEvents": events(sim, max_agents), "displayTimeUnit": "ms",
                   "otherData": {"generator": "dpsim", "system": sim.sys["name"]}}, f, separators=(",", ":"))
    os.replace(tmp, path)
