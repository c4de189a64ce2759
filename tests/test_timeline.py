"""The Chrome/Perfetto timeline of the default scenario: valid trace-event JSON whose spans match
the request records."""
import json

import pandas as pd
import pytest

from dpsim.runner import run

from helpers import make_cfg

PH = {"X", "C", "M", "b", "e", "i", "B", "E"}


@pytest.fixture(scope="module")
def timeline(tmp_path_factory):
    out = tmp_path_factory.mktemp("tl")
    cfg = make_cfg("output.timeline=true", "output.timeline_max_agents=16", "workload.agents=16")
    summ, sim = run(cfg, out_dir=out)
    return json.loads((out / "timeline.json").read_text()), pd.read_parquet(out / "requests.parquet"), sim


def test_trace_event_schema(timeline):
    doc, _req, _sim = timeline
    assert isinstance(doc["traceEvents"], list) and doc["traceEvents"]
    for e in doc["traceEvents"]:
        assert e["ph"] in PH
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        assert isinstance(e["name"], str)
        if e["ph"] != "M":
            assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
        if e["ph"] == "X":
            assert isinstance(e["dur"], (int, float)) and e["dur"] >= 0
        if e["ph"] == "C":
            assert all(isinstance(v, (int, float)) for v in e["args"].values())
    json.dumps(doc)  # round-trips


def test_spans_match_request_records(timeline):
    doc, req, sim = timeline
    spans = {}
    for e in doc["traceEvents"]:
        if e["ph"] == "X" and e.get("cat") == "request":
            spans[(e["args"]["rid"], e["name"])] = (e["ts"] / 1e6, (e["ts"] + e["dur"]) / 1e6)
    done = req[req.status == "done"]
    assert len(done) and spans
    for r in done.itertuples():
        a, b = spans[(r.rid, "read")]
        assert a == pytest.approx(r.read_start_s, abs=1e-9) and b == pytest.approx(r.read_end_s, abs=1e-9)
        a, b = spans[(r.rid, "prefill")]
        assert b == pytest.approx(r.first_token_s, abs=1e-9)
        a, b = spans[(r.rid, "decode")]
        assert b == pytest.approx(r.end_s, abs=1e-9)
    forwards = [e for e in doc["traceEvents"] if e["ph"] == "X" and e.get("cat") == "prefill"]
    assert len(forwards) == sum(e.batches for e in sim.pes)
    assert sum(e["args"]["new_tokens"] for e in forwards) == int(done.new.sum())
