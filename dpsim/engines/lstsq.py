"""Least squares that give the same bits on every machine.

``numpy.linalg.lstsq`` hands the work to LAPACK and BLAS, and OpenBLAS (what numpy's wheels
ship) picks its kernels by processor at run time: an AVX-512 machine and an AVX2 machine
round the same least-squares problem differently in the last bits.  The decode step-time
coefficients are such a fit, and every decode step of every run is timed with them, so with
``lstsq`` the same config and seed gave different results -- different event counts at 1,152
GPUs -- on different machines.

:func:`lstsq` solves the same problem by Householder QR in plain Python floats, in a fixed
order, with :func:`math.fsum` (correctly rounded) for every sum: like doing the sum by hand
instead of on whichever calculator is at hand, the steps and so the roundings are always the
same.  It is meant for the small fits made once per run (a few columns, tens of rows).
"""
from __future__ import annotations

import math
from typing import Sequence


def lstsq(A: Sequence[Sequence[float]], b: Sequence[float]) -> list[float]:
    """``x`` minimising ``||A x - b||`` (``A``: rows of equal length ``k`` <= number of rows).

    A column that is all zeros, or a multiple of earlier ones, gets coefficient 0.
    """
    R = [[float(v) for v in row] for row in A]
    q = [float(v) for v in b]
    m = len(R)
    k = len(R[0]) if m else 0
    if m == 0 or k == 0 or len(q) != m or any(len(row) != k for row in R):
        raise ValueError(f"lstsq: A must be m x k rows of equal length with m >= 1 and b of length m "
                         f"(got {m} rows, b of length {len(q)})")
    if k > m:
        raise ValueError(f"lstsq: more unknowns ({k}) than equations ({m})")
    scale = max(abs(v) for row in R for v in row)
    tiny = scale * m * 2.0 ** -52 if scale > 0.0 else 0.0
    for j in range(k):
        norm = math.sqrt(math.fsum(R[i][j] * R[i][j] for i in range(j, m)))
        if norm <= tiny:  # nothing left of this column: it gets coefficient 0
            for i in range(j, m):
                R[i][j] = 0.0
            continue
        alpha = -norm if R[j][j] > 0.0 else norm
        v = [0.0] * m
        v[j] = R[j][j] - alpha
        for i in range(j + 1, m):
            v[i] = R[i][j]
        vv = math.fsum(v[i] * v[i] for i in range(j, m))
        for c in range(j, k):
            f = 2.0 * math.fsum(v[i] * R[i][c] for i in range(j, m)) / vv
            for i in range(j, m):
                R[i][c] -= f * v[i]
        f = 2.0 * math.fsum(v[i] * q[i] for i in range(j, m)) / vv
        for i in range(j, m):
            q[i] -= f * v[i]
    x = [0.0] * k
    for j in range(k - 1, -1, -1):
        if R[j][j] == 0.0:
            continue
        x[j] = (q[j] - math.fsum(R[j][c] * x[c] for c in range(j + 1, k))) / R[j][j]
    return x
