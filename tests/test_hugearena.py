"""dpsim.hugepages: CPython's arenas from huge-page chunks, glibc's malloc restarted onto huge
pages -- where objects live changes, results do not."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dpsim
from dpsim import hugepages

ROOT = Path(__file__).resolve().parent.parent
built = pytest.mark.skipif(not dpsim.HUGE_PAGES, reason=f"huge-page arenas not active: {dpsim.HUGE_PAGES_REASON}")


def _py(code: str, **env) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.pop("GLIBC_TUNABLES", None)
    e.pop("DPSIM_HUGE_PAGES", None)
    e.update(env)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    return subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), env=e, capture_output=True,
                          text=True, timeout=300)


_ARENAS = r'''
import gc, json
import dpsim
from dpsim import _hugearena, hugepages
out = {"installed": _hugearena.installed()}
before = _hugearena.stats()
objs = [(i, [i]) for i in range(200_000)]  # ~30 MB of small objects: dozens of new arenas
mid = _hugearena.stats()
sample = objs[::1000]
out["owned"] = sum(_hugearena.owns(id(o)) for o in sample) / len(sample)
out["owns_static"] = _hugearena.owns(0) or _hugearena.owns(id(None))
out["made"] = (mid["arenas_new"] + mid["arenas_reused"]) - (before["arenas_new"] + before["arenas_reused"])
del objs, sample
gc.collect()
freed = _hugearena.stats()
out["freed"] = freed["arenas_freed"] - mid["arenas_freed"]
objs = [(i, [i]) for i in range(200_000)]
again = _hugearena.stats()
out["reused"] = again["arenas_reused"] - freed["arenas_reused"]
out["more_chunks"] = again["chunks"] - mid["chunks"]
out["same_stats"] = hugepages.stats() == _hugearena.stats()
print(json.dumps(out))
'''


@built
def test_new_objects_live_in_the_arena_chunks_and_freed_arenas_are_reused():
    """In a fresh interpreter (this one's history of frees would blur the counts)."""
    p = _py(_ARENAS)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.splitlines()[-1])
    assert r["installed"] and r["same_stats"] and not r["owns_static"]
    # Nearly all new objects: blocks freed earlier in arenas made before install() go first.
    assert r["owned"] >= 0.9
    assert r["made"] >= 20
    assert r["freed"] >= r["made"] // 2  # emptied arenas come back to the allocator ...
    assert r["reused"] >= r["made"] // 2  # ... and are handed out again
    assert r["more_chunks"] == 0  # without mapping more


def test_off_switch_leaves_cpythons_allocator_alone():
    p = _py("import dpsim, json; from dpsim import _hugearena as h; "
            "print(json.dumps([dpsim.HUGE_PAGES, dpsim.HUGE_PAGES_REASON, h.installed()]))",
            DPSIM_HUGE_PAGES="0")
    if "No module named 'dpsim._hugearena'" in p.stderr:
        pytest.skip("dpsim._hugearena not built")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.splitlines()[-1]) == [False, "DPSIM_HUGE_PAGES=0", False]


def test_without_the_extension_dpsim_says_so(monkeypatch):
    monkeypatch.delenv("DPSIM_HUGE_PAGES", raising=False)
    monkeypatch.setitem(sys.modules, "dpsim._hugearena", None)  # import fails as if not built
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    assert hugepages._select() == (False, "not built (DPSIM_NO_EXT=1, no compiler, or a source checkout)")


_RUN = r'''
import hashlib, json, sys
sys.path.insert(0, "tests")
import pandas as pd
import dpsim
from helpers import make_cfg
from dpsim.runner import run
from dpsim.metrics.tables import request_table
summ, sim = run(make_cfg("model=ds660b", "cluster.prefill_nodes=2", "cluster.decode_nodes=4",
                         "workload.mal=64k", "experiment=offline", "workload.agents=96"))
t = request_table(sim)
h = hashlib.sha256(pd.util.hash_pandas_object(t, index=False).values.tobytes()).hexdigest()
print(json.dumps([dpsim.HUGE_PAGES, len(t), h]))
'''


@built
def test_request_tables_identical_with_and_without_huge_pages():
    on = _py(_RUN, GLIBC_TUNABLES=hugepages.MALLOC_TUNABLE)
    off = _py(_RUN, DPSIM_HUGE_PAGES="0")
    assert on.returncode == 0 and off.returncode == 0, on.stderr[-2000:] + off.stderr[-2000:]
    a, b = json.loads(on.stdout.splitlines()[-1]), json.loads(off.stdout.splitlines()[-1])
    assert a[0] is True and b[0] is False
    assert a[1] > 100 and a[1:] == b[1:]


_REEXEC = ("import os, json; from dpsim.hugepages import reexec_with_malloc_thp as r; "
           "n = int(os.environ.get('N_STARTS', '0')) + 1; os.environ['N_STARTS'] = str(n); r(); "
           "print(json.dumps([os.getpid(), n, os.environ.get('GLIBC_TUNABLES', '')]))")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_reexec_restarts_once_with_the_malloc_tunable():
    p = _py(_REEXEC)
    assert p.returncode == 0, p.stderr
    pid, starts, tun = json.loads(p.stdout.splitlines()[-1])
    if hugepages.thp_mode() in ("always", "madvise"):
        assert (starts, tun) == (2, hugepages.MALLOC_TUNABLE)  # restarted once, then left alone
    else:
        assert (starts, tun) == (1, "")  # no huge pages to be had: no restart
    # Tunables already given are kept, the switch appended; one already there: no restart.
    p = _py(_REEXEC, GLIBC_TUNABLES="glibc.malloc.arena_max=2")
    _pid, starts, tun = json.loads(p.stdout.splitlines()[-1])
    if hugepages.thp_mode() in ("always", "madvise"):
        assert (starts, tun) == (2, "glibc.malloc.arena_max=2:" + hugepages.MALLOC_TUNABLE)
    for env in ({"GLIBC_TUNABLES": hugepages.MALLOC_TUNABLE}, {"DPSIM_HUGE_PAGES": "0"}):
        p = _py(_REEXEC, **env)
        _pid, starts, tun = json.loads(p.stdout.splitlines()[-1])
        assert (starts, tun) == (1, env.get("GLIBC_TUNABLES", ""))


def test_thp_mode_reads_the_bracketed_word(monkeypatch, tmp_path):
    import builtins
    f = tmp_path / "enabled"
    f.write_text("always [madvise] never\n")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda p, *a, **k: real_open(f if "transparent_hugepage" in str(p) else p, *a, **k))
    assert hugepages.thp_mode() == "madvise"
    f.write_text("garbled\n")
    assert hugepages.thp_mode() == "unknown"
