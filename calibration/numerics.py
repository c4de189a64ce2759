"""Small numpy-only solvers used by the fits (no scipy dependency)."""
from __future__ import annotations

import numpy as np


def nnls(A: np.ndarray, b: np.ndarray, max_iter: int | None = None) -> np.ndarray:
    """Lawson-Hanson non-negative least squares: min ||Ax - b|| s.t. x >= 0."""
    A = np.asarray(A, float)
    b = np.asarray(b, float)
    m, n = A.shape
    x = np.zeros(n)
    passive = np.zeros(n, bool)
    w = A.T @ (b - A @ x)
    max_iter = max_iter or 3 * n + 30
    tol = 1e-12 * max(1.0, np.abs(w).max(initial=0))
    it = 0
    while (~passive).any() and (w[~passive] > tol).any() and it < max_iter:
        it += 1
        j = np.argmax(np.where(~passive, w, -np.inf))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(A[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            neg = passive & (z <= 0)
            alpha = np.min(x[neg] / np.maximum(x[neg] - z[neg], 1e-300))
            x = x + alpha * (z - x)
            passive &= x > 1e-15
            x[~passive] = 0
            if not passive.any():
                break
        w = A.T @ (b - A @ x)
    return x


def nelder_mead(f, x0, step=0.5, iters=400, tol=1e-10):
    """Minimize f over R^n (used on log-parameters)."""
    x0 = np.asarray(x0, float)
    n = x0.size
    pts = [x0] + [x0 + step * np.eye(n)[i] for i in range(n)]
    vals = [f(p) for p in pts]
    for _ in range(iters):
        order = np.argsort(vals)
        pts = [pts[i] for i in order]
        vals = [vals[i] for i in order]
        if abs(vals[-1] - vals[0]) < tol * (1 + abs(vals[0])):
            break
        c = np.mean(pts[:-1], axis=0)
        xr = c + (c - pts[-1])
        fr = f(xr)
        if fr < vals[0]:
            xe = c + 2 * (c - pts[-1])
            fe = f(xe)
            pts[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = xr, fr
        else:
            xc = c + 0.5 * (pts[-1] - c)
            fc = f(xc)
            if fc < vals[-1]:
                pts[-1], vals[-1] = xc, fc
            else:
                for i in range(1, n + 1):
                    pts[i] = pts[0] + 0.5 * (pts[i] - pts[0])
                    vals[i] = f(pts[i])
    i = int(np.argmin(vals))
    return pts[i], vals[i]


def search_1d(f, lo: float, hi: float, n: int = 400, refine: int = 3):
    """Minimize f on [lo, hi] over a log grid, refined around the best point."""
    a, b = np.log(lo), np.log(hi)
    best_x, best_v = None, np.inf
    for _ in range(refine + 1):
        xs = np.exp(np.linspace(a, b, n))
        vs = np.array([f(x) for x in xs])
        i = int(np.nanargmin(vs))
        if vs[i] < best_v:
            best_x, best_v = xs[i], vs[i]
        lo_i, hi_i = max(i - 2, 0), min(i + 2, n - 1)
        a, b = np.log(xs[lo_i]), np.log(xs[hi_i])
        if b - a < 1e-9:
            break
    return float(best_x), float(best_v)


def rel_errors(pred, meas) -> np.ndarray:
    pred = np.asarray(pred, float)
    meas = np.asarray(meas, float)
    return np.abs(pred - meas) / meas


def score(pred, meas) -> dict:
    e = rel_errors(pred, meas)
    if e.size == 0:
        return {"mape": None, "median_err": None, "max_err": None, "n": 0}
    return {"mape": float(e.mean()), "median_err": float(np.median(e)), "max_err": float(e.max()),
            "n": int(e.size)}
