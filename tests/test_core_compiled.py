"""The compiled core (dpsim/_core.py CORE, built in place by setup.py) against its pure-Python
reference: the same run gives byte-identical request tables in both, DPSIM_PURE_PYTHON=1
really loads the sources, and a stale build is refused (warned about) instead of running."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dpsim
from dpsim import _core

ROOT = Path(__file__).resolve().parents[1]
RUN = r"""
import hashlib, json, sys
import pandas as pd
import dpsim, dpsim.net
from helpers import make_cfg
from dpsim.runner import run
from dpsim.metrics.tables import request_table
summ, sim = run(make_cfg(*sys.argv[1:]))
t = request_table(sim)
h = hashlib.sha256(pd.util.hash_pandas_object(t, index=False).values.tobytes()).hexdigest()
mods = {m: sys.modules[m].__file__ for m in dpsim._core.CORE}
print(json.dumps({"core": dpsim.CORE_IMPLEMENTATION, "net": dpsim.net.IMPLEMENTATION, "hash": h,
                  "jct": summ["jct_s"], "n": summ["requests_completed"], "mods": mods}))
"""


def _run(env_extra: dict, *overrides: str, pre: str = "") -> dict:
    env = {**os.environ, **env_extra, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    out = subprocess.run([sys.executable, "-c", pre + RUN, *overrides], cwd=ROOT / "tests", env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


needs_build = pytest.mark.skipif(dpsim.CORE_IMPLEMENTATION != "compiled",
                                 reason=f"compiled core not active ({_core.REASON}); build with `pip install -e .`")

# DualPath, Basic, split and the online driver: small runs through every system and driver.
SCENARIOS = [
    ("workload.agents=24", "cluster.prefill_nodes=2", "cluster.decode_nodes=2"),
    ("system=basic", "workload.agents=16"),
    ("system=split", "workload.agents=16", "cluster.decode_nodes=2"),
    ("experiment=online", "workload.aps=0.5", "experiment.max_sim_s=200"),
]


@needs_build
@pytest.mark.parametrize("ov", SCENARIOS)
def test_compiled_core_matches_pure_reference(ov):
    c = _run({"DPSIM_PURE_PYTHON": "0"}, *ov)
    p = _run({"DPSIM_PURE_PYTHON": "1"}, *ov)
    assert c["core"] == "compiled" and p["core"] == "python" and p["net"] == "python"
    assert all(not f.endswith(".py") for f in c["mods"].values())
    assert all(f.endswith(".py") for f in p["mods"].values())
    assert c["n"] > 0 and (c["hash"], c["jct"], c["n"]) == (p["hash"], p["jct"], p["n"])


def test_source_hash_covers_every_core_file(tmp_path):
    """Any edit of a core .py or .pxd, or of a network .pxd the core cimports, changes the hash
    a build is checked against."""
    import shutil
    files = []
    for name in _core.CORE:
        src = Path(_core.source_path(name))
        files += [src.with_suffix(ext) for ext in (".py", ".pxd")]
    files += [ROOT / "dpsim" / "net" / f"{m}.pxd" for m in _core.NET_PXD]
    for src in files:
        dst = tmp_path / src.relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    h0 = _core.source_hash(str(tmp_path))
    assert h0 == _core.source_hash()
    for src in files:
        f = tmp_path / src.relative_to(ROOT)
        old = f.read_bytes()
        f.write_bytes(old + b"\n# edited\n")
        assert _core.source_hash(str(tmp_path)) != h0, f
        f.write_bytes(old)


@needs_build
def test_stale_build_falls_back_to_sources(tmp_path):
    """A build whose stamp does not match the sources is not used: dpsim warns and imports the
    .py files."""
    code = ("import warnings, sys\nwarnings.simplefilter('always')\n"
            "import dpsim._corehash as h\nh.SOURCE_HASH = 'stale'\n"
            "import importlib, dpsim._core as c\nsys.meta_path[:] = [f for f in sys.meta_path "
            "if type(f).__name__ != '_SourcesFirst']\n"
            "with warnings.catch_warnings(record=True) as w:\n    impl, why = c._select()\n"
            "import dpsim.engines.decode as d\n"
            "print(impl, 'stale' in why, any('stale' in str(x.message) for x in w), d.__file__.endswith('.py'))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DPSIM_PURE_PYTHON": "0"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["python", "True", "True", "True"]


# A build older than the core's sources, as after editing a core .py without rebuilding.
STALE = """
import sys, types, warnings
warnings.simplefilter("ignore")
stamp = types.ModuleType("dpsim._corehash")
stamp.SOURCE_HASH = "stale"
sys.modules["dpsim._corehash"] = stamp
"""


@needs_build
@pytest.mark.parametrize("ov", SCENARIOS)
def test_stale_core_runs_its_sources_beside_the_compiled_network(ov):
    """The fallback a developer meets after editing a core file: the pure core with the compiled
    network (which stays in use) -- it must run, and give the compiled core's results.  It once
    failed at the first KV transfer: the port called the network's C-only ``_submit``."""
    s = _run({"DPSIM_PURE_PYTHON": "0"}, *ov, pre=STALE)
    c = _run({"DPSIM_PURE_PYTHON": "0"}, *ov)
    assert (s["core"], s["net"]) == ("python", "compiled") and c["core"] == "compiled"
    assert all(f.endswith(".py") for f in s["mods"].values())
    assert s["n"] > 0 and (s["hash"], s["jct"], s["n"]) == (c["hash"], c["jct"], c["n"])


@needs_build
def test_table_kernels_match_their_pure_twins_bit_for_bit():
    """The table-mode kernels (attn_kernel.py) on random inputs: the compiled build gives the same
    bits as the .py (e.g. Cython's ``**`` on doubles is complex pow and differs in the last bit;
    the kernels use math.pow, which both builds run as C pow)."""
    import importlib.util
    import random

    from dpsim.engines import attn_kernel as C
    from dpsim.runner import build

    from helpers import make_cfg

    spec = importlib.util.spec_from_file_location("attn_kernel_pure", ROOT / "dpsim/engines/attn_kernel.py")
    P = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(P)
    assert not C.__file__.endswith(".py") and P.__file__.endswith(".py")
    sim = build(make_cfg("model=ds660b", "workload.agents=2", "cluster.prefill_nodes=2", "cluster.decode_nodes=4"))
    cm = sim.policy.ctx.compute
    T, A = cm._tab, cm._tab["attn_prefill"]
    ca = cm.attn_work.__self__
    cp = cm.prefill_time.__self__
    assert isinstance(ca, C.AttnKernel) and isinstance(cp, C.PrefillKernel)
    pa = P.AttnKernel(cm.shape.n_layers, A.ua, A.ub, A.r, A.nb, A.a_min, A.a_max, A.b_min, A.b_max,
                      T["attn_topk"], T["attn_kappa"])
    pp = P.PrefillKernel(cp.lp, T["lin_prefill"], cp.p, cp.inv_p, cp.floor_p, list(cp.heads), T["head"],
                         cp.p_fixed, cp.p_req, cp.la, cp.ep_tok)
    rng = random.Random(7)
    for _ in range(20000):
        c, n = float(rng.randrange(0, 80000)), float(rng.randrange(0, 20000))
        assert ca.work(c, n) == pa.work(c, n)
        ns, w, k = rng.randrange(0, 40000), rng.uniform(0.0, 2.0), rng.randrange(1, 400)
        assert cp.time(ns, w, k) == pp.time(ns, w, k)
        x = rng.uniform(0.5, 60000.0)
        assert cp.lin.at(x) == T["lin_prefill"](x)
