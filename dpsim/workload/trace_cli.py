"""``dpsim trace ...``: inspect, convert, validate and generate workload traces.

* ``stats PATH [--format F] [--out DIR]`` -- turns per trajectory, input (prompt) and output
  lengths per request, prefix-hit ratio (% of input tokens; also after the first turn) and
  think/tool gaps, as a table; with ``--out`` also PNG histograms (matplotlib, Agg) and stats.json;
* ``convert IN OUT [--format F]`` -- any supported trace into the canonical JSONL;
* ``validate PATH [--format F]`` -- schema and consistency checks; exit 0, or 1 with the error;
* ``generate --mal 32k|48k|64k [--n 500] [--seed 0] [--out FILE]`` -- synthetic §S8 trajectories:
  prints the paper's table beside the generated means with relative errors (exit 1 if any is
  off by more than 5%); ``--out`` writes them in the canonical format.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .trajectory import FORMAT_NAME, TraceError, Trajectory, write_trajectories

LICENCES = {
    "weka": "Apache-2.0 (github.com/callanjfox/kv-cache-tester @ c9b3da54fc2f555942720527b86c1979fcae9bb2)",
    "weka_csv": "Apache-2.0 (derived from github.com/callanjfox/kv-cache-tester)",
    "mooncake": "Apache-2.0 (github.com/kvcache-ai/Mooncake)",
    "azure": "CC-BY-4.0 (github.com/Azure/AzurePublicDataset; cite Splitwise, ISCA'24)",
}


# ---------------------------------------------------------------- statistics


def compute_stats(trajs: list[Trajectory]) -> dict:
    """Summary figures of a trajectory list (all token ratios are of input = prompt tokens)."""
    turns = np.array([t.n_rounds for t in trajs], np.int64)
    prompt = np.concatenate([t.prompt for t in trajs])
    gen = np.concatenate([t.gen for t in trajs])
    hit = np.concatenate([t.hit for t in trajs])
    append = np.concatenate([t.append for t in trajs])
    gaps = np.concatenate([t.think_s[1:] for t in trajs]) if turns.max() > 1 else np.zeros(0)
    later_p = np.concatenate([t.prompt[1:] for t in trajs])
    later_h = np.concatenate([t.hit[1:] for t in trajs])
    total = np.array([t.total_tokens for t in trajs], np.int64)
    return {
        "trajectories": int(turns.size),
        "rounds": int(turns.sum()),
        "turns": turns,
        "input": prompt,
        "output": gen,
        "append": append,
        "total": total,
        "gaps": gaps,
        "hit_ratio": float(hit.sum() / prompt.sum()),
        "hit_ratio_after_first": float(later_h.sum() / later_p.sum()) if later_p.size else float("nan"),
        "per_traj_hit": np.array([t.hit.sum() / t.prompt.sum() for t in trajs]),
    }


def _dist(x: np.ndarray) -> dict:
    if x.size == 0:
        return {"n": 0}
    q = np.percentile(x, [50, 90, 99])
    return {"n": int(x.size), "mean": float(x.mean()), "p50": float(q[0]), "p90": float(q[1]),
            "p99": float(q[2]), "max": float(x.max())}


def stats_table(st: dict) -> str:
    rows = [("turns / trajectory", st["turns"]), ("input tokens / request", st["input"]),
            ("output tokens / request", st["output"]), ("append tokens / round", st["append"]),
            ("total tokens / trajectory", st["total"]), ("gap (think) s / round", st["gaps"])]
    out = [f"{st['trajectories']} trajectories, {st['rounds']} rounds (requests)",
           f"prefix-hit ratio: {100 * st['hit_ratio']:.1f}% of input tokens "
           f"({100 * st['hit_ratio_after_first']:.1f}% after the first turn)",
           "",
           f"{'':<26}{'mean':>12}{'p50':>12}{'p90':>12}{'p99':>12}{'max':>12}"]
    for name, x in rows:
        d = _dist(x)
        if not d["n"]:
            out.append(f"{name:<26}{'(none)':>12}")
            continue
        fmt = "{:>12,.1f}" if "gap" in name else "{:>12,.0f}"
        out.append(f"{name:<26}" + "".join(fmt.format(d[k]) for k in ("mean", "p50", "p90", "p99", "max")))
    return "\n".join(out)


def write_plots(st: dict, out: Path, title: str) -> list[Path]:
    from dpsim.metrics.outputs import new_figure  # no backend switch, nothing left open

    out.mkdir(parents=True, exist_ok=True)
    files = []
    panels = [("turns", "turns per trajectory", False), ("input", "input tokens per request", True),
              ("output", "output tokens per request", True), ("gaps", "think/tool gap (s)", True),
              ("per_traj_hit", "prefix-hit ratio per trajectory", False)]
    for key, label, logx in panels:
        x = np.asarray(st[key], np.float64)
        fig = new_figure(figsize=(5, 3.2))
        ax = fig.subplots()
        if x.size:
            if logx:
                pos = x[x > 0]
                bins = np.logspace(np.log10(max(pos.min(), 1e-3)), np.log10(pos.max() * 1.01), 40) if pos.size else 20
                ax.hist(pos if pos.size else x, bins=bins)
                ax.set_xscale("log")
            else:
                ax.hist(x, bins=40)
        ax.set_xlabel(label)
        ax.set_ylabel("count")
        ax.set_title(title, fontsize=8)
        fig.tight_layout()
        f = out / f"{key}.png"
        fig.savefig(f, dpi=100)
        files.append(f)
    summary = {k: (_dist(np.asarray(v)) if isinstance(v, np.ndarray) else v) for k, v in st.items()}
    (out / "stats.json").write_text(json.dumps(summary, indent=1))
    files.append(out / "stats.json")
    return files


# ---------------------------------------------------------------- commands


def _load(path: str, fmt: str | None):
    from .readers import load, sniff

    fmt_used = fmt or sniff(path)
    return load(path, fmt_used), fmt_used


def cmd_stats(a) -> int:
    trajs, fmt = _load(a.path, a.format)
    st = compute_stats(trajs)
    print(f"{a.path} ({fmt})")
    print(stats_table(st))
    if a.out:
        files = write_plots(st, Path(a.out), f"{Path(a.path).name} ({fmt})")
        print(f"wrote {len(files)} files to {a.out}")
    return 0


def _canonical_header(path: str) -> dict:
    try:
        with open(path) as f:
            h = json.loads(f.readline())
        return h if isinstance(h, dict) and h.get("format") == FORMAT_NAME else {}
    except (OSError, json.JSONDecodeError):
        return {}


def cmd_convert(a) -> int:
    trajs, fmt = _load(a.input, a.format)
    if fmt == "canonical":
        h = _canonical_header(a.input)
        source, licence = h.get("source", ""), h.get("licence", "")
    else:
        source = f"{Path(a.input).name} ({fmt}), converted by dpsim trace convert"
        licence = LICENCES.get(fmt, "")
    write_trajectories(a.output, trajs, source=source, licence=licence)
    print(f"wrote {a.output}: {len(trajs)} trajectories, {sum(t.n_rounds for t in trajs)} rounds")
    return 0


def cmd_validate(a) -> int:
    trajs, fmt = _load(a.path, a.format)
    ids = set()
    for t in trajs:  # readers already check every field; re-check the cross-round invariants
        if t.id in ids:
            raise TraceError(f"{a.path}: duplicate trajectory id {t.id!r}")
        ids.add(t.id)
        Trajectory.from_rounds(t.id, t.rounds(), where=f"{a.path}: trajectory {t.id!r}")
    print(f"OK {a.path} ({fmt}): {len(trajs)} trajectories, {sum(t.n_rounds for t in trajs)} rounds")
    return 0


def cmd_generate(a) -> int:
    from .synthetic import PAPER_TABLE, fit_ok, fit_table, generate, parse_mal, trajectory_stats

    mal = parse_mal(a.mal)
    trajs = generate(mal, a.n, a.seed)
    ok = True
    if mal in PAPER_TABLE:
        print(fit_table(mal, trajs))
        ok = fit_ok(mal, trajs)
        if not ok:
            print("some statistic is off by more than 5%", file=sys.stderr)
    else:
        print(f"MAL {mal}: no §S8 target; generated means:")
        for k, v in trajectory_stats(trajs).items():
            print(f"  {k:<16}{v:>12,.1f}")
    if a.out:
        write_trajectories(a.out, trajs, source=f"dpsim synthetic §S8 generator, mal={mal}, n={a.n}, seed={a.seed}",
                           licence="generated by dpsim (Apache-2.0)", extra={"mal": mal, "seed": a.seed})
        print(f"wrote {a.out}")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dpsim trace", description="Inspect, convert, validate and generate traces.")
    sub = p.add_subparsers(dest="cmd", required=True)
    from . import readers
    fmt_help = f"reader: {', '.join(readers.FORMATS)} (default: sniff)"
    s = sub.add_parser("stats", help="turns, lengths, prefix hits, gaps")
    s.add_argument("path")
    s.add_argument("--format", default=None, help=fmt_help)
    s.add_argument("--out", default=None, help="directory for PNG plots and stats.json")
    s.set_defaults(func=cmd_stats)
    c = sub.add_parser("convert", help="any supported trace -> canonical JSONL")
    c.add_argument("input")
    c.add_argument("output")
    c.add_argument("--format", default=None, help=fmt_help)
    c.set_defaults(func=cmd_convert)
    v = sub.add_parser("validate", help="schema and consistency checks (exit 0/1)")
    v.add_argument("path")
    v.add_argument("--format", default=None, help=fmt_help)
    v.set_defaults(func=cmd_validate)
    g = sub.add_parser("generate", help="synthetic §S8 trajectories and their fit to the paper")
    g.add_argument("--mal", required=True, help="32k, 48k, 64k or a token count")
    g.add_argument("--n", type=int, default=500, help="trajectories (default 500, §S8)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default=None, help="write the trajectories to this canonical file")
    g.set_defaults(func=cmd_generate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.func(args))
    except (TraceError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
