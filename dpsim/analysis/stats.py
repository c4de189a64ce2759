"""Replicates over seeds: the mean and its 95% confidence interval.

A prediction is the mean over ``n`` replicates that differ only in ``seed`` (same config); its
uncertainty is the **Student t interval over the replicates**: ``mean +- t(0.975, n-1) * s /
sqrt(n)`` with ``s`` the sample standard deviation (ddof=1).  It is the interval of the *mean over
seeds* (how far the mean of another ``n`` seeds would typically fall), assuming the replicates'
values are roughly normal; with ``n`` = 2 or 3 it is wide (t = 12.7 and 4.3), which is honest:
two or three seeds say little.  One replicate has no interval (``lo``/``hi`` NaN).  Different
configurations are never pooled here: callers group by every config key first.

:func:`t_quantile` is exact for integer degrees of freedom (Abramowitz & Stegun 26.7.3-4, the
finite series of the t distribution's CDF, inverted by bisection), so no SciPy is needed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

LEVEL = 0.95  # the interval's confidence level everywhere in dpsim (reports, figures, validate)
INTERVAL = "95% CI (Student t over seeds)"  # how tables and figures name it


def _t_central(t: float, nu: int) -> float:
    """P(|T| < t) for Student's t with integer ``nu`` >= 1 degrees of freedom (A&S 26.7.3-4)."""
    th = math.atan(t / math.sqrt(nu))
    c2 = math.cos(th) ** 2
    s = math.sin(th)
    if nu % 2:  # odd
        acc, term = 0.0, math.cos(th)
        if nu > 1:
            acc = term
            for k in range(3, nu - 1, 2):  # cos^k terms: prod (2..k-1)/(1..k)
                term *= c2 * (k - 1) / k
                acc += term
        return (2 / math.pi) * (th + s * acc)
    acc, term = 1.0, 1.0
    for k in range(2, nu - 1, 2):
        term *= c2 * (k - 1) / k
        acc += term
    return s * acc


def t_quantile(level: float, nu: int) -> float:
    """The two-sided ``level`` quantile of Student's t with ``nu`` degrees of freedom: the ``t``
    with P(|T| < t) = level (e.g. level 0.95, nu 2 -> 4.303)."""
    if not 0 < level < 1:
        raise ValueError(f"level: expected a probability in (0, 1), got {level!r}")
    if isinstance(nu, bool) or int(nu) != nu or nu < 1:
        raise ValueError(f"nu: expected an integer >= 1, got {nu!r}")
    nu = int(nu)
    lo, hi = 0.0, 1.0
    while _t_central(hi, nu) < level:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_central(mid, nu) < level:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` replicates and its Student t interval [``lo``, ``hi``] at ``level``; ``min`` /
    ``max`` of the replicates.  ``lo``/``hi`` are NaN for ``n`` < 2, everything NaN for ``n`` = 0."""
    mean: float
    lo: float
    hi: float
    n: int
    min: float
    max: float
    level: float = LEVEL

    @property
    def half(self) -> float:
        """Half-width of the interval (NaN without one)."""
        return 0.5 * (self.hi - self.lo)

    def fmt(self, nd: int = 4, unit: str = "") -> str:
        """``mean [lo, hi] (n=N)``; one replicate: ``mean (n=1, no interval)``."""
        u = f" {unit}" if unit else ""
        if self.n == 0:
            return "-"
        if self.n < 2:
            return f"{self.mean:.{nd}g}{u} (n=1, no interval)"
        return f"{self.mean:.{nd}g}{u} [{self.lo:.{nd}g}, {self.hi:.{nd}g}] (n={self.n})"


def mean_ci(values: Iterable[float], level: float = LEVEL) -> Interval:
    """The mean of the finite ``values`` (replicates over seeds) and its Student t interval."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    n = len(v)
    nan = math.nan
    if n == 0:
        return Interval(nan, nan, nan, 0, nan, nan, level)
    m = math.fsum(v) / n
    if n == 1:
        return Interval(m, nan, nan, 1, v[0], v[0], level)
    sd = math.sqrt(math.fsum((x - m) ** 2 for x in v) / (n - 1))
    h = t_quantile(level, n - 1) * sd / math.sqrt(n)
    return Interval(m, m - h, m + h, n, min(v), max(v), level)
