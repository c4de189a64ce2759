"""``dpsim`` console script.

* ``dpsim [hydra overrides] [-m]`` -- run a simulation (Hydra app; no arguments = the embedded
  default scenario);
* ``dpsim trace {stats,convert,validate,generate} ...`` -- trace tools;
* ``dpsim bound ...`` -- the §S7 closed-form P/D range and aggregate read bandwidth;
* ``dpsim validate [--quick] [--seeds N] [--out DIR]`` -- calibration points and the paper's
  qualitative claims, simulated vs paper (mean over seeds and its 95% interval);
* ``dpsim sensitivity [--quick] [--seeds N] [--out DIR]`` -- one-at-a-time sweeps of the §S10
  assumptions, a tornado of the Basic/DualPath and DualPath/Oracle ratios (docs/sensitivity.md);
  ``dpsim validate --sensitivity`` runs it after the calibration report;
* ``dpsim report SWEEP_DIR`` -- standard comparison figures from a multirun's sweep table;
* ``dpsim --help`` / ``dpsim --version``.

Every bad input ends in one line on stderr naming the key and the fix, exit status 2, and an
``error.json`` in the run directory (when one can be named).  Ctrl-C / SIGTERM stop a run
cleanly: what was simulated so far is written with ``"status": "interrupted"`` and dpsim exits
130 / 143 without a traceback.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from pathlib import Path

SUBCOMMANDS = ("trace", "bound", "validate", "sensitivity", "report")
_CONF = Path(__file__).resolve().parent / "conf"
_GROUPS = ("cluster", "model", "gpu", "system", "workload", "experiment")
# Hydra flags after which a command line is no longer just overrides: leave those to Hydra.
_HYDRA_FLAGS = {"--cfg", "-c", "--package", "-p", "--info", "-i", "--config-path", "-cp", "--config-name",
                "-cn", "--config-dir", "-cd", "--shell-completion", "-sc", "--hydra-help", "--resolve",
                "--experimental-rerun"}

log = logging.getLogger("dpsim")
# Keys that were replaced by others (an override of the old key says what to write instead).
RENAMED = {"system.oracle": "system=oracle, or system.route_transform=oracle|none (system.oracle was removed)"}


class BelowWarning(logging.Filter):
    """Hydra job logging (conf/config.yaml): INFO to stdout, WARNING and above to stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


class _Term(KeyboardInterrupt):
    """SIGTERM outside the simulation loop (runner.run handles it inside)."""


def _on_term(signum, frame):
    raise _Term()


def version() -> str:
    from importlib import metadata

    from . import __version__
    from .launchers import DIST
    for dist in (DIST, "dpsim"):
        try:
            md = metadata.metadata(dist)
        except metadata.PackageNotFoundError:
            continue
        if (md.get("Summary") or "").lower().find("dualpath") >= 0:  # not PyPI's unrelated `dpsim`
            return f"dpsim {md['Version']} (distribution {dist}; {Path(__file__).resolve().parent})"
    return f"dpsim {__version__} (not installed: {Path(__file__).resolve().parent})"


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (_CONF / group).glob("*.yaml") if not p.stem.startswith("_"))


def help_text() -> str:
    groups = "\n".join(f"  {g:<11} {', '.join(_options(g))}" for g in _GROUPS)
    extra = "\n".join(f"  {g:<11} {', '.join(_options(g))}" for g in ("search", "figure") if _options(g))
    return f"""usage: dpsim [KEY=VALUE ...] [-m]        run a simulation (Hydra app; no arguments: the default scenario)
       dpsim trace {{stats,convert,validate,generate}} ...   trace tools (dpsim trace --help)
       dpsim bound [--P N --D N ...]        the §S7 closed-form P/D range and read bandwidths
       dpsim validate [--quick] [--seeds N] [--out DIR]
                                            calibration points and paper claims, sim vs paper: the
                                            mean over N seeds (default 3; --quick 2) and its 95%
                                            interval; exit status 1 when a point or claim fails
                                            (--sensitivity: the tornado below after it)
       dpsim sensitivity [--quick] [--seeds N] [--out DIR]
                                            one-at-a-time sweeps of the §S10 assumptions: tornado of
                                            Basic/DualPath and DualPath/Oracle (docs/sensitivity.md)
       dpsim report SWEEP_DIR               tables and figures of a multirun's sweep table (replicates
                                            over seed: mean and 95% Student t interval)
       dpsim --version | --help

Config groups (select with GROUP=OPTION, e.g. system=basic; dpsim/conf/):
{groups}
Add-on configs (+GROUP=OPTION):
{extra}

Any value: KEY=VALUE, e.g. cluster.prefill_nodes=2 workload.agents=256 experiment.max_sim_s=600
Sweeps: dpsim -m system=basic,dualpath workload.agents=64,128 [hydra/launcher=joblib|ray|submitit_slurm]
Seeds: seed=N drives every random choice (workload.seed=N pins the workload alone); replicate
with dpsim -m seed=0,1,2 (dpsim report averages them with a 95% interval)
Paper figures: dpsim -m +figure=offline_grid_small (a sweep, the table and the figure; docs/sweeps.md)
Every key and its current value: dpsim --cfg job  (Hydra's own help: dpsim --hydra-help)
Outputs: hydra.run.dir=DIR (default outputs/DATE/TIME): summary.json, Parquet tables, plots,
config.resolved.yaml and dpsim.log.  Bad input: one line naming the key, exit status 2 and
DIR/error.json.  Ctrl-C / SIGTERM: partial results with "status": "interrupted", exit 130 / 143.
Shared traces (workload=weka|mooncake|azure): $DPSIM_SHARED_TRACES (default ../shared/traces).
Docs: README.md, docs/sweeps.md, docs/extending.md."""


def entry() -> int:
    """The ``dpsim`` command and ``python -m dpsim``: first restart with glibc's malloc on huge
    pages (:func:`dpsim.hugepages.reexec_with_malloc_thp`; a no-op where it is set already, off,
    or unavailable), then :func:`main`.  Code calling dpsim in-process uses :func:`main`."""
    from .hugepages import reexec_with_malloc_thp
    reexec_with_malloc_thp()
    return main()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        cmd, rest = argv[0], argv[1:]
        try:
            if cmd == "trace":
                from .workload.trace_cli import main as trace_main
                return int(trace_main(rest) or 0)
            if cmd == "bound":
                from .analysis.bound import main as bound_main
                return int(bound_main(rest) or 0)
            if cmd == "validate":
                from .analysis.validate import main as validate_main
                return int(validate_main(rest) or 0)
            if cmd == "sensitivity":
                from .analysis.sensitivity import main as sensitivity_main
                return int(sensitivity_main(rest) or 0)
            from .report import main as report_main
            return int(report_main(rest) or 0)
        except KeyboardInterrupt:
            print(f"dpsim {cmd}: interrupted", file=sys.stderr)
            return 130
    if any(a in ("-h", "--help") for a in argv):
        print(help_text())
        return 0
    if any(a in ("-V", "--version") for a in argv):
        print(version())
        return 0
    from .launchers import missing_plugin_message
    msg = missing_plugin_message(argv)
    if msg:  # an optional launcher/sweeper (Ray, submitit, Optuna) that is not installed
        print(msg, file=sys.stderr)
        return 2
    pre = precheck(argv)
    if pre is not None:
        line, where = pre
        print(f"dpsim: error: {line}", file=sys.stderr)
        if where is not None:
            _write_error(where, line, {})
        return 2
    sys.argv = [sys.argv[0]] + argv
    try:
        prev = signal.signal(signal.SIGTERM, _on_term)
    except ValueError:  # pragma: no cover - not the main thread
        prev = None
    try:
        _hydra_main()
    except SystemExit as e:
        _collect_if_interrupted(e.code)
        raise
    except KeyboardInterrupt as e:  # outside a run (composition, launcher set-up)
        code = 143 if isinstance(e, _Term) else 130
        print(f"dpsim: interrupted ({'SIGTERM' if code == 143 else 'SIGINT'})", file=sys.stderr)
        _collect_if_interrupted(code)
        return code
    finally:
        if prev is not None:
            signal.signal(signal.SIGTERM, prev)
    return 0


# ------------------------------------------------------------------------------- precheck
def _split_argv(argv: list[str]) -> tuple[list[str], bool] | None:
    """(overrides, multirun) when ``argv`` is only overrides and -m; None otherwise."""
    ovs, multi = [], False
    for a in argv:
        if a in ("-m", "--multirun"):
            multi = True
        elif a.startswith("-"):
            return None
        else:
            ovs.append(a)
    return ovs, multi


def _one_line(e: BaseException) -> str:
    """Hydra's multi-line composition errors as one line with the fix."""
    msg = str(e).strip()
    cause = e.__cause__
    if cause is not None and type(cause).__name__ == "ValidationError" and "full_key:" in str(cause):
        # a value of the wrong type for its schema (dpsim/conf/schema.py): name the key and what it takes
        from .conf.schema import expected
        key = str(cause).split("full_key:", 1)[1].split()[0]
        override = next((ln.split("override ", 1)[1] for ln in msg.splitlines() if "override " in ln), "")
        value = override.partition("=")[2] if override.startswith(key + "=") else None
        if value is None:
            import re
            m = re.search(r"Value '([^']*)'", str(cause))
            value = m.group(1) if m else "?"
        want = expected(key) or str(cause).splitlines()[0]
        return f"{key}={value}: must be {want}"
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    if "Available options in" in msg:
        i = next(i for i, ln in enumerate(lines) if ln.startswith("Available options in"))
        opts = []
        for ln in lines[i + 1:]:
            if ln.startswith("Config search path"):
                break
            if not ln.startswith("_"):
                opts.append(ln)
        head = lines[0].replace("In 'config': ", "")
        return f"{head}; choose one of: {', '.join(opts)}"
    import re
    m = re.match(r"Could not override '([^']+)'", msg)
    if m or "is not in struct" in msg:
        key = m.group(1) if m else next((ln.split(":", 1)[1].strip() for ln in lines
                                          if ln.startswith("full_key:")), "?")
        if key in RENAMED:
            return f"{key}: no such config key any more; use {RENAMED[key]}"
        return (f"{key}: no such config key; check the spelling (`dpsim --cfg job` lists every key), "
                f"or add a new key with +{key}=VALUE")
    if lines and lines[0].startswith("Error parsing override"):
        return f"{lines[0]} ({lines[1] if len(lines) > 1 else 'bad syntax'}); write KEY=VALUE"
    return "; ".join(lines[:3])


def _first_values(overrides: list[str]) -> list[str] | None:
    """One job of a sweep: every sweep override at its first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for o in OverridesParser.create().parse_overrides(overrides):
        key = o.get_key_element().lstrip("+~")
        if o.is_sweep_override() and key in _GROUPS:  # every option of a group sweep must exist
            have = _options(key)
            for v in o.sweep_string_iterator():
                if v not in have:
                    raise ValueError(f"Could not find '{key}/{v}'\nAvailable options in '{key}':\n"
                                     + "\n".join(have))
        if o.is_sweep_override():
            try:
                first = next(iter(o.sweep_string_iterator()))
            except (StopIteration, Exception):
                return None
            out.append(f"{o.get_key_element()}={first}")
        else:
            out.append(o.input_line)
    return out


def precheck(argv: list[str]) -> tuple[str, Path | None] | None:
    """Compose the command line's config before Hydra runs it: a composition error (unknown key or
    option, bad override syntax) or an output directory that cannot be written is returned as
    (one line, where to write error.json or None).  None: nothing wrong found (or a command line
    with Hydra flags, left to Hydra)."""
    split = _split_argv(argv)
    if split is None:
        return None
    overrides, multi = split
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    hydra_only = [o for o in overrides if o.lstrip("+~").startswith("hydra.")]
    try:
        one = _first_values(overrides) if multi else overrides
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        return _one_line(e), _error_dir(hydra_only, multi)
    if one is None:
        return None
    try:
        with initialize_config_module(config_module="dpsim.conf", version_base=None):
            cfg = compose(config_name="config", overrides=one, return_hydra_config=True)
            key = "hydra.sweep.dir" if multi else "hydra.run.dir"
            out = Path(str(OmegaConf.select(cfg, key)))
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        return _one_line(e), _error_dir(hydra_only, multi)
    bad = _unwritable(out, float(OmegaConf.select(cfg, "limits.min_free_disk_bytes")))
    if bad:
        key = "hydra.sweep.dir" if multi else "hydra.run.dir"
        return f"{key}={out}: {bad}; choose another {key}=DIR", None
    return None


def _error_dir(hydra_overrides: list[str], multi: bool) -> Path | None:
    """The run (or sweep) directory that the hydra.* overrides alone give, or None."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    try:
        with initialize_config_module(config_module="dpsim.conf", version_base=None):
            cfg = compose(config_name="config", overrides=hydra_overrides, return_hydra_config=True)
            d = Path(str(OmegaConf.select(cfg, "hydra.sweep.dir" if multi else "hydra.run.dir")))
    except Exception:
        return None
    return None if _unwritable(d) else d


def _unwritable(d: Path, min_free: float | None = None) -> str | None:
    """Why ``d`` cannot hold a run's outputs, or None (``min_free``: the run's
    ``limits.min_free_disk_bytes``; None: the value in config.yaml)."""
    p = d.resolve() if d.is_absolute() else (Path.cwd() / d)
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    try:
        import shutil
        free = shutil.disk_usage(probe).free
    except OSError:  # pragma: no cover
        return None
    if free < (_min_free_bytes() if min_free is None else min_free):
        return f"only {free / 1e6:.3g} MB free on the file system of {probe} (limits.min_free_disk_bytes)"
    return None


def _min_free_bytes() -> float:
    import yaml
    cfg = yaml.safe_load((_CONF / "config.yaml").read_text())
    return float(cfg["limits"]["min_free_disk_bytes"])


def _write_error(d: Path, line: str, overrides: dict, status: str = "failed", **extra) -> None:
    from .metrics.outputs import write_json
    try:
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "error.json", {"error": line, "status": status, "overrides": overrides, **extra})
    except OSError:  # the directory itself is the problem: the stderr line is all there is
        pass


# ------------------------------------------------------------------------------- the Hydra app
_SWEEP_DIR: list[Path] = []


def _collect_if_interrupted(code) -> None:
    """A sweep stopped by a signal still gets its sweep table (of the jobs that wrote results)."""
    if code in (130, 143) and _SWEEP_DIR:
        from .sweep import collect
        try:
            df = collect(_SWEEP_DIR[0])
            print(f"sweep table (interrupted sweep): {_SWEEP_DIR[0] / 'sweep.parquet'} ({len(df)} runs)",
                  file=sys.stderr)
        except Exception as e:  # pragma: no cover
            print(f"dpsim: sweep table not written ({type(e).__name__}: {e})", file=sys.stderr)


def _app(cfg) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from .config import ConfigError
    from .launchers import objective_value
    from .runner import Interrupted, format_summary, run
    from .sim import SimulationError, SimulationStalled
    from .workload.trajectory import TraceError

    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    overrides = {}
    for o in hc.overrides.task:
        k, _, v = o.partition("=")
        overrides[k.lstrip("+~")] = v
    multirun = hc.mode == RunMode.MULTIRUN
    if multirun and not _SWEEP_DIR:
        _SWEEP_DIR.append(Path(hc.sweep.dir))
    plain = None
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
        progress = plain.get("output", {}).get("progress", True)
        mode = ("bar" if sys.stderr.isatty() and not multirun else "log") if progress is True else False
        summ, _sim = run(plain, out_dir=out, cfg_yaml=OmegaConf.to_yaml(cfg, resolve=True),
                         progress=True if mode == "bar" else mode, extra={"overrides": overrides})
    except Interrupted as e:
        name = signal.Signals(e.signum).name
        if e.summary is not None:
            log.info(format_summary(e.summary))
            log.warning(f"dpsim: interrupted by {name}: partial results in {out} (status: interrupted)")
        else:
            log.warning(f"dpsim: interrupted by {name} while writing {out}")
            _write_error(out, f"interrupted by {name}", overrides, status="interrupted")
        raise SystemExit(e.exit_code)
    except KeyboardInterrupt as e:  # before the simulation started (loading, building)
        name = "SIGTERM" if type(e).__name__ in ("_Stop", "_Term") else "SIGINT"
        log.warning(f"dpsim: interrupted by {name} before the simulation started; nothing simulated")
        _write_error(out, f"interrupted by {name} before the simulation started", overrides,
                     status="interrupted")
        raise SystemExit(143 if name == "SIGTERM" else 130)
    except (ConfigError, TraceError, SimulationError, SimulationStalled, ValueError) as e:
        return _failed(out, f"{e}", f"{type(e).__name__}: {e}", overrides, multirun, cfg)
    except OSError as e:  # the output directory: permissions, a full disk
        where = e.filename or out
        return _failed(out, f"hydra.run.dir={out}: cannot write {where} ({e.strerror or e}); free space "
                            f"or choose another hydra.run.dir=DIR", f"{type(e).__name__}: {e}",
                       overrides, multirun, cfg)
    except Exception as e:  # a bug: in a sweep, a failed row (with the traceback) and the sweep goes on
        tb = traceback.format_exc()
        _write_error(out, f"{type(e).__name__}: {e}", overrides, traceback=tb)
        if multirun:
            log.error(f"dpsim: error (internal, job {out.name}): {type(e).__name__}: {e}; traceback in "
                      f"{out / 'error.json'}")
            return objective_value(cfg.get("objective"), None)
        raise
    log.info(format_summary(summ))
    log.info(f"  outputs: {out}")
    return objective_value(plain.get("objective"), summ)  # None unless `objective` is configured


def _failed(out: Path, line: str, err: str, overrides: dict, multirun: bool, cfg):
    from .launchers import objective_value

    log.error(f"dpsim: error: {line}")
    _write_error(out, err, overrides)
    if multirun:  # the sweep goes on; the failed run is a row of the sweep table
        return objective_value(cfg.get("objective"), None)  # an optimising sweeper's penalty
    raise SystemExit(2)


def _hydra_main() -> None:
    import hydra

    from . import conf  # noqa: F401 -- registers the schemas (dpsim_schema) in Hydra's ConfigStore
    from .sweep import register_sweepers

    register_sweepers()  # hydra/sweeper=grids|capacity (the paper's figures)

    hydra.main(version_base=None, config_path="conf", config_name="config")(_app)()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
