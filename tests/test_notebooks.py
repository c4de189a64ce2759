"""The notebooks in experiments/notebooks execute top to bottom at small sizes (outputs are not
written back: the committed notebooks stay output-free)."""
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NB_DIR = Path(__file__).resolve().parent.parent / "experiments" / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))


def test_notebooks_exist_without_outputs():
    assert {p.name for p in NOTEBOOKS} >= {"trace_replay.ipynb", "policy_comparison.ipynb"}
    for p in NOTEBOOKS:
        nb = nbformat.read(p, as_version=4)
        for c in nb.cells:
            if c.cell_type == "code":
                assert not c.outputs and c.execution_count is None, f"{p.name} has committed outputs"


def _images(nb) -> list[str]:
    """The code cells' PNG outputs (what a reader of the executed notebook sees as figures)."""
    return [o["data"]["image/png"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type in ("display_data", "execute_result") and "image/png" in o.get("data", {})]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_and_shows_figures(path, tmp_path, monkeypatch):
    monkeypatch.setenv("DPSIM_NB_SCALE", "small")
    # The kernel picks its own (inline) backend, as in Jupyter: the suite's MPLBACKEND=Agg
    # (conftest.py) would hide a library call that switched it.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert len(_images(nb)) >= 1, f"{path.name} executed but showed no figure"


def test_library_calls_leave_the_notebook_backend_alone(tmp_path):
    """Running a simulation with plots (and a report) from a session keeps its backend."""
    import subprocess
    import sys
    code = f"""
import matplotlib
matplotlib.use("module://matplotlib_inline.backend_inline")
import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
from helpers import make_cfg
from dpsim.runner import run
run(make_cfg("workload.agents=4"), out_dir={str(tmp_path / 'run')!r})
import matplotlib.pyplot as plt
print("BACKEND", matplotlib.get_backend(), len(plt.get_fignums()))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "run" / "ttft_cdf.png").stat().st_size > 0
    assert "BACKEND module://matplotlib_inline.backend_inline 0" in p.stdout


def test_no_library_code_switches_the_matplotlib_backend():
    """dpsim, calibration, hw and experiments draw on Figure objects (dpsim.metrics.outputs.
    new_figure): none calls matplotlib.use or pyplot, so a notebook's backend survives any of
    them (trace plots, calibration fit report, HIL report included)."""
    import ast
    root = Path(__file__).resolve().parents[1]
    bad = []
    for pkg in ("dpsim", "calibration", "hw", "experiments"):
        for p in (root / pkg).rglob("*.py"):
            tree = ast.parse(p.read_text())
            for n in ast.walk(tree):
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "use" \
                        and isinstance(n.func.value, ast.Name) and n.func.value.id == "matplotlib":
                    bad.append(f"{p.relative_to(root)}:{n.lineno} matplotlib.use")
                if isinstance(n, (ast.Import, ast.ImportFrom)):
                    names = [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""]
                    if any(m == "matplotlib.pyplot" for m in names):
                        bad.append(f"{p.relative_to(root)}:{n.lineno} imports pyplot")
    assert not bad, bad
