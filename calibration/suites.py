"""Microbenchmark suites over any :mod:`hw` transport.

* ``sizes``       -- one transfer at a time, log-spaced sizes (powers of two
  are fitted; sizes between them, ``sqrt(2)*2**k`` rounded to 4 KiB, are held
  out and only ever used to score the fit).
* ``concurrency`` -- k = 1..8 transfers at once over one direction of a link,
  and over both directions (duplex); levels 3 and 6 are held out.
* ``blocks``      -- n small blocks (e.g. 61 Layer Blocks) issued one by one,
  batched, or as one Full Block of the same bytes; n = 256 is held out.

Every configuration is warmed up, then its trials run in a randomized order
interleaved with the other configurations (so drift does not masquerade as a
size effect).  Results are a tidy table, one row per measured transfer.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..hw.base import Route, TransferSpec, Transport, spread

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
SUITES = ("sizes", "concurrency", "blocks")

_UNITS = {"": 1, "b": 1, "k": KiB, "kb": 1000, "kib": KiB, "m": MiB, "mb": 10**6, "mib": MiB,
          "g": GiB, "gb": 10**9, "gib": GiB}


def parse_bytes(s) -> int:
    """``"4KiB"`` -> 4096, ``"1g"`` -> 2**30, ``"65536"`` -> 65536."""
    if isinstance(s, (int, np.integer)):
        return int(s)
    t = str(s).strip().lower().replace("_", "")
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = t[len(num):]
    if unit not in _UNITS:
        raise ValueError(f"cannot parse byte size {s!r}")
    return int(float(num) * _UNITS[unit])


def fmt_bytes(n: float) -> str:
    for u, v in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= v:
            x = n / v
            return f"{x:.0f} {u}" if abs(x - round(x)) < 0.01 else f"{x:.1f} {u}"
    return f"{int(n)} B"


def size_grid(min_bytes: int = 4 * KiB, max_bytes: int = GiB) -> list[tuple[int, str]]:
    """Powers of two in [min, max] (train) and 4-KiB-rounded sqrt(2) midpoints (heldout)."""
    out = []
    k = max(0, math.ceil(math.log2(max(min_bytes, 1))))
    while (1 << k) <= max_bytes:
        out.append((1 << k, "train"))
        mid = int(math.ceil((1 << k) * math.sqrt(2) / 4096) * 4096)
        if mid < max_bytes and mid != (1 << k) and mid != (1 << (k + 1)) and mid > min_bytes:
            out.append((mid, "heldout"))
        k += 1
    return sorted(set(out))


@dataclass
class SuiteConfig:
    min_bytes: int = 4 * KiB
    max_bytes: int = GiB
    trials: int = 10
    min_trials: int = 3
    warmup: int = 2
    seed: int = 0
    config_budget_s: float = 2.0  # cap on time spent timing one configuration
    levels: tuple = (1, 2, 3, 4, 6, 8)
    heldout_levels: tuple = (3, 6)
    conc_sizes: tuple = (1 * MiB, 16 * MiB, 64 * MiB, 256 * MiB)
    block_counts: tuple = (1, 8, 61, 256, 1024, 4096)
    heldout_block_counts: tuple = (256,)
    block_sizes: tuple = (4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB)
    max_block_total: int = 256 * MiB
    verify_max_bytes: int = 16 * MiB  # first warm-up of configs up to this size checks the bytes
    verify: bool = True


@dataclass
class _Cfg:
    key: tuple
    run: object  # callable(verify: bool) -> list[(row_extra, seconds)]
    base: dict = field(default_factory=dict)
    nbytes: int = 0


def _execute(cfgs: list[_Cfg], sc: SuiteConfig, log, errors: list | None = None) -> list[dict]:
    """Warm up every config, then run all trials in one shuffled order.

    A configuration that raises is dropped (the error is logged and appended
    to ``errors``); the others go on."""
    errors = errors if errors is not None else []
    rng = random.Random(sc.seed)
    est = {}
    order = list(range(len(cfgs)))
    rng.shuffle(order)
    for i in order:
        c = cfgs[i]
        t = None
        try:
            for w in range(max(1, sc.warmup)):
                verify = sc.verify and w == 0 and c.nbytes <= sc.verify_max_bytes
                res = c.run(verify)
                t = max(s for _, s in res)
        except Exception as e:  # keep the other configurations
            msg = f"{c.key}: {type(e).__name__}: {e}"[:500]
            errors.append(msg)
            if log:
                log(f"  ERROR (configuration dropped) {msg}")
            continue
        est[i] = max(t, 1e-7)
    plan = []
    for i, c in enumerate(cfgs):
        if i not in est:
            continue
        n = int(max(sc.min_trials, min(sc.trials, sc.config_budget_s / est[i])))
        plan += [(i, tr) for tr in range(n)]
    rng.shuffle(plan)
    rows = []
    failed = set()
    t_start = time.perf_counter()
    for j, (i, tr) in enumerate(plan):
        if i in failed:
            continue
        c = cfgs[i]
        try:
            res = c.run(False)
        except Exception as e:
            failed.add(i)
            msg = f"{c.key} trial {tr}: {type(e).__name__}: {e}"[:500]
            errors.append(msg)
            if log:
                log(f"  ERROR (remaining trials dropped) {msg}")
            continue
        for extra, secs in res:
            r = dict(c.base)
            r.update(extra)
            r["trial"] = tr
            r["seconds"] = float(secs)
            rows.append(r)
        if log and (j + 1) % max(1, len(plan) // 5) == 0:
            log(f"  {j + 1}/{len(plan)} timed runs ({time.perf_counter() - t_start:.1f} s)")
    return rows


def _note(notes, log, msg: str) -> None:
    """An option the suite had to adjust: printed and kept (meta ``adjusted``)."""
    if notes is not None:
        notes.append(msg)
    if log:
        log(f"  NOTE {msg}")


def _sizes_cfgs(t: Transport, sc: SuiteConfig, notes=None, log=None) -> list[_Cfg]:
    tmax = t.max_transfer_bytes()
    cap = min(sc.max_bytes, tmax)
    if cap < sc.max_bytes:
        _note(notes, log, f"sizes: --max-bytes {fmt_bytes(sc.max_bytes)} capped to {fmt_bytes(cap)} "
                          f"(the largest transfer this {t.name} transport can hold: free memory / disk)")
    cfgs = []
    for r in t.routes():
        rcap = min(cap, r.max_bytes or cap)
        if rcap < cap:
            _note(notes, log, f"sizes: route {r.kind} capped to {fmt_bytes(rcap)} (its own limit)")
        for n, split in size_grid(sc.min_bytes, rcap):
            def run(verify, r=r, n=n):
                return [({}, t.transfer(n, src=r.src, dst=r.dst, verify=verify))]

            cfgs.append(_Cfg(("sizes", r.kind, r.src, r.dst, n), run, dict(
                suite="sizes", kind=r.kind, group="", src=r.src, dst=r.dst, mode="single", method="",
                nbytes=n, n_messages=1, block_bytes=n, n_concurrent=1, transfer_idx=0, split=split), n))
    return cfgs


def _conc_cfgs(t: Transport, sc: SuiteConfig, notes=None, log=None) -> list[_Cfg]:
    tmax = t.max_transfer_bytes()
    cap = min(sc.max_bytes, tmax)
    sizes = set()
    for s in sc.conc_sizes:
        if s < sc.min_bytes:
            _note(notes, log, f"concurrency: size {fmt_bytes(s)} dropped (below --min-bytes "
                              f"{fmt_bytes(sc.min_bytes)})")
            continue
        if s > cap:
            why = ("--max-bytes" if cap == sc.max_bytes else
                   f"the largest transfer this {t.name} transport can hold (free memory / disk)")
            _note(notes, log, f"concurrency: size {fmt_bytes(s)} capped to {fmt_bytes(cap)} ({why}); "
                              f"raise --max-bytes or free memory/disk to measure it")
        sizes.add(min(s, cap))
    sizes = sorted(sizes or {min(sc.min_bytes, cap)})
    cfgs = []
    for gname, routes in t.concurrency_groups():
        duplex = len({(r.src, r.dst) for r in routes}) > 1
        for k in sc.levels:
            if duplex and k < 2:
                continue
            picks: list[Route] = spread(routes, k)
            for n in sizes:
                specs = [TransferSpec(n, r.src, r.dst) for r in picks]

                def run(verify, specs=specs, picks=picks):
                    secs = t.transfer_concurrent(specs, verify=verify)
                    return [(dict(transfer_idx=i, kind=picks[i].kind, src=picks[i].src, dst=picks[i].dst), s)
                            for i, s in enumerate(secs)]

                split = "heldout" if k in sc.heldout_levels else "train"
                cfgs.append(_Cfg(("conc", gname, k, n), run, dict(
                    suite="concurrency", group=gname, mode="duplex" if duplex else "same", method="",
                    nbytes=n, n_messages=1, block_bytes=n, n_concurrent=k, split=split), n * k))
    return cfgs


def _block_cfgs(t: Transport, sc: SuiteConfig, notes=None, log=None) -> list[_Cfg]:
    cap = min(sc.max_block_total, t.max_transfer_bytes(), sc.max_bytes)
    cfgs = []
    skipped = sorted({(b, nb) for b in sc.block_sizes for nb in sc.block_counts if nb * b > cap})
    if skipped:
        _note(notes, log, f"blocks: {len(skipped)} (block size, count) pairs over {fmt_bytes(cap)} in total "
                          f"skipped (--max-block-total / --max-bytes / memory), e.g. "
                          + ", ".join(f"{nb} x {fmt_bytes(b)}" for b, nb in skipped[:3]))
    for r in t.block_routes():
        for b in sc.block_sizes:
            for nb in sc.block_counts:
                total = nb * b
                if total > cap or b < sc.min_bytes:
                    continue
                modes = ["single"] + ([m for m in t.block_modes()] if nb > 1 else [])
                for mode in modes:
                    def run(verify, r=r, b=b, nb=nb, mode=mode):
                        res = t.transfer_blocks(nb, b, src=r.src, dst=r.dst, mode=mode, verify=verify)
                        extra = {"method": res.method}
                        if res.extra.get("fallback"):
                            extra["note"] = res.extra["fallback"]
                        return [(extra, res.seconds)]

                    split = "heldout" if nb in sc.heldout_block_counts else "train"
                    cfgs.append(_Cfg(("blocks", r.kind, b, nb, mode), run, dict(
                        suite="blocks", kind=r.kind, group="", src=r.src, dst=r.dst, mode=mode,
                        nbytes=total, n_messages=nb if mode != "single" else 1, block_bytes=b,
                        n_concurrent=1, transfer_idx=0, split=split), total))
    return cfgs


def run_suites(t: Transport, suites, sc: SuiteConfig | None = None, log=print,
               errors: list | None = None, notes: list | None = None) -> pd.DataFrame:
    """Run the named suites on a checked transport; return the tidy table.
    Errors of single configurations are appended to ``errors``; every option the suites
    adjusted (a size capped, a size dropped) is printed and appended to ``notes``."""
    sc = sc or SuiteConfig()
    np.random.seed(sc.seed)
    builders = {"sizes": _sizes_cfgs, "concurrency": _conc_cfgs, "blocks": _block_cfgs}
    if isinstance(suites, str):
        suites = SUITES if suites == "all" else [suites]
    rows = []
    for s in suites:
        if s not in builders:
            raise ValueError(f"unknown suite {s!r}; choose from {SUITES} or all")
        t0 = time.perf_counter()
        cfgs = builders[s](t, sc, notes, log)
        if log:
            log(f"[{t.name}] suite {s}: {len(cfgs)} configurations")
        rows += _execute(cfgs, sc, log, errors)
        if log:
            log(f"[{t.name}] suite {s} done in {time.perf_counter() - t0:.1f} s")
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df.insert(0, "transport", t.name)
    if "note" not in df:
        df["note"] = ""
    df["note"] = df["note"].fillna("")
    df["bandwidth_Bps"] = df["nbytes"] / df["seconds"]
    return df


SUMMARY_KEYS = ["transport", "suite", "kind", "group", "src", "dst", "mode", "method", "nbytes",
                "n_messages", "block_bytes", "n_concurrent", "transfer_idx", "split"]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Median, quartiles and IQR per configuration (and per concurrent transfer)."""
    if df.empty:
        return df
    keys = [k for k in SUMMARY_KEYS if k in df.columns]
    g = df.groupby(keys, dropna=False)["seconds"]
    out = g.agg(n="count", median_s="median", mean_s="mean",
                q25_s=lambda x: float(np.quantile(x, 0.25)),
                q75_s=lambda x: float(np.quantile(x, 0.75))).reset_index()
    out["iqr_s"] = out["q75_s"] - out["q25_s"]
    out["median_Bps"] = out["nbytes"] / out["median_s"]
    return out


def makespans(df: pd.DataFrame) -> pd.DataFrame:
    """Concurrency suite: per (group, k, size, trial) the time until the last
    transfer ended and the aggregate bandwidth."""
    c = df[df["suite"] == "concurrency"]
    if c.empty:
        return c
    g = c.groupby(["transport", "group", "mode", "n_concurrent", "nbytes", "split", "trial"])
    m = g.agg(makespan_s=("seconds", "max"), total_bytes=("nbytes", "sum"),
              kinds=("kind", lambda x: "+".join(sorted(set(x))))).reset_index()
    m["aggregate_Bps"] = m["total_bytes"] / m["makespan_s"]
    return m


def write_results(df: pd.DataFrame, meta: dict, out_dir: str, name: str) -> list[str]:
    """raw_<name>.{parquet,csv}, summary_<name>.{parquet,csv}, meta_<name>.json"""
    os.makedirs(out_dir, exist_ok=True)
    for col in ("host", "gpu", "date"):
        df[col] = meta.get(col)
    paths = []
    summ = summarize(df)
    for stem, table in (("raw", df), ("summary", summ)):
        p = os.path.join(out_dir, f"{stem}_{name}")
        table.to_csv(p + ".csv", index=False)
        paths.append(p + ".csv")
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq

            tbl = pa.Table.from_pandas(table, preserve_index=False)
            tbl = tbl.replace_schema_metadata({**(tbl.schema.metadata or {}),
                                               b"dpsim_meta": json.dumps(meta, default=str).encode()})
            pq.write_table(tbl, p + ".parquet")
            paths.append(p + ".parquet")
        except ImportError:  # pragma: no cover - pyarrow is a dependency
            pass
    mp = os.path.join(out_dir, f"meta_{name}.json")
    with open(mp, "w") as f:
        json.dump(meta, f, indent=1, default=str)
    paths.append(mp)
    return paths


def config_dict(sc: SuiteConfig) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(sc).items()}
