"""The workload of a run, from its config (``dpsim/conf/workload/*.yaml``).

``load_workload(cfg)`` returns the agents list (one :class:`Trajectory` per agent).  Keys:

=============== ============================================================================
key             meaning
=============== ============================================================================
source          ``bundled`` (the WEKA sample shipped with dpsim), ``synthetic`` (§S8 generator)
                or ``file`` (``path``)
path            trace file or WEKA session directory (``source: file`` only); relative paths
                are resolved against the working directory, then Hydra's original one, then
                the source checkout's root (the shared traces: ``paths.shared_traces``)
format          reader name (one of ``dpsim.workload.readers.FORMATS``, or an alias) or null =
                sniff
mal             maximum trajectory length in tokens (int, or "32k"/"48k"/"64k"), or null = no
                truncation; required for ``synthetic``
n_trajectories  number of synthetic trajectories (default 500, §S8)
agents          number of agents, or null = one per trajectory
append_scale    multiplies every round's append (§S8 scaling studies; 1.0 = as recorded)
gen_scale       multiplies every round's generation
think           ``zero`` (§S8), ``trace``, or a number scaling the trace's think times
seed            seeds the synthetic generator and the agents' sampling
prefix_tokens   optional [lo, hi]: range of the extra agents' synthetic first round
=============== ============================================================================

Any bad value raises one ``ValueError`` (a ``TraceError`` for trace files) naming the key and the
fix.  Unknown keys are rejected (typos would otherwise be silently ignored), except ``name``,
``description``, ``aps`` (agents per second, read by the online driver, not here) and keys
starting with ``_``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from .trajectory import TraceError, Trajectory

SOURCES = ("bundled", "synthetic", "file")
DEFAULTS = {"source": "bundled", "path": None, "format": None, "mal": None, "n_trajectories": 500,
            "agents": None, "append_scale": 1.0, "gen_scale": 1.0, "think": "zero", "seed": 0,
            "prefix_tokens": None}
KNOWN_KEYS = frozenset(DEFAULTS) | {"name", "description", "aps"}  # aps: read by the online driver


def _plain(cfg) -> dict:
    try:  # OmegaConf DictConfig -> dict with interpolations resolved
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    return dict(cfg)


def _int_key(cfg: dict, key: str, minimum: int, *, allow_none: bool = False):
    v = cfg[key]
    if v is None and allow_none:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        fix = " or null" if allow_none else ""
        raise ValueError(f"workload.{key}: expected an integer >= {minimum}{fix}, got {v!r}")
    return v


def _num_key(cfg: dict, key: str) -> float:
    v = cfg[key]
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            pass
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"workload.{key}: expected a number > 0 (1.0 = as recorded), got {cfg[key]!r}")
    return float(v)


def _resolve_path(p) -> Path:
    path = Path(str(p)).expanduser()
    if path.is_absolute() or path.exists():
        return path
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.utils import get_original_cwd

        if HydraConfig.initialized():
            alt = Path(get_original_cwd()) / path
            if alt.exists():
                return alt
    except (ImportError, ValueError):  # pragma: no cover
        pass
    root = Path(__file__).resolve().parents[2]  # the source checkout (editable install)
    if (root / "pyproject.toml").exists() and (root / path).exists():
        return root / path
    return path


def load_workload(cfg: Mapping) -> list[Trajectory]:
    """The agents list for the workload config ``cfg`` (see the module docstring)."""
    from .readers import load, normalise_format
    from .replay import build_agents, check_think
    from .synthetic import generate, parse_mal

    if not isinstance(cfg, Mapping):
        raise ValueError(f"workload: expected a mapping of keys {sorted(DEFAULTS)}, got {type(cfg).__name__}")
    raw = _plain(cfg)
    unknown = [k for k in raw if k not in KNOWN_KEYS and not str(k).startswith("_")]
    if unknown:
        raise ValueError(f"workload.{unknown[0]}: unknown key; known keys are {', '.join(sorted(DEFAULTS))}")
    c = {**DEFAULTS, **{k: v for k, v in raw.items() if k in DEFAULTS}}

    source = c["source"]
    if not isinstance(source, str) or source.strip().lower() not in SOURCES:
        raise ValueError(f"workload.source: expected one of {', '.join(SOURCES)}, got {source!r}")
    source = source.strip().lower()
    try:
        mal = None if c["mal"] is None else parse_mal(c["mal"])
    except ValueError as e:
        raise ValueError(f"workload.{e}") from None
    seed = _int_key(c, "seed", 0)
    agents = _int_key(c, "agents", 1, allow_none=True)
    append_scale = _num_key(c, "append_scale")
    gen_scale = _num_key(c, "gen_scale")
    try:
        think = check_think(c["think"])
    except ValueError as e:
        raise ValueError(f"workload.{e}") from None
    prefix = c["prefix_tokens"]
    kw = {}
    if prefix is not None:
        if (not isinstance(prefix, (list, tuple)) or len(prefix) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in prefix)
                or not 1 <= prefix[0] <= prefix[1]):
            raise ValueError(f"workload.prefix_tokens: expected [lo, hi] integers with 1 <= lo <= hi "
                             f"or null (default [64, 512]), got {prefix!r}")
        kw["prefix_tokens"] = (int(prefix[0]), int(prefix[1]))
    if source != "file" and c["path"] is not None:
        raise ValueError(f"workload.path: only used with source: file (source is {source!r}); "
                         f"set source: file or path: null")

    if source == "synthetic":
        if mal is None:
            raise ValueError("workload.mal: source synthetic needs a MAL: 32k, 48k or 64k (§S8), "
                             "or another token count")
        n = _int_key(c, "n_trajectories", 1)
        trajs = generate(mal, n, seed)
    elif source == "bundled":
        from .bundle import bundled_path
        from .trajectory import read_trajectories

        trajs = read_trajectories(bundled_path())
    else:
        if c["path"] in (None, ""):
            raise ValueError("workload.path: source file needs path: a trace file or WEKA session "
                             "directory (see traces/FORMAT.md)")
        path = _resolve_path(c["path"])
        if not path.exists():
            raise TraceError(f"workload.path: {path} not found; give an existing trace file "
                             f"(absolute, or relative to the directory dpsim was started in), or for the "
                             f"shared traces set DPSIM_SHARED_TRACES / paths.shared_traces=DIR")
        fmt = c["format"]
        if fmt is not None:
            try:
                fmt = normalise_format(fmt)
            except TraceError as e:
                raise TraceError(f"workload.format: {e}") from None
        trajs = load(path, fmt)

    try:
        return build_agents(trajs, agents, seed=seed, append_scale=append_scale, gen_scale=gen_scale,
                            mal=mal, think=think, **kw)
    except ValueError as e:
        if isinstance(e, TraceError):
            raise
        msg = str(e)
        raise ValueError(msg if msg.startswith("workload.") else f"workload.{msg}") from None
