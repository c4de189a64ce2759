"""Import boundaries: dpsim.calibration -> dpsim and dpsim.hw -> dpsim, never back.

Since issue #14 the checkout's hw/ and calibration/ folders install as ``dpsim.hw`` and
``dpsim.calibration`` (setup.py's package_dir); the simulator core is every other module of dpsim.

(a) no module under dpsim/ imports ``dpsim.calibration`` or ``dpsim.hw`` (nor the pre-#14
    top-level names; static: every Import/ImportFrom node of every dpsim/**/*.py -- absolute, or
    relative names resolved against the module's package -- plus string arguments of
    importlib.import_module/__import__);
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
FORBIDDEN = ("dpsim.calibration", "dpsim.hw", "calibration", "hw")


def _forbidden(name: str | None) -> bool:
    return bool(name) and any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def _resolve(package: str, level: int, module: str | None) -> str:
    """The absolute name of ``from <level dots><module> import ...`` in ``package``."""
    parts = package.split(".")
    base = parts[:len(parts) - (level - 1)] if level > 1 else parts
    return ".".join(base + ([module] if module else []))


def _violations(path: Path, package: str = "dpsim") -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [f"{path}:{node.lineno}: import {a.name}" for a in node.names if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if _forbidden(node.module):
                    out.append(f"{path}:{node.lineno}: from {node.module} import ...")
            else:  # relative: `from . import hw` in dpsim/__init__.py is dpsim.hw
                base = _resolve(package, node.level, node.module)
                names = [base] if _forbidden(base) else [f"{base}.{a.name}" for a in node.names
                                                         if _forbidden(f"{base}.{a.name}")]
                out += [f"{path}:{node.lineno}: from {'.' * node.level}{node.module or ''} import ... "
                        f"({n})" for n in names[:1]]
        elif isinstance(node, ast.Call):
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if fname in ("import_module", "__import__") and node.args:
                a0 = node.args[0]
                if isinstance(a0, ast.Constant) and isinstance(a0.value, str) and _forbidden(a0.value):
                    out.append(f"{path}:{node.lineno}: {fname}({a0.value!r})")
    return out


def _package(path: Path) -> str:
    """The package a relative import in ``path`` starts from (dpsim/cluster/x.py and
    dpsim/cluster/__init__.py: dpsim.cluster)."""
    return ".".join(path.relative_to(ROOT).parts[:-1])


def test_dpsim_imports_neither_calibration_nor_hw():
    files = sorted(DPSIM.rglob("*.py"))  # the core: hw/ and calibration/ are outside dpsim/
    assert len(files) > 20  # the walk found the package
    assert not (DPSIM / "hw").exists() and not (DPSIM / "calibration").exists()
    bad = [v for p in files for v in _violations(p, _package(p))]
    assert not bad, "the dpsim core must not import dpsim.calibration or dpsim.hw:\n" + "\n".join(bad)


def test_checker_catches_a_bad_import(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("import os\nfrom dpsim.calibration.profile import load_profile\nimport dpsim.hw.replay\n"
                 "from . import calibration\nimport importlib\nimportlib.import_module('dpsim.hw')\n"
                 "import hwloc\nfrom .. import hw\nfrom ..calibration.hil import x\nfrom . import cluster\n"
                 "import calibration.hil\nfrom .hwprofile import load_profile\n")
    got = _violations(p, "dpsim.cluster")  # as if it were dpsim/cluster/m.py
    assert [g.split(": ", 1)[1] for g in got] == [
        "from dpsim.calibration.profile import ...", "import dpsim.hw.replay",
        "from .. import ... (dpsim.hw)", "from ..calibration.hil import ... (dpsim.calibration.hil)",
        "import calibration.hil", "import_module('dpsim.hw')"]
    # `from . import calibration` in dpsim/cluster/ is dpsim.cluster.calibration (allowed); in
    # dpsim/__init__.py it is dpsim.calibration
    assert _violations(p, "dpsim")[2].split(": ", 1)[1] == "from . import ... (dpsim.calibration)"


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
    """dpsim.calibration keeps its names, as the very objects the core owns (one copy)."""
    from dpsim.calibration import fit_compute_c2 as F
    from dpsim.calibration import profile as CP
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
    """dpsim.calibration.hil.build_sim is dpsim.runner.build plus a truncation, not a copy of it."""
    import dpsim.runner
    from dpsim.calibration import hil

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
