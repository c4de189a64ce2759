"""Collecting a multirun sweep into one tidy table.

Every job of ``dpsim -m ...`` writes ``summary.json`` (or ``error.json`` when it failed) into
its own directory; at the end of the sweep :class:`CollectSweep` (a Hydra callback) reads them
all and writes ``sweep.parquet`` and ``sweep.csv`` into the sweep directory: one row per run,
its overrides as columns, summary metrics as columns, failed runs as rows with their error.
``status`` is ``ok`` (a summary was written) or ``failed``/``interrupted`` (an error.json);
``run_status`` is the summary's own ``complete``/``truncated``/``interrupted``.
``collect(DIR)`` does the same for an existing sweep directory.
"""
from __future__ import annotations

import math
import json
import logging
from pathlib import Path

try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, list):
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


def collect(sweep_dir: str | Path):
    """Gather every job of ``sweep_dir`` into a DataFrame; write sweep.parquet/sweep.csv."""
    import pandas as pd

    sweep_dir = Path(sweep_dir)
    rows = []
    for job in sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name)):
        summ = job / "summary.json"
        err = job / "error.json"
        if summ.exists():
            s = json.loads(summ.read_text())
            row = {"job": job.name, "status": "ok", "error": "",
                   "run_status": s.pop("status", "complete")}  # complete | truncated | interrupted
        elif err.exists():
            s = json.loads(err.read_text())
            st = s.pop("status", "failed")
            row = {"job": job.name, "status": "interrupted" if st == "interrupted" else "failed",
                   "error": s.get("error", ""), "run_status": st}
            s.pop("traceback", None)
        else:
            continue
        ov = s.pop("overrides", {}) or {}
        s.pop("_files", None)
        for k, v in ov.items():
            row[f"override.{k}"] = v
        for k, v in _flatten(s).items():
            if k not in ("error",):
                row[k] = v
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        for c in df.columns:
            if df[c].dtype == object:
                vals = [v for v in df[c] if v is not None and v == v]
                if vals and all(isinstance(v, bool) for v in vals):
                    df[c] = df[c].astype("boolean")
                else:
                    df[c] = df[c].map(lambda v: None if v is None or v != v else str(v))
        df.to_parquet(sweep_dir / "sweep.parquet", index=False)
        df.to_csv(sweep_dir / "sweep.csv", index=False)
    return df


class CollectSweep(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        d = Path(config.hydra.sweep.dir)
        if d.exists():
            log = logging.getLogger("dpsim")
            df = collect(d)
            log.info(f"sweep table: {d / 'sweep.parquet'} ({len(df)} runs)")
            if config.get("figure") is not None:  # a paper figure (+figure=...): draw it from the table
                from .figures import draw
                for f in draw(d, df=df):
                    log.info(f"figure: {d / f}")


# --------------------------------------------------------------------------------------------
# sweepers for the paper's experiments (dpsim/conf/figure/*.yaml): any Hydra launcher runs them

try:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
except ImportError:  # pragma: no cover
    BasicSweeper = object


def expand_grids(grids, arguments=(), config_loader=None) -> list[list[str]]:
    """The jobs of a union of grids: each grid (``{key: "v1,v2"}``, as BasicSweeper's ``params``)
    is a Cartesian product, the command line's ``arguments`` are applied to every grid (a swept
    key on the command line replaces the grid's values), and a job that two grids give runs once."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create(config_loader=config_loader)
    jobs: list[list[str]] = []
    seen = set()
    for g in grids or [{}]:
        conf = [f"{k}={v}" for k, v in dict(g).items()] + list(arguments)
        for job in BasicSweeper.split_arguments(parser.parse_overrides(conf), None)[0]:
            key = tuple(sorted(job))
            if key not in seen:
                seen.add(key)
                jobs.append(list(job))
    return jobs


class GridsSweeper(BasicSweeper):
    """``hydra/sweeper=grids``: the union of several Cartesian grids (``hydra.sweeper.grids``),
    handed to the configured launcher (basic, joblib, Ray, submitit) in batches of
    ``max_batch_size``.  A paper figure's runs are such a union (agent counts per model and MAL)."""

    def __init__(self, max_batch_size=None, grids=None, params=None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        from omegaconf import OmegaConf
        g = OmegaConf.to_container(grids, resolve=True) if hasattr(grids, "_get_node") else grids
        self.grids = [dict(x) for x in (g or [])]

    def sweep(self, arguments):
        from omegaconf import OmegaConf

        jobs = expand_grids(self.grids, self._parse_config() + list(arguments),
                            self.hydra_context.config_loader)
        n = self.max_batch_size or len(jobs) or 1
        self.overrides = [jobs[i:i + n] for i in range(0, len(jobs), n)]
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        returns, idx = [], 0
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            returns.append(self.launcher.launch(batch, initial_job_idx=idx))
            idx += len(batch)
        return returns


class CapacitySearch:
    """The one capacity search (§S8 online): the largest ``workload.aps`` whose run meets the SLO.
    From ``start``, multiply / divide by 2 until one run meets the SLO and one does not, then
    bisect geometrically until ``bad / ok <= 1 + tol``; at most ``max_runs`` probes.  A failed run
    (``met`` None) ends the search.  Feed it with :meth:`record`; :meth:`next` is the next APS
    to probe (None: done)."""

    def __init__(self, start: float, tol: float, max_runs: int, min_aps: float):
        self.aps, self.tol, self.max_runs, self.min_aps = float(start), float(tol), int(max_runs), float(min_aps)
        self.ok = self.bad = None
        self.runs = 0
        self.error = ""
        self.done = False

    def next(self):
        return None if self.done else self.aps

    def record(self, aps: float, met, error: str = "") -> None:
        self.runs += 1
        if met is None:
            self.error, self.done = error or "run failed", True
            return
        if met:
            self.ok = aps if self.ok is None else max(self.ok, aps)
        else:
            self.bad = aps if self.bad is None else min(self.bad, aps)
        if self.ok is None:
            self.aps = aps / 2.0
            if self.aps < self.min_aps:
                self.done = True
        elif self.bad is None:
            self.aps = aps * 2.0
        elif self.bad / self.ok > 1 + self.tol:
            self.aps = math.sqrt(self.ok * self.bad)
        else:
            self.done = True
        if self.runs >= self.max_runs:
            self.done = True

    @property
    def converged(self) -> bool:
        return bool(self.ok and self.bad and self.bad / self.ok <= 1 + self.tol)

    def summary(self) -> dict:
        return {"max_aps_within_slo": self.ok if self.ok is not None else 0.0,
                "min_aps_violating": self.bad if self.bad is not None else math.nan,
                "runs": self.runs, "converged": self.converged, "error": self.error}


class CapacitySweeper(GridsSweeper):
    """``hydra/sweeper=capacity``: one :class:`CapacitySearch` of ``workload.aps`` per job of the
    grids (e.g. model x system x seed).  Each round launches the next probe of every unfinished
    search as one batch (in parallel with joblib/Ray/submitit); a probe meets the SLO when its
    summary.json says ``slo_met`` (so the sweep directory must be readable here, as for the sweep
    table).  ``start`` (APS, or a mapping model name -> APS), ``tol``, ``max_runs``, ``min_aps``."""

    def __init__(self, start, tol, max_runs, min_aps, max_batch_size=None, grids=None, params=None) -> None:
        super().__init__(max_batch_size=max_batch_size, grids=grids, params=params)
        from omegaconf import OmegaConf
        self.start = OmegaConf.to_container(start, resolve=True) if hasattr(start, "_get_node") else start
        self.tol, self.max_runs, self.min_aps = tol, max_runs, min_aps

    def _start(self, job: list[str]) -> float:
        if isinstance(self.start, dict):
            model = next((o.split("=", 1)[1] for o in job if o.split("=", 1)[0].lstrip("+") == "model"), None)
            if model not in self.start:
                raise ValueError(f"hydra.sweeper.start has no APS for model={model}; add it")
            return float(self.start[model])
        return float(self.start)

    def sweep(self, arguments):
        from omegaconf import OmegaConf

        if any(a.split("=", 1)[0].lstrip("+~") == "workload.aps" for a in arguments):
            raise ValueError("workload.aps: the capacity sweeper searches it; set hydra.sweeper.start instead")
        searches = [(job, CapacitySearch(self._start(job), self.tol, self.max_runs, self.min_aps))
                    for job in expand_grids(self.grids, self._parse_config() + list(arguments),
                                            self.hydra_context.config_loader)]
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        idx, returns = 0, []
        log = logging.getLogger("dpsim")
        while True:
            live = [(job, s) for job, s in searches if s.next() is not None]
            if not live:
                break
            batch = [job + [f"workload.aps={s.next():.6g}"] for job, s in live]
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=idx)
            for i, ((job, s), r) in enumerate(zip(live, results)):
                d = Path(str(r.hydra_cfg.hydra.runtime.output_dir)) if r.hydra_cfg is not None \
                    else sweep_dir / str(idx + i)
                aps = float(batch[i][-1].split("=", 1)[1])
                p = d / "summary.json"
                if p.exists():
                    s.record(aps, bool(json.loads(p.read_text()).get("slo_met")))
                else:
                    err = d / "error.json"
                    s.record(aps, None, json.loads(err.read_text()).get("error", "") if err.exists() else "no summary")
            idx += len(batch)
            returns.append(results)
        rows = [{"search": " ".join(job), **s.summary()} for job, s in searches]
        (sweep_dir / "capacity_searches.json").write_text(json.dumps(rows, indent=1))
        for r in rows:
            log.info(f"capacity: {r['search']}: max APS within SLO {r['max_aps_within_slo']:.4g} "
                     f"({r['runs']} runs{', converged' if r['converged'] else ''})")
        return returns


# Hydra instantiates a sweeper only from a class it knows under the ``hydra_plugins`` namespace
# (hydra.core.plugins.Plugins), which it fills by scanning installed ``hydra_plugins`` packages.
# dpsim's sweepers live here and are entered in that registry under these names by
# :func:`register_sweepers` (``dpsim`` calls it before Hydra starts), so they work from any install.
SWEEPERS = {"hydra_plugins.dpsim_sweepers.GridsSweeper": GridsSweeper,
            "hydra_plugins.dpsim_sweepers.CapacitySweeper": CapacitySweeper}


def register_sweepers() -> None:
    from hydra.core.plugins import Plugins
    Plugins.instance().class_name_to_class.update(SWEEPERS)
