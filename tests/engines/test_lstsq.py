"""The plain-Python least squares (dpsim/engines/lstsq.py) behind the decode step-time fit: it
solves what numpy.linalg.lstsq solves, and its answer does not depend on which BLAS kernel the
processor gets (numpy's does: the cause of different results on different machines)."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dpsim.engines.lstsq import lstsq

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(2, 1), (9, 2), (72, 3), (40, 5)])
def test_agrees_with_numpy(seed, shape):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=shape) * rng.uniform(0.1, 1e3, size=shape[1])  # columns of unlike scale
    b = rng.normal(size=shape[0])
    want = np.linalg.lstsq(A, b, rcond=None)[0]
    got = np.array(lstsq(A.tolist(), b.tolist()))
    assert np.allclose(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())
    # the residual is orthogonal to the columns (the normal equations hold)
    r = b - A @ got
    assert np.abs(A.T @ r).max() <= 1e-9 * np.abs(A).max() * np.abs(b).max() * shape[0]


def test_consistent_system_is_solved_exactly_enough():
    A = [[1.0, n, n * k] for n in (1, 2, 4, 8, 16) for k in (512, 4096, 65536)]
    x = [2.5e-3, 4.0e-5, 7.0e-8]
    b = [sum(a * c for a, c in zip(row, x)) for row in A]
    got = lstsq(A, b)
    assert got == pytest.approx(x, rel=1e-10)


def test_zero_column_gets_zero():
    A = [[1.0, 0.0, 2.0], [2.0, 0.0, 4.0], [3.0, 0.0, 6.0], [1.0, 0.0, 2.5]]
    b = [1.0, 2.0, 3.0, 1.2]
    x = lstsq(A, b)
    assert x[1] == 0.0
    want = np.linalg.lstsq(np.array(A), np.array(b), rcond=None)[0]
    # same fitted values as numpy's (minimum-norm) answer, though the coefficients may split differently
    assert np.allclose(np.array(A) @ np.array(x), np.array(A) @ want, rtol=1e-9)


@pytest.mark.parametrize("A, b, msg", [
    ([], [], "rows"),
    ([[1.0, 2.0], [3.0]], [1.0, 2.0], "equal length"),
    ([[1.0, 2.0]], [1.0], "more unknowns"),
    ([[1.0], [2.0]], [1.0], "b of length 1"),
])
def test_bad_shapes_are_refused(A, b, msg):
    with pytest.raises(ValueError, match=msg):
        lstsq(A, b)


def test_repeatable_and_close_to_numpy():
    """The same problem gives the same bits on a second solve (from fresh lists), and agrees with
    numpy to 1e-12 on a system of unlike column scales.  (Bits across BLAS kernels: the
    OPENBLAS_CORETYPE test below.)"""
    A = [[1.0 / (i + 1), float(i), (i * i) / 7.0] for i in range(12)]
    b = [((-1) ** i) * 0.3 + i / 3.0 for i in range(12)]
    x = lstsq(A, b)
    want = np.linalg.lstsq(np.array(A), np.array(b), rcond=None)[0]
    assert np.allclose(x, want, rtol=1e-12)
    assert x == lstsq([list(r) for r in A], list(b))


_COEFFS = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from helpers import make_cfg
from dpsim.engines.compute import ComputeModel
out = {}
for m in ("ds660b", "ds27b", "qwen32b"):
    cfg = make_cfg("model=" + m)
    cm = ComputeModel(cfg["model"], cfg["gpu"], cfg.get("compute"))
    out[m] = [float(v).hex() for v in cm.decode_coeffs_split()[:4]]
print(json.dumps(out))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.machine() != "x86_64",
                    reason="OPENBLAS_CORETYPE selects x86-64 OpenBLAS kernels")
def test_decode_fit_does_not_depend_on_the_blas_kernel():
    """The decode coefficients (every decode step's time) with OpenBLAS forced onto its oldest
    x86-64 kernel (Nehalem, runs anywhere) and with the kernel it picks for this processor:
    numpy.linalg.lstsq gave different last bits (e.g. AVX-512 vs AVX2 kernels), so the same
    config and seed gave different results on different machines."""
    def coeffs(coretype):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("OPENBLAS_CORETYPE", None)
        if coretype:
            env["OPENBLAS_CORETYPE"] = coretype
        out = subprocess.run([sys.executable, "-c", _COEFFS, str(ROOT / "tests")], env=env, cwd=ROOT / "tests",
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert coeffs("Nehalem") == coeffs(None)
