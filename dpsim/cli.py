"""``dpsim`` console script.

* ``dpsim [hydra overrides] [-m]`` -- run a simulation (Hydra app; no arguments = the embedded
  default scenario);
* ``dpsim trace {stats,convert,validate,generate} ...`` -- trace tools;
* ``dpsim bound ...`` -- the §S7 closed-form P/D range and aggregate read bandwidth;
* ``dpsim validate [--quick] [--out DIR]`` -- calibration points and the paper's qualitative
  claims, simulated vs paper;
* ``dpsim report SWEEP_DIR`` -- standard comparison figures from a multirun's sweep table.
"""
from __future__ import annotations

import sys
from pathlib import Path

SUBCOMMANDS = ("trace", "bound", "validate", "report")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        cmd, rest = argv[0], argv[1:]
        if cmd == "trace":
            from .workload.trace_cli import main as trace_main
            return int(trace_main(rest) or 0)
        if cmd == "bound":
            from .analysis.bound import main as bound_main
            return int(bound_main(rest) or 0)
        if cmd == "validate":
            from .analysis.validate import main as validate_main
            return int(validate_main(rest) or 0)
        if cmd == "report":
            from .report import main as report_main
            return int(report_main(rest) or 0)
    from .launchers import missing_plugin_message
    msg = missing_plugin_message(argv)
    if msg:  # an optional launcher/sweeper (Ray, submitit, Optuna) that is not installed
        print(msg, file=sys.stderr)
        return 2
    sys.argv = [sys.argv[0]] + argv
    _hydra_main()
    return 0


def _app(cfg) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from .config import ConfigError
    from .launchers import objective_value
    from .metrics.outputs import write_json
    from .runner import format_summary, run
    from .sim import SimulationError, SimulationStalled
    from .workload.trajectory import TraceError

    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    overrides = {}
    for o in hc.overrides.task:
        k, _, v = o.partition("=")
        overrides[k.lstrip("+~")] = v
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
        progress = plain.get("output", {}).get("progress", True)
        summ, _sim = run(plain, out_dir=out, cfg_yaml=OmegaConf.to_yaml(cfg, resolve=True),
                         progress=bool(progress) and sys.stderr.isatty() and not multirun,
                         extra={"overrides": overrides})
    except (ConfigError, TraceError, SimulationError, SimulationStalled, ValueError) as e:
        print(f"dpsim: error: {e}", file=sys.stderr)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "error.json", {"error": f"{type(e).__name__}: {e}", "overrides": overrides})
        if multirun:  # the sweep goes on; the failed run is a row of the sweep table
            return objective_value(cfg.get("objective"), None)  # an optimising sweeper's penalty
        raise SystemExit(2)
    print(format_summary(summ))
    print(f"  outputs: {out}")
    return objective_value(plain.get("objective"), summ)  # None unless `objective` is configured


def _hydra_main() -> None:
    import hydra

    hydra.main(version_base=None, config_path="conf", config_name="config")(_app)()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
