"""Build the bundled WEKA sample (``traces/weka_sample.jsonl`` = ``dpsim/data/weka_sample.jsonl``).

Run ``python -m dpsim.workload.bundle [SHARED_TRACES_DIR]`` to regenerate both copies from the
WEKA Claude Code session files.  Selection rule (deterministic, no randomness): of the session
files sorted by name, those at positions 1, 5, 9, ... (every fourth, starting with the second)
plus ``trace_0254`` (the sample's session with the most sub-agents, five).  Each sub-agent is its
own trajectory.  The converted rounds follow the WEKA reader's mapping (dpsim.workload.readers.weka).
"""
from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

from .trajectory import write_trajectories

ORIGIN = "github.com/callanjfox/kv-cache-tester"
ORIGIN_COMMIT = "c9b3da54fc2f555942720527b86c1979fcae9bb2"
LICENCE = "Apache-2.0"
BUNDLE_NAME = "weka_sample.jsonl"
EXTRA_SESSION = "trace_0254"


def bundled_path() -> Path:
    """Path of the bundled WEKA sample shipped as package data (``dpsim/data/weka_sample.jsonl``)."""
    p = resources.files("dpsim").joinpath("data", BUNDLE_NAME)
    return Path(str(p))


def select_sessions(weka_dir: Path) -> list[Path]:
    files = sorted(Path(weka_dir).glob("trace_*.json"))
    sel = files[1::4]
    extra = [f for f in files if f.stem == EXTRA_SESSION]
    return sorted(set(sel) | set(extra))


def build(weka_dir: Path, outs: list[Path]) -> Path:
    from .readers import weka

    files = select_sessions(weka_dir)
    if not files:
        raise FileNotFoundError(f"{weka_dir}: no trace_*.json files")
    trajs = [t for f in files for t in weka.read(f)]
    first = write_trajectories(
        outs[0], trajs,
        source=f"WEKA Claude Code sessions, {ORIGIN} @ {ORIGIN_COMMIT}, traces/"
               + ",".join(f.name for f in files),
        licence=f"{LICENCE}; converted by dpsim (dpsim.workload.bundle), see traces/LICENSE-weka.md",
        extra={"origin": ORIGIN, "commit": ORIGIN_COMMIT, "block_size": 64,
               "sessions": [f.stem for f in files]})
    for o in outs[1:]:
        shutil.copyfile(first, o)
    return first


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(__file__).resolve().parents[2]
    shared = Path(argv[0]) if argv else root.parent / "shared" / "traces"
    outs = [root / "traces" / BUNDLE_NAME, root / "dpsim" / "data" / BUNDLE_NAME]
    p = build(shared / "weka_claude_code", outs)
    print(f"wrote {p} ({p.stat().st_size} bytes) and copies: {', '.join(map(str, outs[1:]))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
