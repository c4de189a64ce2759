"""``python -m dpsim.calibration`` -- run suites, fit profiles, calibrate compute.

    python -m dpsim.calibration check [--transport all]
    python -m dpsim.calibration run --transport cpu|file|cuda|nccl|verbs --suite sizes|concurrency|blocks|all --out DIR
    python -m dpsim.calibration fit DIR --out PROFILE.yaml [--report REPORT_DIR]
    python -m dpsim.calibration compute --out DIR [--quick]
    python -m dpsim.calibration layers --out DIR [--quick] [--device cpu] [--deadline-s 480]
    python -m dpsim.calibration c3 --out calibration/profiles/c3_h100_reference.yaml
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ..hw import TRANSPORTS, TransportUnavailable, get_transport

from .suites import SUITES, SuiteConfig, config_dict, parse_bytes, run_suites, write_results


def _ints(s):
    return tuple(int(x) for x in str(s).split(",") if x)


def _sizes(s):
    return tuple(parse_bytes(x) for x in str(s).split(",") if x)


def _opts(pairs) -> dict:
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise SystemExit(f"--opt expects KEY=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            pass
        out[k.replace("-", "_")] = v
    return out


def cmd_check(a) -> int:
    names = list(TRANSPORTS) if a.transport == "all" else [a.transport]
    rc = 0
    for n in names:
        t = get_transport(n)
        try:
            t.check()
            print(f"{n:6s} available")
        except TransportUnavailable as e:
            print(f"{n:6s} {e}")
            rc = 2 if len(names) == 1 else rc
        finally:
            try:
                t.close()
            except Exception:
                pass
    return rc


def cmd_run(a) -> int:
    opts = _opts(a.opt)
    if a.transport == "file" and a.file_dir:
        opts.setdefault("path", a.file_dir)
    if a.max_bytes:
        opts.setdefault("max_bytes", parse_bytes(a.max_bytes))
    if a.devices and a.transport in ("cuda", "nccl"):
        opts.setdefault("devices", _ints(a.devices))
    sc = SuiteConfig(min_bytes=parse_bytes(a.min_bytes), max_bytes=parse_bytes(a.max_bytes or "1GiB"),
                     trials=a.trials, warmup=a.warmup, seed=a.seed, config_budget_s=a.config_budget,
                     levels=_ints(a.levels), heldout_levels=_ints(a.heldout_levels),
                     conc_sizes=_sizes(a.conc_sizes), block_counts=_ints(a.block_counts),
                     heldout_block_counts=_ints(a.heldout_block_counts), block_sizes=_sizes(a.block_sizes),
                     max_block_total=parse_bytes(a.max_block_total), verify=not a.no_verify)
    os.makedirs(a.out, exist_ok=True)
    try:
        t = get_transport(a.transport, **opts)
    except (TypeError, ValueError) as e:  # an unknown --opt KEY or a bad value: one line, the fix
        print(f"calibration run --transport {a.transport}: bad --opt ({e}); the options are the "
              f"keyword arguments of the transport class (hw/README.md)", file=sys.stderr)
        return 2
    try:
        t.check()
    except TransportUnavailable as e:
        print(str(e), file=sys.stderr)
        with open(os.path.join(a.out, f"unavailable_{a.transport}.json"), "w") as f:
            json.dump({"transport": a.transport, "missing": e.missing, "how": e.how, "message": str(e)}, f, indent=1)
        return 2
    t0 = time.time()
    errors: list = []
    notes: list = []
    try:
        df = run_suites(t, a.suite, sc, log=print, errors=errors, notes=notes)
        meta = t.describe()
        meta["suite_config"] = config_dict(sc)
        meta["suites"] = a.suite
        meta["transport_options"] = {k: v for k, v in opts.items()}
        meta["wall_s"] = time.time() - t0
        meta["errors"] = errors
        meta["adjusted"] = notes
    finally:
        t.close()
    name = a.name or a.transport
    if df.empty:
        print(f"[{a.transport}] no measurement succeeded; errors: {errors}", file=sys.stderr)
        with open(os.path.join(a.out, f"failed_{name}.json"), "w") as f:
            json.dump({"transport": a.transport, "errors": errors}, f, indent=1)
        return 1
    paths = write_results(df, meta, a.out, name)
    print(f"[{a.transport}] {len(df)} rows in {time.time() - t0:.1f} s -> {', '.join(paths)}")
    for n in notes:
        print(f"[{a.transport}] adjusted: {n}")
    return 0


def cmd_fit(a) -> int:
    from .fit import fit_directory, fit_summary_lines
    from .profile import dump_profile
    from .report import write_report_files

    profile, tables = fit_directory(a.dir, source=a.source, max_knots=a.max_knots)
    dump_profile(profile, a.out, header=f"dpsim hardware profile fitted by `python -m dpsim.calibration fit {a.dir}`.\n"
                                        "Schema: calibration/PROFILE.md.")
    print(f"profile -> {a.out}")
    for line in fit_summary_lines(profile):
        print(line)
    if tables.get("unavailable"):
        for k, v in tables["unavailable"].items():
            print(f"not measured: {k}: {v.get('message')}")
    rep = a.report or os.path.join(os.path.dirname(os.path.abspath(a.out)), "fit_report")
    paths = write_report_files(profile, tables, rep)
    from .c3_reference import build as c3_build
    from .report import markdown_report

    with open(os.path.join(rep, "fit_report.md"), "w") as f:
        f.write(markdown_report(profile, tables, c3=c3_build(), title=f"Calibration fit of {a.dir}"))
    print(f"report files -> {rep} ({len(paths) + 1} files, fit_report.md)")
    return 0


def cmd_compute(a) -> int:
    from .compute import run_compute
    from ..hw.base import host_metadata

    try:
        df, meta = run_compute(quick=a.quick, device=a.device, heads=a.heads, head_dim=a.head_dim)
    except TransportUnavailable as e:
        print(str(e), file=sys.stderr)
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "unavailable_compute.json"), "w") as f:
            json.dump({"transport": "compute", "missing": e.missing, "how": e.how, "message": str(e)}, f, indent=1)
        return 2
    meta.update({k: v for k, v in host_metadata().items() if k not in meta})
    os.makedirs(a.out, exist_ok=True)
    df.to_csv(os.path.join(a.out, "compute_raw.csv"), index=False)
    try:
        df.to_parquet(os.path.join(a.out, "compute_raw.parquet"), index=False)
    except ImportError:  # pragma: no cover
        pass
    with open(os.path.join(a.out, "meta_compute.json"), "w") as f:
        json.dump(meta, f, indent=1, default=str)
    from .compute import fit_compute

    comp, _ = fit_compute(df, meta)
    for dt, g in (comp.get("gemm") or {}).items():
        print(f"gemm {dt}: {g['flops_per_s'] / 1e12:.0f} TFLOP/s, {g['mem_Bps'] / 1e9:.0f} GB/s, "
              f"heldout MAPE {(g['fit']['mape'] or 0) * 100:.1f}%")
    if "attention" in comp:
        print(f"attention: heldout MAPE {(comp['attention']['fit']['mape'] or 0) * 100:.1f}%")
    print(f"[compute] {len(df)} rows -> {a.out}")
    return 0


def cmd_layers(a) -> int:
    from .layers import run_layers

    try:
        meta = run_layers(a.out, quick=a.quick, device=a.device, deadline_s=a.deadline_s, trials=a.trials,
                          sections=a.sections, log=lambda s: print(s, flush=True))
    except RuntimeError as e:  # no GPU for --device cuda
        print(f"calibration layers: {e}", file=sys.stderr)
        return 2
    return 1 if meta["checks"]["failed"] else 0


def cmd_c3(a) -> int:
    from .c3_reference import write

    write(a.out)
    print(f"C3 reference profile -> {a.out}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dpsim.calibration", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("check", help="say which transports can run here")
    c.add_argument("--transport", default="all", choices=["all", *TRANSPORTS])
    c.set_defaults(fn=cmd_check)

    r = sub.add_parser("run", help="run microbenchmark suites on one transport")
    r.add_argument("--transport", required=True, choices=list(TRANSPORTS))
    r.add_argument("--suite", default="all", choices=["all", *SUITES])
    r.add_argument("--out", required=True, help="results directory")
    r.add_argument("--name", default=None, help="file stem (default: the transport name)")
    r.add_argument("--max-bytes", default=None, help="largest transfer, e.g. 64MiB (default 1GiB, capped by memory)")
    r.add_argument("--min-bytes", default="4KiB")
    r.add_argument("--trials", type=int, default=10)
    r.add_argument("--warmup", type=int, default=2)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--config-budget", type=float, default=2.0, help="max seconds of trials per configuration")
    r.add_argument("--levels", default="1,2,3,4,6,8", help="concurrency levels")
    r.add_argument("--heldout-levels", default="3,6")
    r.add_argument("--conc-sizes", default="1MiB,16MiB,64MiB,256MiB")
    r.add_argument("--block-counts", default="1,8,61,256,1024,4096")
    r.add_argument("--heldout-block-counts", default="256")
    r.add_argument("--block-sizes", default="4KiB,16KiB,64KiB,256KiB,1MiB")
    r.add_argument("--max-block-total", default="256MiB")
    r.add_argument("--file-dir", default=None, help="file transport: directory on the storage to test")
    r.add_argument("--devices", default=None, help="cuda/nccl: GPU indices, e.g. 0,1")
    r.add_argument("--opt", action="append", help="transport option KEY=VALUE (repeatable), e.g. queue_depth=8")
    r.add_argument("--no-verify", action="store_true", help="skip the byte check on the first warm-up")
    r.set_defaults(fn=cmd_run)

    f = sub.add_parser("fit", help="fit a profile to a results directory")
    f.add_argument("dir")
    f.add_argument("--out", required=True, help="profile YAML to write")
    f.add_argument("--report", default=None, help="directory for CSV tables and PNG plots")
    f.add_argument("--source", default=None, help="meta.source text")
    f.add_argument("--max-knots", type=int, default=3)
    f.set_defaults(fn=cmd_fit)

    m = sub.add_parser("compute", help="GEMM / attention timing on a GPU")
    m.add_argument("--out", required=True)
    m.add_argument("--quick", action="store_true")
    m.add_argument("--device", type=int, default=0)
    m.add_argument("--heads", type=int, default=32)
    m.add_argument("--head-dim", type=int, default=128)
    m.set_defaults(fn=cmd_compute)

    from .layers import add_args as _layers_args

    ly = sub.add_parser("layers", help="per-layer compute tables of the paper models (GPU; --device cpu: smoke)")
    _layers_args(ly)
    ly.set_defaults(fn=cmd_layers)

    k = sub.add_parser("c3", help="write the reference profile built from C3")
    k.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "profiles", "c3_h100_reference.yaml"))
    k.set_defaults(fn=cmd_c3)

    a = ap.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
