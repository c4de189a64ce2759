"""GPU-measured compute tables and their interpolators (Vidur's approach: measure the layers once
over a grid, evaluate the grid into fast lookups, let the simulator read the lookups).

A table directory (e.g. ``calibration/profiles/compute_tables/h100``, written by
``calibration/layers.py`` on the lent GPU) holds four files with a fixed schema:

``prefill_attn.csv``  ``model,component,cached,new,split,seconds``
    one layer, one request whose ``new`` queries attend causally to ``cached + new`` keys, on
    one GPU holding all attention heads (DP attention).  ``component``: ``attn`` (dense flash
    attention for GQA; for DSA models the sparse attention over the top-k selected keys) and,
    for DSA models, ``indexer`` (lightning indexer + top-k selection).
``decode_attn.csv``   ``model,component,batch,ctx,split,seconds``
    one decode step of one layer: ``batch`` sequences each with ``ctx`` keys.
``gemm.csv``          ``model,op,dtype,tokens,split,seconds``
    one layer on one GPU for ``tokens`` tokens on that GPU; ``op``: ``attn_proj``,
    ``dense_mlp``, ``moe`` (routed + shared experts at the model's EP size, balanced routing) and
    ``lm_head`` (once per forward: ``tokens`` = sampled positions); ``dtype`` fp8 / bf16.
``meta.json``         free-form description of the measurement (GPU, software, EP sizes).

``split`` is ``train`` (the grid the interpolators use) or ``heldout`` (points off the grid,
used only to report interpolation error: :func:`heldout_errors`).  Repeated rows of one grid
point are reduced to their median.

Interpolation (all lookups are evaluated at load time into sorted axes + value arrays; a lookup
is two ``bisect`` calls and a bilinear blend):

* 2-D tables (attention: ``(cached, new)`` or ``(ctx, batch)``) interpolate ``log(seconds /
  basis)`` bilinearly in ``(log(1 + cached), log(new))``, where ``basis`` is the work the kernel
  does (causal pairs; for DSA attention pairs capped at top-k keys per query; for decode
  ``batch x keys``).  At grid points this is exact; between them it is piecewise log-log linear
  in the time per unit of work.  Outside the grid the time per unit of work is held at the
  nearest edge (so above the grid time grows with the work; below the smallest ``new``/``batch``
  the time stays at its value there: launch-bound kernels).
* 1-D tables (GEMMs over ``tokens``) interpolate ``log(seconds)`` in ``log(tokens)``; below the
  grid the time is held, above it it grows linearly in tokens from the last point.

Missing cells of a 2-D grid that is not rectangular are filled from the nearest measured cell of
the same ``new``/``batch`` (time per unit of work held), and listed in ``Tables.filled``.

Everything here is plain Python + numpy at load time; lookups use only ``math`` and ``bisect``.
"""
from __future__ import annotations

import csv
import json
import math
import os
from bisect import bisect_right
from pathlib import Path
from typing import Callable, Iterable, Mapping

__all__ = [
    "TableError", "Tables", "load_tables", "resolve_dir", "Interp1D", "Interp2D",
    "FILES", "write_tables", "heldout_errors", "synthesise",
]

FILES = {
    "prefill_attn": ("prefill_attn.csv", ("model", "component", "cached", "new", "split", "seconds")),
    "decode_attn": ("decode_attn.csv", ("model", "component", "batch", "ctx", "split", "seconds")),
    "gemm": ("gemm.csv", ("model", "op", "dtype", "tokens", "split", "seconds")),
}
MOE_EP = ("moe_ep.csv", ("model", "ep", "dtype", "tokens", "split", "seconds"))  # optional
COMPONENTS = ("attn", "indexer")
OPS = ("attn_proj", "dense_mlp", "moe", "lm_head")
DTYPES = ("fp8", "bf16")
SPLITS = ("train", "heldout")


class TableError(ValueError):
    """A compute table is missing, malformed or lacks what a model needs (one-line message)."""


# ============================================================================ interpolators
class Interp1D:
    """``f(x)``: piecewise log-log linear over sorted ``xs`` (> 0); held below, linear above."""

    __slots__ = ("lx", "ly", "x0", "y0", "xn", "yn_per_x", "n")

    def __init__(self, xs: Iterable[float], ys: Iterable[float]):
        pts = sorted(zip(xs, ys))
        if not pts:
            raise TableError("empty 1-D table")
        self.lx = [math.log(x) for x, _ in pts]
        self.ly = [math.log(y) for _, y in pts]
        self.x0, self.y0 = pts[0]
        self.xn = pts[-1][0]
        self.yn_per_x = pts[-1][1] / pts[-1][0]
        self.n = len(pts)

    def __call__(self, x: float) -> float:
        if x <= self.x0:
            return self.y0
        if x >= self.xn:
            return self.yn_per_x * x
        u = math.log(x)
        lx = self.lx
        i = bisect_right(lx, u) - 1
        w = (u - lx[i]) / (lx[i + 1] - lx[i])
        ly = self.ly
        return math.exp(ly[i] + w * (ly[i + 1] - ly[i]))


class Interp2D:
    """``f(a, b) = basis(a', b') * exp(bilinear(log(f/basis)))`` over a rectangular grid in
    ``(log(1 + a), log(b))``; ``a' = max(a, a_min)``, ``b' = max(b, b_min)`` (see module docstring).
    ``basis(a, b)`` must be > 0 for ``b >= 1``."""

    __slots__ = ("ua", "ub", "r", "basis", "a_min", "a_max", "b_min", "b_max", "nb")

    def __init__(self, a_axis, b_axis, grid, basis: Callable[[float, float], float]):
        """``grid[i][j]`` = seconds at ``(a_axis[i], b_axis[j])`` (axes sorted ascending)."""
        self.basis = basis
        self.ua = [math.log1p(a) for a in a_axis]
        self.ub = [math.log(b) for b in b_axis]
        self.a_min, self.a_max = a_axis[0], a_axis[-1]
        self.b_min, self.b_max = b_axis[0], b_axis[-1]
        self.nb = len(b_axis)
        # flat row-major log(time per unit of basis)
        self.r = [math.log(grid[i][j] / basis(a, b)) for i, a in enumerate(a_axis) for j, b in enumerate(b_axis)]

    def __call__(self, a: float, b: float) -> float:
        if a < self.a_min:
            a = self.a_min
        if b < self.b_min:
            b = self.b_min
        ua, ub, r, nb = self.ua, self.ub, self.r, self.nb
        if a >= self.a_max:
            i, wa = len(ua) - 2, 1.0
        else:
            x = math.log1p(a)
            i = bisect_right(ua, x) - 1
            wa = (x - ua[i]) / (ua[i + 1] - ua[i])
        if b >= self.b_max:
            j, wb = nb - 2, 1.0
        else:
            y = math.log(b)
            j = bisect_right(ub, y) - 1
            wb = (y - ub[j]) / (ub[j + 1] - ub[j])
        k = i * nb + j
        r00, r01, r10, r11 = r[k], r[k + 1], r[k + nb], r[k + nb + 1]
        lo = r00 + wb * (r01 - r00)
        hi = r10 + wb * (r11 - r10)
        return math.exp(lo + wa * (hi - lo)) * self.basis(a, b)


def _pad_axis(axis: list) -> list:
    """A one-point axis gets a second point (so bilinear blends are defined); values equal."""
    return axis if len(axis) > 1 else [axis[0], axis[0] * 2 + 1]


def make_2d(points: Mapping[tuple, float], basis: Callable[[float, float], float],
            where: str, filled: list) -> Interp2D:
    """Build an :class:`Interp2D` from ``{(a, b): seconds}``; fill holes of a non-rectangular grid."""
    a_axis = sorted({a for a, _ in points})
    b_axis = sorted({b for _, b in points})
    if any(b < 1 for b in b_axis):
        raise TableError(f"{where}: the second axis must be >= 1")
    grid = []
    for a in a_axis:
        row = []
        for b in b_axis:
            t = points.get((a, b))
            if t is None:  # nearest measured a of the same b, time per unit of work held
                cands = [aa for aa in a_axis if (aa, b) in points]
                if not cands:
                    raise TableError(f"{where}: no measurement at all for second-axis value {b}")
                aa = min(cands, key=lambda v: abs(math.log1p(v) - math.log1p(a)))
                t = points[(aa, b)] / basis(aa, b) * basis(a, b)
                filled.append(f"{where} ({a}, {b}) from ({aa}, {b})")
            row.append(t)
        grid.append(row)
    if len(a_axis) == 1:
        a_axis, grid = _pad_axis(a_axis), grid + [list(grid[0])]
        grid[1] = [t / basis(a_axis[0], b) * basis(a_axis[1], b) for t, b in zip(grid[1], b_axis)]
    if len(b_axis) == 1:
        b2 = _pad_axis(b_axis)
        grid = [[row[0], row[0] / basis(a, b2[0]) * basis(a, b2[1])] for a, row in zip(a_axis, grid)]
        b_axis = b2
    return Interp2D(a_axis, b_axis, grid, basis)


# ============================================================================ loading
def resolve_dir(path: str | os.PathLike) -> Path:
    """A table directory: absolute; else relative to the checkout (the folder holding ``dpsim/``),
    to the installed ``dpsim.calibration`` package (for ``calibration/...`` paths), or to the
    current directory -- the first that exists."""
    p = Path(path)
    if p.is_absolute():
        cands = [p]
    else:
        root = Path(__file__).resolve().parents[2]
        cands = [root / p]
        parts = p.parts
        if parts and parts[0] == "calibration":
            cands.append(Path(__file__).resolve().parents[1] / Path(*parts))  # dpsim/calibration/...
        cands.append(Path.cwd() / p)
    for c in cands:
        if c.is_dir():
            return c
    raise TableError(f"compute tables: directory '{path}' not found (tried {', '.join(str(c) for c in cands)})")


def _num(v: str, file: str, col: str, row: int, integer: bool = False, positive: bool = False) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise TableError(f"{file}: row {row}: column '{col}' must be a number, got {v!r}") from None
    if not math.isfinite(x):
        raise TableError(f"{file}: row {row}: column '{col}' must be finite, got {v!r}")
    if integer and x != int(x):
        raise TableError(f"{file}: row {row}: column '{col}' must be an integer, got {v!r}")
    if x < 0 or (positive and x <= 0):
        raise TableError(f"{file}: row {row}: column '{col}' must be {'> 0' if positive else '>= 0'}, got {v!r}")
    return x


def _read_csv(d: Path, kind: str) -> list[dict]:
    fname, cols = FILES[kind]
    f = d / fname
    if not f.is_file():
        raise TableError(f"compute tables: missing file {f}")
    with f.open(newline="") as fh:
        rd = csv.DictReader(fh)
        have = rd.fieldnames or []
        miss = [c for c in cols if c not in have]
        if miss:
            raise TableError(f"{f}: missing column '{miss[0]}' (expected {','.join(cols)})")
        rows = []
        for i, row in enumerate(rd, start=2):
            r = {"model": (row["model"] or "").strip(), "split": (row["split"] or "").strip()}
            if not r["model"]:
                raise TableError(f"{f}: row {i}: column 'model' is empty")
            if r["split"] not in SPLITS:
                raise TableError(f"{f}: row {i}: column 'split' must be one of {list(SPLITS)}, got {row['split']!r}")
            if kind == "gemm":
                r["op"], r["dtype"] = (row["op"] or "").strip(), (row["dtype"] or "").strip()
                if r["op"] not in OPS:
                    raise TableError(f"{f}: row {i}: column 'op' must be one of {list(OPS)}, got {row['op']!r}")
                if r["dtype"] not in DTYPES:
                    raise TableError(f"{f}: row {i}: column 'dtype' must be one of {list(DTYPES)}, got {row['dtype']!r}")
                r["a"] = _num(row["tokens"], str(f), "tokens", i, integer=True, positive=True)
            else:
                r["component"] = (row["component"] or "").strip()
                if r["component"] not in COMPONENTS:
                    raise TableError(f"{f}: row {i}: column 'component' must be one of {list(COMPONENTS)}, got {row['component']!r}")
                a, b = ("cached", "new") if kind == "prefill_attn" else ("ctx", "batch")
                r["a"] = _num(row[a], str(f), a, i, integer=True)
                r["b"] = _num(row[b], str(f), b, i, integer=True, positive=True)
            r["seconds"] = _num(row["seconds"], str(f), "seconds", i, positive=True)
            rows.append(r)
    if not rows:
        raise TableError(f"{f}: no rows")
    return rows


def _median(v: list) -> float:
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


class Tables:
    """The four files of one table directory, validated; rows grouped per model.

    ``points(kind, model, key, split)`` -> {(a, b) or a: median seconds}; ``key`` is the component
    (attention tables) or ``(op, dtype)`` (gemm)."""

    def __init__(self, directory: Path):
        self.dir = directory
        meta_f = directory / "meta.json"
        if not meta_f.is_file():
            raise TableError(f"compute tables: missing file {meta_f}")
        try:
            self.meta = json.loads(meta_f.read_text())
        except ValueError as e:
            raise TableError(f"{meta_f}: not valid JSON ({e})") from None
        self._pts: dict = {}
        for kind in FILES:
            acc: dict = {}
            for r in _read_csv(directory, kind):
                key = (r["op"], r["dtype"]) if kind == "gemm" else r["component"]
                at = r["a"] if kind == "gemm" else (r["a"], r["b"])
                acc.setdefault((kind, r["model"], key, r["split"]), {}).setdefault(at, []).append(r["seconds"])
            for k, d in acc.items():
                self._pts[k] = {at: _median(v) for at, v in d.items()}
        # optional: moe_ep.csv (model,ep,dtype,tokens,split,seconds) -- the moe op at several EP sizes
        f = directory / MOE_EP[0]
        if f.is_file():
            acc: dict = {}
            with f.open(newline="") as fh:
                rd = csv.DictReader(fh)
                miss = [c for c in MOE_EP[1] if c not in (rd.fieldnames or [])]
                if miss:
                    raise TableError(f"{f}: missing column '{miss[0]}' (expected {','.join(MOE_EP[1])})")
                for i, row in enumerate(rd, start=2):
                    sp = (row["split"] or "").strip()
                    if sp not in SPLITS:
                        raise TableError(f"{f}: row {i}: column 'split' must be one of {list(SPLITS)}, got {row['split']!r}")
                    dt = (row["dtype"] or "").strip()
                    if dt not in DTYPES:
                        raise TableError(f"{f}: row {i}: column 'dtype' must be one of {list(DTYPES)}, got {row['dtype']!r}")
                    ep = int(_num(row["ep"], str(f), "ep", i, integer=True, positive=True))
                    x = _num(row["tokens"], str(f), "tokens", i, integer=True, positive=True)
                    t = _num(row["seconds"], str(f), "seconds", i, positive=True)
                    acc.setdefault(("moe_ep", row["model"].strip(), (ep, dt), sp), {}).setdefault(x, []).append(t)
            for k, d in acc.items():
                self._pts[k] = {at: _median(v) for at, v in d.items()}
        self.filled: list[str] = []

    def moe_eps(self, model: str, dtype: str) -> list:
        """EP sizes with ``moe_ep.csv`` train rows for ``model`` / ``dtype``."""
        return sorted(k[2][0] for k in self._pts if k[0] == "moe_ep" and k[1] == model and k[2][1] == dtype
                      and k[3] == "train")

    def models(self) -> set:
        return {k[1] for k in self._pts}

    def has(self, kind: str, model: str, key, split: str = "train") -> bool:
        return (kind, model, key, split) in self._pts

    def points(self, kind: str, model: str, key, split: str = "train") -> dict:
        k = (kind, model, key, split)
        if k not in self._pts:
            fname = FILES[kind][0]
            what = f"op={key[0]} dtype={key[1]}" if kind == "gemm" else f"component={key}"
            raise TableError(f"{self.dir / fname}: no '{split}' rows for model={model} {what}")
        return self._pts[k]

    def ep_size(self, model: str) -> int | None:
        """The EP size the ``moe`` rows of ``model`` were measured at, if meta.json says."""
        m = self.meta if isinstance(self.meta, Mapping) else {}
        for path in (("models", model, "ep_size"), ("ep_size", model), ("moe_ep_size", model),
                     ("models", model, "moe_ep_size"), ("models", model, "ep")):
            node = m
            for p in path:
                node = node.get(p) if isinstance(node, Mapping) else None
            if isinstance(node, (int, float)) and not isinstance(node, bool) and node >= 1:
                return int(node)
        return None


_CACHE: dict = {}


def load_tables(path: str | os.PathLike) -> Tables:
    """Load (once per directory and modification time) and validate a table directory."""
    d = resolve_dir(path)
    stamp = tuple((d / f).stat().st_mtime_ns if (d / f).exists() else 0
                  for f in [v[0] for v in FILES.values()] + ["meta.json"])
    key = (str(d), stamp)
    if key not in _CACHE:
        _CACHE[key] = Tables(d)
    return _CACHE[key]


# ============================================================================ writing (synthetic tables, tests)
def write_tables(directory: str | os.PathLike, rows: Mapping[str, list[tuple]], meta: Mapping) -> Path:
    """Write a table directory: ``rows[kind]`` = tuples in the column order of :data:`FILES`."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for kind, (fname, cols) in FILES.items():
        with (d / fname).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for r in rows.get(kind, []):
                w.writerow([f"{v:.9g}" if isinstance(v, float) else v for v in r])
    (d / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    return d


def heldout_errors(cm, split: str = "heldout") -> list[dict]:
    """Relative error of a table-mode ComputeModel's lookups at the tables' ``split`` points
    (default the held-out ones): [{table, key, at, measured, predicted, rel_err}]."""
    return cm.table_errors(split)


# ============================================================================ synthetic tables
SYN_CACHED = (0, 512, 2048, 8192, 16384, 32768, 65536, 131072)
SYN_NEW = (1, 16, 64, 256, 1024, 4096, 16384)
SYN_CTX = (0, 256, 1024, 2048, 4096, 16384, 32768, 65536, 131072)
SYN_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SYN_TOKENS = tuple(2 ** i for i in range(0, 18))


def synthesise(cms: Mapping, directory: str | os.PathLike, weights: bool = True,
               heldout: bool = True) -> Path:
    """Write tables of this schema from *analytic* ComputeModels ``{name: cm}`` (tests; a
    development stand-in for measured tables).  Times are the analytic model's at its knobs:
    prefill attention and GEMMs at the prefill efficiencies, decode attention at the decode ones.
    ``weights``: each GEMM op also pays its weights read once (``w / (HBM_BW x hbm_bw_eff)``;
    the shared experts' and gate's weights are put on ``attn_proj`` so the EP conversion of the
    ``moe`` op is exact); without it GEMMs are purely per token.  ``heldout``: also write
    off-grid points with split ``heldout``."""
    rows: dict = {"prefill_attn": [], "decode_attn": [], "gemm": []}
    meta = {"source": "synthesised from the analytic ComputeModel (dpsim.engines.compute_tables.synthesise)",
            "models": {}}
    for name, cm in cms.items():
        s, k = cm.shape, cm.knobs
        L = s.n_layers
        meta["models"][name] = {"ep_size": cm.ep_size_prefill}
        cp = cm._c_pair / L  # seconds per attention pair per layer

        def pf(c, n):
            dense = n * (c + 0.5 * n)
            if s.topk is None:
                return {"attn": cp * (dense + cm._up_rel * c)}
            return {"attn": cp * attn_work_sparse(c, n, s.topk), "indexer": cp * cm._idx_rel * dense}

        t0, ts, tt, tc, cap = cm._split
        ds = k["decode_sys_eff"]

        def dec(c, b):
            if s.topk is None:
                return {"attn": tt / L * b * c}
            return {"attn": tc / L * b * min(c, cap), "indexer": tt / L * b * c}

        pts_p = [(c, n, "train") for c in SYN_CACHED for n in SYN_NEW]
        pts_d = [(c, b, "train") for c in SYN_CTX for b in SYN_BATCH]
        if heldout:
            pts_p += [(c, n, "heldout") for c in (1000, 24000, 50000) for n in (8, 300, 3000)]
            pts_d += [(c, b, "heldout") for c in (3000, 40000) for b in (3, 48, 100)]
        for c, n, sp in pts_p:
            for comp, t in pf(c, n).items():
                rows["prefill_attn"].append((name, comp, c, n, sp, float(t)))
        for c, b, sp in pts_d:
            for comp, t in dec(c, b).items():
                rows["decode_attn"].append((name, comp, b, c, sp, float(max(t, 1e-12))))
        # GEMMs: per-token cost at the prefill efficiencies of the analytic model
        pk = cm._c_lin / s.gemm_flops_per_token  # seconds per GEMM FLOP
        bw = cm._w_prefill / cm.weight_bytes_per_gpu_prefill if weights else 0.0  # seconds per byte
        wb = s.weight_bytes
        ep = cm.ep_size_prefill
        ops = {
            "attn_proj": (2 * (s.attn_params_layer + s.indexer_params_layer),
                          (s.attn_params_layer + s.indexer_params_layer) * wb
                          + (s.moe_shared_params + s.router_params) * wb * s.n_moe_layers / L),
            "dense_mlp": (2 * s.dense_mlp_params, s.dense_mlp_params * wb),
            "moe": (2 * (s.moe_active_routed_params + s.moe_shared_params + s.router_params),
                    s.moe_routed_params * wb / ep),
        }
        toks = [(x, "train") for x in SYN_TOKENS] + ([(x, "heldout") for x in (3, 300, 5000)] if heldout else [])
        for opn, (fl, wbytes) in ops.items():
            if opn == "dense_mlp" and not s.n_dense_layers or opn == "moe" and not s.n_moe_layers:
                continue
            for x, sp in toks:
                for dt in DTYPES:
                    rows["gemm"].append((name, opn, dt, x, sp, float(fl * x * pk + wbytes * bw)))
        ch = cm._c_head
        wh = (s.embed_params + s.lm_head_params) * s.embed_bytes * bw
        for x, sp in toks:
            for dt in DTYPES:
                rows["gemm"].append((name, "lm_head", dt, x, sp, float(ch * x + wh)))
        del ds
    return write_tables(directory, rows, meta)


def attn_work_sparse(cached: float, new: float, topk: float) -> float:  # local copy (no import cycle)
    if cached >= topk:
        return new * topk
    x = topk - cached
    if new <= x:
        return new * (cached + 0.5 * new)
    return x * (cached + 0.5 * x) + (new - x) * topk
