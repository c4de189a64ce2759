"""§S7 bottleneck-free analysis: the P/D range within which DualPath's aggregate storage read
bandwidth is every SNIC of the cluster, and the aggregate bandwidth of each read-path rule.

With P prefill and D decode nodes of g GPUs (CNIC bandwidth B), SNIC = s·B per node and node
memory bandwidth M, storage fully used and perfectly balanced:

    s/(g-s) <= P/D <= min{(g-2s)/s, (g-s)/(2s), (M/(B s) - 3)/2}

For g = 8, s = 1, M = 500 GB/s, B s = 50 GB/s: 1/7 <= P/D <= 7/2.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Bound:
    lo: float  # lowest P/D without a bottleneck
    hi: float  # highest P/D without a bottleneck
    hi_terms: dict  # each upper-bound term (which link binds)

    def contains(self, ratio: float) -> bool:
        return self.lo - 1e-12 <= ratio <= self.hi + 1e-12


def pd_range(g: int, s: float, M: float, B: float) -> Bound:
    """The §S7 P/D range (``s`` = SNIC bandwidth / CNIC bandwidth B, ``M`` node memory bw)."""
    if g <= 0 or s <= 0 or M <= 0 or B <= 0:
        raise ValueError("g, s, M and B must all be positive")
    lo = s / (g - s) if g > s else math.inf
    terms = {
        "de_cnic_read": (g - 2 * s) / s,
        "de_cnic_write": (g - s) / (2 * s),
        "de_dram": (M / (B * s) - 3) / 2,
    }
    return Bound(lo, min(terms.values()), terms)


def link_loads(P: int, D: int, g: int, s: float, B: float) -> dict:
    """Per-link traffic (bytes/s) of §S7's balanced pattern: storage fully used, T_p per PE-DE
    GPU pair on the PE read path, T_c on the DE read path."""
    Tp = B * s / (D * g * g)
    Tc = B * s / (P * g * g)
    return {
        "T_p": Tp, "T_c": Tc,
        "pe_cnic_read": 2 * Tp * D * g,
        "pe_cnic_write": (Tp + Tc) * D * g,
        "de_cnic_read": (Tp + 2 * Tc) * P * g,
        "de_cnic_write": (2 * Tp + Tc) * P * g,
        "de_dram": (3 + 2 * P / D) * B * s,
        "pe_dram": 2 * s * B,
    }


def aggregate_read_bw(P: int, D: int, snic_Bps: float, policy: str) -> float:
    """Aggregate storage read bandwidth when storage-bound: PE-only reads use P SNICs, DE-only D,
    DualPath (inside the §S7 range) all P + D."""
    if policy == "pe":
        return P * snic_Bps
    if policy == "de":
        return D * snic_Bps
    if policy == "dualpath":
        return (P + D) * snic_Bps
    raise ValueError(f"policy {policy!r} must be pe, de or dualpath")


def steady_read_throughput(sim, trim: float = 0.2) -> tuple[float, int]:
    """Aggregate SNIC read rate of a finished simulation in its steady state: the mean over the
    middle of the span from the first storage read's start to the last one's end (``trim`` of
    it cut at each end: ramp-up and tail).  Returns (bytes/s, samples in the window)."""
    import numpy as np

    reqs = [r for r in sim.requests if r.hit > 0]
    if not reqs:
        return math.nan, 0
    t0 = min(r.t_read0 for r in reqs)
    t1 = max(r.t_read1 for r in reqs)
    m = sim.metrics
    t = np.asarray(m.times)
    idx = [i for i, c in enumerate(m.columns) if c.startswith("snic_rx[")]
    b = np.vstack(m.rows)[:, idx].sum(axis=1)
    i0 = int(np.searchsorted(t, t0 + trim * (t1 - t0)))
    i1 = int(np.searchsorted(t, t1 - trim * (t1 - t0))) - 1
    if i1 <= i0:
        return math.nan, max(0, i1 - i0)
    return float((b[i1] - b[i0]) / (t[i1] - t[i0])), i1 - i0


def _check_args(a) -> str | None:
    """One line naming the bad argument and the fix, or None."""
    if a.g < 1:
        return f"--g {a.g}: GPUs per node must be an integer >= 1 (§S2: 8)"
    for k, what in (("s", "SNIC / CNIC bandwidth ratio"), ("M", "node memory bandwidth (B/s)"),
                    ("B", "CNIC bandwidth per direction (B/s)")):
        v = getattr(a, k)
        if not (math.isfinite(v) and v > 0):
            return f"--{k} {v:g}: the {what} must be a positive number"
    if a.s >= a.g:
        return f"--s {a.s:g}: the SNIC / CNIC ratio must be below --g {a.g} (a node's SNIC bandwidth < its CNICs')"
    if (a.P is None) != (a.D is None):
        return "--P and --D go together: give both (prefill and decode node counts) or neither"
    for k in ("P", "D"):
        v = getattr(a, k)
        if v is not None and v < 1:
            return f"--{k} {v}: node counts must be integers >= 1"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dpsim bound", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--g", type=int, default=8, help="GPUs (CNICs) per node (§S2: 8)")
    ap.add_argument("--s", type=float, default=1.0, help="SNIC bandwidth / CNIC bandwidth (§S2: 1)")
    ap.add_argument("--M", type=float, default=500e9, help="node memory bandwidth, B/s (§S2: 500e9)")
    ap.add_argument("--B", type=float, default=50e9, help="CNIC bandwidth per direction, B/s (§S2: 50e9)")
    ap.add_argument("--P", type=int, default=None)
    ap.add_argument("--D", type=int, default=None)
    a = ap.parse_args(argv)
    bad = _check_args(a)
    if bad:
        print(f"dpsim bound: error: {bad}", file=sys.stderr)
        return 2
    b = pd_range(a.g, a.s, a.M, a.B)
    if b.hi < b.lo:
        print(f"dpsim bound: error: --g {a.g} --s {a.s:g} --M {a.M:g} --B {a.B:g} leaves no bottleneck-free "
              f"P/D (lower bound {b.lo:.4g} > upper bound {b.hi:.4g}: "
              f"{min(b.hi_terms, key=b.hi_terms.get)} binds); lower --s (SNIC/CNIC bandwidth) or raise --g/--M",
              file=sys.stderr)
        return 2
    print(f"bottleneck-free P/D range: {b.lo:.4g} <= P/D <= {b.hi:.4g}")
    for k, v in b.hi_terms.items():
        print(f"  upper bound from {k:<14} {v:.4g}")
    if a.P is not None and a.D is not None:
        r = a.P / a.D
        print(f"P/D = {a.P}/{a.D} = {r:.4g}: {'inside' if b.contains(r) else 'OUTSIDE'} the range")
        snic = a.s * a.B
        for pol in ("pe", "de", "dualpath"):
            print(f"  aggregate read bandwidth, {pol:<8}: {aggregate_read_bw(a.P, a.D, snic, pol) / 1e9:.4g} GB/s")
    return 0
