# cython: boundscheck=False, wraparound=False
"""The measured prefill-attention table as one small compiled kernel (table mode's hot path).

Table mode (:mod:`dpsim.engines.compute_tables`, ``model.compute_tables``) prices a request's
prefill attention as ``L x A(cached, new) x basis(cached, new)``: ``A`` the measured time per unit
of attention basis, interpolated bilinearly in ``(log(1 + cached), log(new))`` over the measured
grid, the basis the DSA top-k pair count (plus the indexer's dense pairs times ``kappa``).  It is
called for every request of every forward and many times by the DualPath scheduler's quota
search, so it is a class the compiled core types (``attn_kernel.pxd``), like a lookup card kept at
the desk instead of a ledger fetched from the archive each time.  The arithmetic is the same, in
the same order, as :meth:`dpsim.engines.compute_tables.Interp2D.__call__` with its divisions by the
grid step replaced by products with their reciprocals (computed once here): both builds give the
same bits (tests/test_core_compiled.py).
"""
from __future__ import annotations

import math
from array import array


def last_le(xs, n: int, x: float) -> int:
    """``bisect_right(xs[:n], x) - 1``: the last index ``i`` with ``xs[i] <= x`` (sorted ``xs``)."""
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if x < xs[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo - 1


class AttnKernel:
    """``work(cached, new)`` = seconds of prefill attention per forward at level 1 (all layers)."""

    def __init__(self, n_layers, ua, ub, lr, nb, a_min, a_max, b_min, b_max, topk, kappa):
        self.L = float(n_layers)
        self.ua = array("d", ua)
        self.ub = array("d", ub)
        self.lr = array("d", lr)
        self.dua = array("d", [1.0 / (ua[i + 1] - ua[i]) for i in range(len(ua) - 1)])
        self.dub = array("d", [1.0 / (ub[j + 1] - ub[j]) for j in range(len(ub) - 1)])
        self.nua = len(ua)
        self.nb = int(nb)
        self.a_min, self.a_max = float(a_min), float(a_max)
        self.b_min, self.b_max = float(b_min), float(b_max)
        self.has_topk = topk is not None
        self.topk = float(topk) if topk is not None else 0.0
        self.kappa = float(kappa) if kappa is not None else 0.0

    def work(self, cached: float, new: float) -> float:
        if new <= 0:
            return 0.0
        a = cached if cached > self.a_min else self.a_min
        b = new if new > self.b_min else self.b_min
        nb = self.nb
        if a >= self.a_max:
            i = self.nua - 2
            wa = 1.0
        else:
            x = math.log1p(a)
            i = last_le(self.ua, self.nua, x)
            wa = (x - self.ua[i]) * self.dua[i]
        if b >= self.b_max:
            j = nb - 2
            wb = 1.0
        else:
            y = math.log(b)
            j = last_le(self.ub, nb, y)
            wb = (y - self.ub[j]) * self.dub[j]
        k = i * nb + j
        r00 = self.lr[k]
        r10 = self.lr[k + nb]
        low = r00 + wb * (self.lr[k + 1] - r00)
        d = b * (a + 0.5 * b)
        if not self.has_topk:
            basis = d
        elif a >= self.topk:
            basis = b * self.topk + self.kappa * d
        else:
            xx = self.topk - a
            basis = (d if b <= xx else xx * (a + 0.5 * xx) + (b - xx) * self.topk) + self.kappa * d
        return self.L * math.exp(low + wa * (r10 + wb * (self.lr[k + nb + 1] - r10) - low)) * basis


class LogLogLine:
    """The compiled twin of :meth:`dpsim.engines.compute_tables.Interp1D.__call__` (same
    arithmetic, same bits): piecewise log-log linear, held below the first point, linear above
    the last."""

    def __init__(self, f):
        self.lx = array("d", f.lx)
        self.ly = array("d", f.ly)
        self.n = len(f.lx)
        self.x0, self.y0 = float(f.x0), float(f.y0)
        self.xn, self.yn_per_x = float(f.xn), float(f.yn_per_x)

    def at(self, x: float) -> float:
        if x <= self.x0:
            return self.y0
        if x >= self.xn:
            return self.yn_per_x * x
        u = math.log(x)
        i = last_le(self.lx, self.n, u)
        w = (u - self.lx[i]) / (self.lx[i + 1] - self.lx[i])
        return math.exp(self.ly[i] + w * (self.ly[i + 1] - self.ly[i]))


class PrefillKernel:
    """Table mode's forward time of a prefill batch (``ComputeModel.prefill_time``): the GEMMs of
    ``new_tokens_sum`` tokens over their floor, the LM head of ``n_reqs`` requests, the attention
    work, fixed and per-request overheads and the EP all-to-all; see compute.py's table mode."""

    def __init__(self, lp, lin, p, inv_p, floor_p, heads, head, p_fixed, p_req, la, ep_tok):
        self.lp, self.p, self.inv_p, self.floor_p = float(lp), float(p), float(inv_p), float(floor_p)
        self.lin = LogLogLine(lin)
        self.head = LogLogLine(head)
        self.heads = array("d", heads)
        self.n_heads = len(heads)
        self.p_fixed, self.p_req, self.la, self.ep_tok = float(p_fixed), float(p_req), float(la), float(ep_tok)

    def attention_forward(self, new_tokens_sum: float, attn_work: float, n_reqs: int) -> float:
        """``ComputeModel.attention_time_forward`` in table mode (``la`` is its ``_c_pair``)."""
        return self.la * attn_work

    def time(self, new_tokens_sum: float, attn_work: float, n_reqs: int) -> float:
        if new_tokens_sum <= 0 and attn_work <= 0:
            return 0.0
        g = self.lp * self.lin.at(new_tokens_sum) if new_tokens_sum > 0 else 0.0
        # math.pow, not **: Cython's ** on doubles is complex-valued pow (other bits); both are
        # C pow() for these positive finite values
        gemm = math.pow(math.pow(g, self.p) + self.floor_p, self.inv_p)
        h = self.heads[n_reqs] if n_reqs < self.n_heads else self.lp * self.head.at(n_reqs)
        return (self.p_fixed + n_reqs * self.p_req + h + gemm + self.la * attn_work
                + self.ep_tok * new_tokens_sum)
