"""Bad input: each defect gives one TraceError naming the file, the line/record and the field."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dpsim.workload import TraceError, read_trajectories
from dpsim.workload.readers import load
from dpsim.workload.readers._common import HASH_SLACK_BLOCKS


def _weka(tmp_path: Path, requests, name="trace_bad.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps({"id": "trace_bad", "block_size": 64, "requests": requests}))
    return p


def _ok_req(**kw):
    r = {"t": 0, "type": "n", "in": 130, "out": 5, "hash_ids": [1, 2, 3], "think_time": 0.0}
    r.update(kw)
    return r


def _expect(path: Path, *parts: str, fmt=None):
    with pytest.raises(TraceError) as ei:
        load(path, fmt)
    msg = str(ei.value)
    assert path.name in msg, msg
    for p in parts:
        assert p in msg, (p, msg)
    return msg


# ---------------------------------------------------------------- WEKA JSON


def test_weka_truncated_json(tmp_path):
    p = _weka(tmp_path, [_ok_req(), _ok_req(t=3)])
    p.write_text(p.read_text()[:-40])
    _expect(p, "not valid JSON", "truncated")


@pytest.mark.parametrize("value,what", [(-5, "must be an integer"), (12.5, "must be an integer"),
                                        ("many", "must be an integer"), (None, "must be an integer")])
def test_weka_bad_length(tmp_path, value, what):
    p = _weka(tmp_path, [_ok_req(), _ok_req(t=3, out=value)])
    _expect(p, "requests[1]", "'out'", what)


def test_weka_missing_field(tmp_path):
    r = _ok_req(t=3)
    del r["in"]
    p = _weka(tmp_path, [_ok_req(), r])
    _expect(p, "requests[1]", "missing field 'in'")


def test_weka_missing_field_in_subagent(tmp_path):
    sub = {"t": 1, "type": "subagent", "agent_id": "a1", "requests": [_ok_req(), _ok_req(t=2, hash_ids=None)]}
    p = _weka(tmp_path, [_ok_req(), sub])
    _expect(p, "requests[1].requests[1]", "'hash_ids'")


def test_weka_empty_trace(tmp_path):
    _expect(_weka(tmp_path, []), "empty")
    p = tmp_path / "empty.json"
    p.write_text("")
    _expect(p, "empty", fmt="weka")


def test_weka_negative_think_time(tmp_path):
    p = _weka(tmp_path, [_ok_req(), _ok_req(t=3, think_time=-1)])
    _expect(p, "requests[1]", "'think_time'")


def test_weka_hash_list_inconsistent_with_tokens(tmp_path):
    # 130 tokens = ceil(130/64) = 3 blocks; the slack is max(4 blocks, 5%)
    ok = _weka(tmp_path, [_ok_req(hash_ids=list(range(3 + HASH_SLACK_BLOCKS)))], "ok.json")
    assert load(ok)[0].prompt.tolist() == [130]
    bad = _weka(tmp_path, [_ok_req(hash_ids=list(range(3 + HASH_SLACK_BLOCKS + 1)))])
    _expect(bad, "requests[0]", "'hash_ids'", "inconsistent")
    # far too few blocks for a long prompt is a defect too
    bad2 = _weka(tmp_path, [_ok_req(**{"in": 64 * 100, "hash_ids": list(range(50))})], "b2.json")
    _expect(bad2, "'hash_ids'", "inconsistent")


# ---------------------------------------------------------------- canonical


def _canon(tmp_path: Path, lines) -> Path:
    p = tmp_path / "c.jsonl"
    head = {"format": "dpsim-trajectories", "version": 1, "source": "t", "licence": "x"}
    p.write_text("\n".join([json.dumps(head)] + [json.dumps(x) if not isinstance(x, str) else x for x in lines]) + "\n")
    return p


@pytest.mark.parametrize("rounds,field", [([[10, -1, 0]], "'gen'"), ([[10.5, 3, 0]], "'append'"),
                                          ([["10", 3, 0]], "'append'"), ([[10, 3, -2]], "'think_s'"),
                                          ([[10, 3, 0, 10, 11]], "'hit'"),
                                          ([[10, 3, 0], [5, 3, 0, 20, 14]], "'hit'")])
def test_canonical_bad_fields(tmp_path, rounds, field):
    p = _canon(tmp_path, [{"id": "a", "rounds": [[1, 1, 0]]}, {"id": "b", "rounds": rounds}])
    msg = _expect(p, ":3", field)
    assert "'b'" in msg


def test_canonical_truncated_line_missing_key_empty(tmp_path):
    p = _canon(tmp_path, [{"id": "a", "rounds": [[1, 1, 0]]}, '{"id": "b", "rounds": [[1, 1'])
    _expect(p, ":3", "not valid JSON")
    p = _canon(tmp_path, [{"id": "a"}])
    _expect(p, ":2", "missing field 'rounds'")
    p = _canon(tmp_path, [])
    _expect(p, "no trajectories")
    p = _canon(tmp_path, [{"id": "a", "rounds": []}])
    _expect(p, ":2", "'rounds'", "empty")
    p.write_text("")
    with pytest.raises(TraceError, match="empty"):
        read_trajectories(p)


def test_canonical_huge_number_is_an_error_not_an_overflow(tmp_path):
    p = _canon(tmp_path, [{"id": "a", "rounds": [[10 ** 30, 1, 0]]}])
    _expect(p, ":2", "'append'")


# ---------------------------------------------------------------- Mooncake


def _mc(tmp_path, rows, extra_line=None) -> Path:
    p = tmp_path / "mc.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in rows)
    p.write_text(text + (extra_line or ""))
    return p


def _mrow(**kw):
    r = {"timestamp": 0, "input_length": 1000, "output_length": 10, "hash_ids": [1, 2]}
    r.update(kw)
    return r


def test_mooncake_defects(tmp_path):
    _expect(_mc(tmp_path, [_mrow()], '{"timestamp": 5, "input_len'), "line 2", "not valid JSON")
    _expect(_mc(tmp_path, [_mrow(), _mrow(input_length=-3)]), "line 2", "'input_length'")
    _expect(_mc(tmp_path, [_mrow(), _mrow(output_length=2.5)]), "line 2", "'output_length'")
    r = _mrow()
    del r["timestamp"]
    _expect(_mc(tmp_path, [_mrow(), r]), "line 2", "missing field 'timestamp'")
    _expect(_mc(tmp_path, [_mrow(hash_ids=list(range(9)))]), "line 1", "'hash_ids'", "inconsistent")
    p = tmp_path / "mc.jsonl"
    p.write_text("\n\n")
    _expect(p, "empty", fmt="mooncake")


# ---------------------------------------------------------------- CSV readers


AZ_HEAD = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


@pytest.mark.parametrize("row,field", [("2023-11-16 18:17:04.0,-3,8", "ContextTokens"),
                                       ("2023-11-16 18:17:04.0,31.5,8", "ContextTokens"),
                                       ("2023-11-16 18:17:04.0,300,abc", "GeneratedTokens"),
                                       ("2023-11-16 18:17:04.0,300", "GeneratedTokens"),
                                       ("yesterday,300,8", "TIMESTAMP")])
def test_azure_defects(tmp_path, row, field):
    p = tmp_path / "az.csv"
    p.write_text(AZ_HEAD + "2023-11-16 18:17:03.9799600,4808,10\n" + row + "\n")
    _expect(p, "line 3", f"'{field}'")


def test_azure_missing_column_and_empty(tmp_path):
    p = tmp_path / "az.csv"
    p.write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:17:03,4808\n")
    _expect(p, "missing column 'GeneratedTokens'", fmt="azure")
    p.write_text(AZ_HEAD)
    _expect(p, "no data rows", fmt="azure")


WK_HEAD = ("session_id,is_subagent,turn,t_s,think_time_s,api_time_s,input_tokens,output_tokens,"
           "hash_blocks,prefix_hit_blocks,prefix_hit_tokens,uncached_tokens,input_types,stop,model\n")


def test_weka_csv_defects(tmp_path):
    good = "s1,0,0,0.0,0.0,7.3,1000,10,16,0,0,1000,text,tool_use,m\n"
    p = tmp_path / "d.csv"
    p.write_text(WK_HEAD + good + "s1,0,1,19.0,12.0,9.1,-7,296,1136,1112,71168,1594,tool_result,tool_use,m\n")
    _expect(p, "line 3", "'input_tokens'")
    p.write_text(WK_HEAD + good + "s1,0,1,19.0,12.0,9.1,1100,296,40,16,1024,76,tool_result,tool_use,m\n")
    _expect(p, "line 3", "'hash_blocks'", "inconsistent")
    p.write_text(WK_HEAD + good + "s1,0,1,19.0,12.0,9.1,1100,2")
    _expect(p, "line 3")
    p.write_text(WK_HEAD.replace("prefix_hit_tokens,", "x,") + good)
    _expect(p, "missing column 'prefix_hit_tokens'", fmt="weka_csv")


def test_missing_file(tmp_path):
    with pytest.raises(TraceError, match="not found"):
        load(tmp_path / "nope.jsonl")
    with pytest.raises(TraceError, match="not found"):
        load(tmp_path / "nope.jsonl", "mooncake")
