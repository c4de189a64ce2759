"""Import boundaries: calibration -> dpsim and hw -> dpsim, never back.

(a) no module under dpsim/ imports ``calibration`` or ``hw`` (static: every Import/ImportFrom
    node of every dpsim/**/*.py, plus string arguments of importlib.import_module/__import__);
(b) using what dpsim took over from calibration (profile loading and link pricing, the
    calibration-point tables, the C2 predictions, the runner's builder) loads neither package
    (a clean interpreter in a subprocess).
"""
import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DPSIM = ROOT / "dpsim"
FORBIDDEN = ("calibration", "hw")


def _forbidden(name: str | None) -> bool:
    return bool(name) and any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [f"{path}:{node.lineno}: import {a.name}" for a in node.names if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom):
            # level > 0 is relative (inside dpsim); only absolute imports can leave the package
            if node.level == 0 and _forbidden(node.module):
                out.append(f"{path}:{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if fname in ("import_module", "__import__") and node.args:
                a0 = node.args[0]
                if isinstance(a0, ast.Constant) and isinstance(a0.value, str) and _forbidden(a0.value):
                    out.append(f"{path}:{node.lineno}: {fname}({a0.value!r})")
    return out


def test_dpsim_imports_neither_calibration_nor_hw():
    files = sorted(DPSIM.rglob("*.py"))
    assert len(files) > 20  # the walk found the package
    bad = [v for p in files for v in _violations(p)]
    assert not bad, "dpsim must not import calibration or hw:\n" + "\n".join(bad)


def test_checker_catches_a_bad_import(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("import os\nfrom calibration.profile import load_profile\nimport hw.replay\n"
                 "from . import calibration\nimport importlib\nimportlib.import_module('hw')\n"
                 "import hwloc\n")
    got = _violations(p)
    assert [g.split(": ", 1)[1] for g in got] == [
        "from calibration.profile import ...", "import hw.replay", "import_module('hw')"]


def test_using_moved_code_loads_neither_package():
    code = textwrap.dedent(f"""
        import sys
        import dpsim, dpsim.runner, dpsim.cluster.profile, dpsim.analysis.validate
        from dpsim.analysis import points, c2
        from dpsim.analysis.validate import C1_POINTS, HEADLINE_RATIO, TPOT_LOW_LOAD, c2_compute_rows, make_cfg
        from dpsim.cluster.hwprofile import load_profile, transfer_time
        from dpsim.cluster.profile import apply_profile, link_profile

        prof = {str(ROOT / 'calibration' / 'profiles' / 'h100_measured.yaml')!r}
        cfg = make_cfg("cluster.link_profile=" + prof)
        priced = link_profile(cfg)
        assert priced is not cfg and priced["cluster"]["pcie_Bps"] > 0
        assert transfer_time(load_profile(prof), "h2d", 1 << 20) > 0
        assert len(C1_POINTS) == 11 and HEADLINE_RATIO == points.HEADLINE_RATIO
        assert set(TPOT_LOW_LOAD) == set(points.TPOT_LOW_LOAD_S)
        rows = c2_compute_rows()
        assert len(rows) == len(points.MOTIVATION) + 2 + len(points.TPOT_LOW_LOAD_S)
        cfg = make_cfg("workload.agents=2")
        sim = dpsim.runner.build(cfg, agents=lambda t: t[:1])
        assert len(sim.agents) == 1
        bad = sorted(m for m in sys.modules
                     if any(m == f or m.startswith(f + ".") for f in {FORBIDDEN!r}))
        assert not bad, bad
        print("ok")
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stdout[-2000:] + p.stderr[-3000:]


def test_calibration_reexports_the_moved_code():
    """calibration keeps its names, as the very objects dpsim now owns (one copy)."""
    from calibration import fit_compute_c2 as F
    from calibration import profile as CP
    from dpsim.analysis import c2, points
    from dpsim.analysis import validate as V
    from dpsim.cluster import hwprofile as H

    for n in H.__all__ + ["_plain", "LINK_KEYS"]:
        assert getattr(CP, n) is getattr(H, n), n
    for n in ("MOTIVATION", "MOTIVATION_CTX", "MOTIVATION_APPEND", "DS_PREFILL_INPUT_TOK_S_NODE",
              "DS_CACHE_HIT", "DS_DECODE_TOK_S_NODE", "GPUS_PER_NODE"):
        assert getattr(F, n) is getattr(points, n), n
    assert F.TPOT_LOW_LOAD is points.TPOT_LOW_LOAD_S
    for n in ("load", "v3_variant", "motivation_ratios", "prod_prefill_node", "prod_decode_node",
              "tpot_low_load"):
        assert getattr(F, n) is getattr(c2, n), n
    assert V.C1_POINTS is points.C1_POINTS and V.HEADLINE is points.HEADLINE


def test_hil_builds_through_the_runner(monkeypatch):
    """calibration.hil.build_sim is dpsim.runner.build plus a truncation, not a copy of it."""
    import dpsim.runner
    from calibration import hil

    seen = {}
    real = dpsim.runner.build

    def spy(cfg, *a, **k):
        seen.update(k)
        return real(cfg, *a, **k)
    monkeypatch.setattr(dpsim.runner, "build", spy)
    cfg = hil.compose(hil.scenario_overrides(agents=3))
    sim = hil.build_sim(cfg, max_turns=3)
    assert callable(seen["agents"]) and sim.driver is not None
    assert sum(a.traj.n_rounds for a in sim.agents) <= 3
