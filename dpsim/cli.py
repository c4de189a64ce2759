"""``dpsim`` console script.

* ``dpsim [hydra overrides] [-m]`` -- run a simulation (Hydra app; no arguments = the embedded
  default scenario);
* ``dpsim trace {stats,convert,validate,generate} ...`` -- trace tools;
* ``dpsim bound ...`` -- the §S7 closed-form P/D range and aggregate read bandwidth.
"""
from __future__ import annotations

import sys

SUBCOMMANDS = ("trace", "bound")


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
    sys.argv = [sys.argv[0]] + argv
    _hydra_main()
    return 0


def _app(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from .config import ConfigError
    from .runner import format_summary, run
    from .sim import SimulationError, SimulationStalled
    from .workload.trajectory import TraceError

    plain = OmegaConf.to_container(cfg, resolve=True)
    out = HydraConfig.get().runtime.output_dir
    progress = plain.get("output", {}).get("progress", True)
    try:
        summ, _sim = run(plain, out_dir=out, cfg_yaml=OmegaConf.to_yaml(cfg, resolve=True),
                         progress=bool(progress) and sys.stderr.isatty())
    except (ConfigError, TraceError, SimulationError, SimulationStalled, ValueError) as e:
        print(f"dpsim: error: {e}", file=sys.stderr)
        raise SystemExit(2)
    print(format_summary(summ))
    print(f"  outputs: {out}")


def _hydra_main() -> None:
    import hydra

    hydra.main(version_base=None, config_path="conf", config_name="config")(_app)()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
