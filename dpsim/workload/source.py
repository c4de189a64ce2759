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
n_trajectories  number of synthetic trajectories (§S8: 500)
agents          number of agents, or null = one per trajectory
append_scale    multiplies every round's append (§S8 scaling studies; 1.0 = as recorded)
gen_scale       multiplies every round's generation
think           ``zero`` (§S8), ``trace``, or a number scaling the trace's think times
seed            seeds the synthetic generator and the agents' sampling; null = the run's top-level
                ``seed`` (:func:`workload_seed`; ``load_workload(cfg, seed=...)`` passes it)
prefix_tokens   optional [lo, hi]: range of the extra agents' synthetic first round
spread          optional (synthetic only): multiplier on the generator's fixed log-normal spreads
                (the length distribution's shape, §S10); 1.0 = the calibrated shape
knobs           optional (synthetic only): overrides of the calibrated generator knobs
                (``dpsim.workload.synthetic.Knobs`` fields), e.g. recalibrated for another spread
=============== ============================================================================

Every key's type and range is in the schema (``dpsim.conf.schema.WorkloadSchema``); the values
are in the YAML (``dpsim/conf/workload/*.yaml``), so ``cfg`` must carry every key the schema
requires.  Any bad value raises one ``ValueError`` (a ``TraceError`` for trace files) naming the key
and the fix.  Unknown keys are rejected (typos would otherwise be silently ignored); the schema
also knows ``name``, ``description`` and ``aps`` (agents per second, read by the online driver).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .trajectory import TraceError, Trajectory

def _plain(cfg) -> dict:
    try:  # OmegaConf DictConfig -> dict with interpolations resolved
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    return dict(cfg)


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


def workload_seed(sub_seed, top_seed):
    """The seed the workload's random choices use: ``workload.seed`` where it is an integer (pinned),
    else (null) the run's top-level ``seed`` itself -- so ``seed=0`` gives what ``workload.seed: 0``
    gave when every workload YAML pinned it, and ``dpsim seed=N`` changes the workload.  None when
    both are null (nothing to derive from)."""
    return sub_seed if sub_seed is not None else top_seed


def load_workload(cfg: Mapping, *, seed: int | None = None) -> list[Trajectory]:
    """The agents list for the workload config ``cfg`` (see the module docstring).  ``seed``: the
    run's top-level seed, used where ``cfg``'s ``seed`` is null (:func:`workload_seed`)."""
    from .readers import load, normalise_format
    from .replay import build_agents, check_think
    from .synthetic import generate, parse_mal

    from ..conf.schema import check_group

    if not isinstance(cfg, Mapping):
        raise ValueError(f"workload: expected a mapping (dpsim/conf/workload/*.yaml), got {type(cfg).__name__}")
    c = _plain(cfg)
    check_group("workload", c)  # every key known, present and of its type and range
    source = c["source"]
    try:
        mal = None if c["mal"] is None else parse_mal(c["mal"])
    except ValueError as e:
        raise ValueError(f"workload.{e}") from None
    agents = c["agents"]
    seed = workload_seed(c["seed"], seed)
    if seed is None:
        raise ValueError("workload.seed: null means the run's top-level seed, and none was given: set "
                         "workload.seed to an integer, or call load_workload(cfg, seed=<top-level seed>)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0 (the top-level seed), got {seed!r}")
    append_scale, gen_scale = float(c["append_scale"]), float(c["gen_scale"])
    try:
        think = check_think(c["think"])
    except ValueError as e:
        raise ValueError(f"workload.{e}") from None
    prefix = c.get("prefix_tokens")
    kw = {}
    if prefix is not None:
        if len(prefix) != 2 or not 1 <= prefix[0] <= prefix[1]:
            raise ValueError(f"workload.prefix_tokens: expected [lo, hi] integers with 1 <= lo <= hi "
                             f"or null, got {prefix!r}")
        kw["prefix_tokens"] = (int(prefix[0]), int(prefix[1]))
    if source != "synthetic" and (c.get("spread") not in (None, 1, 1.0) or c.get("knobs")):
        raise ValueError(f"workload.spread / workload.knobs: only used with source: synthetic (source is "
                         f"{source!r}); drop them or set source: synthetic")
    if source != "file" and c["path"] is not None:
        raise ValueError(f"workload.path: only used with source: file (source is {source!r}); "
                         f"set source: file or path: null")

    if source == "synthetic":
        if mal is None:
            raise ValueError("workload.mal: source synthetic needs a MAL: 32k, 48k or 64k (§S8), "
                             "or another token count")
        shape = {} if c.get("spread") is None else {"spread": float(c["spread"])}
        try:
            trajs = generate(mal, c["n_trajectories"], seed, **shape, **dict(c.get("knobs") or {}))
        except ValueError as e:
            raise ValueError(f"workload.{e}") from None
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
