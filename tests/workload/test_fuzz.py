"""Fuzzing the readers with random corruptions of real trace files (small ones / first lines).

Each corrupted file must either load completely into valid trajectories (the same result every
time) or raise TraceError -- never another exception type, never a silent partial load of a
record that is known to be bad (those cases must raise)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpsim.workload import TraceError, Trajectory, bundled_path
from dpsim.workload.readers import load, sniff

from .conftest import shared_traces_dir

# Deterministic 40 examples per test by default (CI); DPSIM_FUZZ_EXAMPLES=N explores N random ones.
_N = int(os.environ.get("DPSIM_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(max_examples=_N or 40, deadline=None, derandomize=not _N,
                    suppress_health_check=[HealthCheck.too_slow])

BAD_VALUES = {"negative": -7, "float": 12.5, "string": "lots", "null": None, "list": [1]}


def _base(rel: str, n_lines: int | None = None) -> bytes:
    p = shared_traces_dir() / rel
    if not p.exists():
        pytest.skip(f"real trace {p} not found (set DPSIM_SHARED_TRACES)")
    data = p.read_bytes()
    if n_lines:
        data = b"".join(data.splitlines(keepends=True)[:n_lines])
    return data


def _check(data: bytes, fmt: str, suffix: str, must_fail: bool = False):
    """Load with the format given and sniffed: TraceError or consistent, valid trajectories."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"trace{suffix}"
        p.write_bytes(data)
        results = []
        for f in (fmt, None):
            try:
                trajs = load(p, f)
            except TraceError as e:
                assert str(p.name) in str(e) or "workload" in str(e), str(e)
                results.append(None)
                continue
            assert trajs, "a load that succeeds returns trajectories"
            for t in trajs:
                Trajectory.from_rounds(t.id, t.rounds())  # re-validates every invariant
            assert len({t.id for t in trajs}) == len(trajs)
            results.append([(t.id, t.prompt.tolist(), t.gen.tolist(), t.hit.tolist()) for t in trajs])
        if must_fail:
            assert results[0] is None, "a known-bad record was accepted"
        # sniffing the same format must give the same outcome
        try:
            same = sniff(p) == fmt
        except TraceError:
            same = False
        if same:
            assert results[0] == results[1]
        # loading again is deterministic
        if results[0] is not None:
            again = load(p, fmt)
            assert [(t.id, t.prompt.tolist()) for t in again] == [(r[0], r[1]) for r in results[0]]


byte_ops = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.sampled_from(b'{}[],:"-.0129aZ \n')),
    st.tuples(st.just("drop_lines"), st.lists(st.integers(0, 10_000), min_size=1, max_size=5)),
)


def _bytes_op(data: bytes, op) -> bytes:
    if op[0] == "truncate":
        return data[: int(op[1] * len(data))]
    if op[0] == "flip":
        i = min(len(data) - 1, int(op[1] * len(data)))
        return data[:i] + bytes([op[2]]) + data[i + 1:]
    lines = data.splitlines(keepends=True)
    drop = {i % len(lines) for i in op[1]}
    return b"".join(ln for i, ln in enumerate(lines) if i not in drop)


# ---------------------------------------------------------------- WEKA session JSON


def _weka_small() -> dict:
    """trace_0021 (small) plus a trimmed sub-agent taken from trace_0254, if present."""
    doc = json.loads(_base("weka_claude_code/trace_0021.json"))
    p = shared_traces_dir() / "weka_claude_code" / "trace_0254.json"
    if p.exists():
        big = json.loads(p.read_text())
        sub = next(r for r in big["requests"] if r.get("type") == "subagent")
        sub = {**sub, "requests": sub["requests"][:3]}
        doc["requests"] = doc["requests"][:6] + [sub] + doc["requests"][6:]
    return doc


def _weka_requests(doc):
    out = []

    def walk(reqs):
        for r in reqs:
            out.append(r)
            if r.get("type") == "subagent":
                walk(r["requests"])
    walk(doc["requests"])
    return out


WEKA_MUST = {"in": {"negative", "float", "string", "null", "list", "delete"},
             "out": {"negative", "float", "string", "null", "list", "delete"},
             "t": {"negative", "string", "list", "delete"},
             "hash_ids": {"negative", "float", "string", "null", "delete"},
             "think_time": {"negative", "string", "list"},
             "requests": {"negative", "float", "string", "null", "delete"}}


@SETTINGS
@given(idx=st.integers(0, 10_000), key_i=st.integers(0, 100),
       op=st.sampled_from(sorted(BAD_VALUES) + ["delete"]))
def test_fuzz_weka_fields(idx, key_i, op):
    doc = _weka_small()
    reqs = _weka_requests(doc)
    r = reqs[idx % len(reqs)]
    keys = sorted(r)
    key = keys[key_i % len(keys)]
    if op == "delete":
        del r[key]
    else:
        r[key] = BAD_VALUES[op]
    must = key in WEKA_MUST and op in WEKA_MUST[key] and (key != "requests" or r.get("type") == "subagent")
    _check(json.dumps(doc).encode(), "weka", ".json", must_fail=must)


@SETTINGS
@given(op=byte_ops)
def test_fuzz_weka_bytes(op):
    data = json.dumps(_weka_small(), indent=0).encode()  # one key per line, so dropping lines is meaningful
    corrupted = _bytes_op(data, op)
    # any cut of a JSON object shorter than its closing brace is invalid
    must = op[0] == "truncate" and len(corrupted.rstrip()) < len(data.rstrip())
    _check(corrupted, "weka", ".json", must_fail=must)


# ---------------------------------------------------------------- JSONL: Mooncake and canonical


@SETTINGS
@given(line=st.integers(0, 10_000), key=st.sampled_from(["timestamp", "input_length", "output_length", "hash_ids"]),
       op=st.sampled_from(sorted(BAD_VALUES) + ["delete"]))
def test_fuzz_mooncake_fields(line, key, op):
    lines = _base("mooncake/conversation_trace.jsonl", 120).decode().splitlines()
    i = line % len(lines)
    rec = json.loads(lines[i])
    if op == "delete":
        del rec[key]
    else:
        rec[key] = BAD_VALUES[op]
    lines[i] = json.dumps(rec)
    # a fractional timestamp is valid; so is a 1-block hash list for a short request
    must = not (key == "timestamp" and op == "float") and not (key == "hash_ids" and op == "list")
    _check(("\n".join(lines) + "\n").encode(), "mooncake", ".jsonl", must_fail=must)


@SETTINGS
@given(op=byte_ops)
def test_fuzz_mooncake_bytes(op):
    _check(_bytes_op(_base("mooncake/conversation_trace.jsonl", 120), op), "mooncake", ".jsonl")


def _canonical_base() -> list[str]:
    return bundled_path().read_text().splitlines()[:6]


@SETTINGS
@given(line=st.integers(1, 5), rnd=st.integers(0, 10_000), pos=st.integers(0, 4),
       op=st.sampled_from(sorted(BAD_VALUES) + ["delete"]))
def test_fuzz_canonical_fields(line, rnd, pos, op):
    lines = _canonical_base()
    rec = json.loads(lines[line])
    r = rec["rounds"][rnd % len(rec["rounds"])]
    pos = pos % len(r)
    if op == "delete":
        del r[pos]
    else:
        r[pos] = BAD_VALUES[op]
    lines[line] = json.dumps(rec)
    must = not (op == "float" and pos == 2)  # a fractional think time is valid
    _check(("\n".join(lines) + "\n").encode(), "canonical", ".jsonl", must_fail=must)


@SETTINGS
@given(line=st.integers(0, 5), key=st.sampled_from(["id", "rounds", "format", "version"]))
def test_fuzz_canonical_delete_key(line, key):
    lines = _canonical_base()
    rec = json.loads(lines[line])
    if key not in rec:
        return
    del rec[key]
    lines[line] = json.dumps(rec)
    _check(("\n".join(lines) + "\n").encode(), "canonical", ".jsonl", must_fail=True)


@SETTINGS
@given(op=byte_ops)
def test_fuzz_canonical_bytes(op):
    data = ("\n".join(_canonical_base()) + "\n").encode()
    _check(_bytes_op(data, op), "canonical", ".jsonl")


# ---------------------------------------------------------------- CSV: WEKA derived and Azure

CSV_BAD = {"negative": "-3", "float": "2.5", "string": "abc", "empty": ""}


@SETTINGS
@given(row=st.integers(1, 10_000), col=st.integers(0, 14), op=st.sampled_from(sorted(CSV_BAD)))
def test_fuzz_weka_csv_cells(row, col, op):
    lines = _base("weka_claude_code/derived_all_requests.csv", 150).decode().splitlines()
    header = lines[0].split(",")
    i = 1 + (row - 1) % (len(lines) - 1)
    cells = lines[i].split(",")
    col %= len(cells)
    cells[col] = CSV_BAD[op]
    lines[i] = ",".join(cells)
    name = header[col]
    must = name in ("input_tokens", "output_tokens", "hash_blocks", "prefix_hit_tokens", "turn") \
        or (name == "t_s" and op != "float") or (name == "session_id" and op == "empty") \
        or (name in ("think_time_s", "api_time_s") and op in ("negative", "string"))
    _check(("\n".join(lines) + "\n").encode(), "weka_csv", ".csv", must_fail=must)


@SETTINGS
@given(row=st.integers(1, 10_000), col=st.integers(0, 2), op=st.sampled_from(sorted(CSV_BAD)))
def test_fuzz_azure_cells(row, col, op):
    lines = _base("azure_llm_2023/AzureLLMInferenceTrace_code.csv", 150).decode().splitlines()
    i = 1 + (row - 1) % (len(lines) - 1)
    cells = lines[i].split(",")
    cells[col] = CSV_BAD[op]
    lines[i] = ",".join(cells)
    _check(("\n".join(lines) + "\n").encode(), "azure", ".csv", must_fail=True)


@SETTINGS
@given(op=byte_ops, which=st.sampled_from(["weka_csv", "azure"]))
def test_fuzz_csv_bytes(op, which):
    rel = {"weka_csv": "weka_claude_code/derived_all_requests.csv",
           "azure": "azure_llm_2023/AzureLLMInferenceTrace_code.csv"}[which]
    _check(_bytes_op(_base(rel, 150), op), which, ".csv")


def test_fuzz_baseline_files_load():
    """The uncorrupted bases load, so the corruption tests above really test corruption."""
    _check(json.dumps(_weka_small()).encode(), "weka", ".json")
    _check(_base("mooncake/conversation_trace.jsonl", 120), "mooncake", ".jsonl")
    _check(("\n".join(_canonical_base()) + "\n").encode(), "canonical", ".jsonl")
    _check(_base("weka_claude_code/derived_all_requests.csv", 150), "weka_csv", ".csv")
    _check(_base("azure_llm_2023/AzureLLMInferenceTrace_code.csv", 150), "azure", ".csv")
