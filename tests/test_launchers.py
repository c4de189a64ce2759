"""Sweeps on real engines (issue #6): the same sweep table under joblib, Ray (a local instance) and
submitit_local; one clear message for a launcher that is not installed; the Optuna search.

The Ray, submitit and Optuna tests skip when their optional plugin is not installed
(``pip install '.[ray]'`` / ``'.[submitit]'`` / ``'.[optuna]'``)."""
import importlib.util
import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from dpsim import launchers
from dpsim.launchers import missing_plugin_message, objective_value

# 2 systems x 2 agent counts at small sizes (each run ~1 s)
SWEEP = ["experiment=offline", "system=basic,dualpath", "workload.agents=8,16", "workload.mal=32k",
         "workload.n_trajectories=16"]
WALL_CLOCK = {"sim_wall_s"}  # the only columns allowed to differ between launchers


def _have(*mods):
    return all(importlib.util.find_spec(m) is not None for m in mods)


def dpsim(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "dpsim.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def _table(d):
    t = pd.read_parquet(d / "sweep.parquet")
    keys = sorted(c for c in t.columns if c.startswith("override."))
    t = t.sort_values(keys).reset_index(drop=True)
    return t[[c for c in t.columns if c not in WALL_CLOCK]]


def _sweep(d, *launcher_args):
    p = dpsim("-m", *SWEEP, f"hydra.sweep.dir={d}", *launcher_args)
    assert p.returncode == 0, p.stderr[-3000:]
    t = _table(d)
    assert len(t) == 4 and (t.status == "ok").all()
    return t


@pytest.fixture(scope="module")
def joblib_table(tmp_path_factory):
    return _sweep(tmp_path_factory.mktemp("joblib"), "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")


@pytest.mark.skipif(not _have("hydra_plugins.hydra_ray_launcher", "ray"),
                    reason="Ray launcher not installed (pip install '.[ray]')")
def test_ray_local_table_equals_joblib(tmp_path, joblib_table):
    t = _sweep(tmp_path / "ray", "hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
               "+hydra.launcher.ray.init.include_dashboard=false")
    pd.testing.assert_frame_equal(t, joblib_table)


@pytest.mark.skipif(not _have("hydra_plugins.hydra_ray_launcher", "ray"),
                    reason="Ray launcher not installed (pip install '.[ray]')")
def test_ray_cluster_preset_composes():
    p = dpsim("hydra/launcher=ray_cluster", "--cfg", "hydra")  # prints the config, runs nothing
    assert p.returncode == 0, p.stderr
    launcher = yaml.safe_load(p.stdout)["hydra"]["launcher"]
    assert launcher["_target_"].endswith("RayLauncher")
    assert launcher["ray"]["init"] == {"address": "auto", "object_store_memory": None}


@pytest.mark.skipif(not _have("hydra_plugins.hydra_submitit_launcher", "submitit"),
                    reason="submitit launcher not installed (pip install '.[submitit]')")
def test_submitit_local_table_equals_joblib(tmp_path, joblib_table):
    d = tmp_path / "submitit"
    t = _sweep(d, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5")
    pd.testing.assert_frame_equal(t, joblib_table)
    assert (d / ".submitit").is_dir()  # submitit's own logs stay out of the table


# --------------------------------------------------------------------------------------------
# a launcher/sweeper that is not installed: one clear message, exit status 2

HIDE = ("import sys\n"
        "for m in sys.argv[1].split(','): sys.modules[m] = None  # as if not installed\n"
        "from dpsim.cli import main\n"
        "sys.exit(main(sys.argv[2:]))\n")


@pytest.mark.parametrize("hidden,args,extra", [
    ("ray,hydra_plugins.hydra_ray_launcher", ["-m", "hydra/launcher=ray", "system=basic,dualpath"], "ray"),
    ("submitit,hydra_plugins.hydra_submitit_launcher", ["-m", "hydra/launcher=submitit_slurm"], "submitit"),
    ("optuna,hydra_plugins.hydra_optuna_sweeper", ["-m", "+search=pd_policy"], "optuna"),
])
def test_missing_plugin_one_clear_message(tmp_path, hidden, args, extra):
    p = subprocess.run([sys.executable, "-c", HIDE, hidden, *args, f"hydra.sweep.dir={tmp_path}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert f"pip install 'dpsim-dualpath[{extra}]'" in lines[0] and "not installed" in lines[0]
    assert "Traceback" not in p.stderr and "Could not" not in p.stderr
    assert not any(tmp_path.iterdir())  # nothing ran


def test_missing_plugin_message_unit(monkeypatch):
    monkeypatch.setattr(launchers, "_available", lambda m: m not in {"ray", "optuna"})
    assert missing_plugin_message(["-m", "system=basic,dualpath"]) is None
    assert missing_plugin_message(["-m", "hydra/launcher=joblib"]) is None
    assert missing_plugin_message(["-m", "hydra/launcher=nonexistent"]) is None  # Hydra's to report
    m = missing_plugin_message(["-m", "hydra/launcher=ray", "+search=pd_policy_online"])
    assert "the Ray launcher" in m and "the Optuna sweeper" in m and "search=pd_policy_online" in m
    assert "pip install 'dpsim-dualpath[optuna,ray]'" in m
    monkeypatch.setattr(launchers, "_available", lambda m: True)
    assert missing_plugin_message(["-m", "hydra/launcher=ray", "+search=pd_policy"]) is None


# --------------------------------------------------------------------------------------------
# the search objective

def test_objective_value():
    obj = {"metric": "prompt_tokens_per_s", "direction": "maximize", "penalty": 0.0}
    off = {"mode": "offline", "prompt_tokens_per_s": 5.0, "truncated": False, "requests_unfinished": 0,
           "ttft_s": {"p90": 0.5}}
    assert objective_value(None, off) is None                       # no objective: returns nothing
    assert objective_value(obj, off) == 5.0
    assert objective_value(obj, None) == 0.0                        # failed run
    assert objective_value(obj, {**off, "truncated": True}) == 0.0  # offline run did not finish
    assert objective_value({**obj, "require_complete": False}, {**off, "truncated": True}) == 5.0
    on = {"mode": "online", "aps": 0.4, "slo_met": True, "truncated": True}
    assert objective_value({**obj, "metric": "aps"}, on) == 0.4
    assert objective_value({**obj, "metric": "aps"}, {**on, "slo_met": False}) == 0.0
    mini = {"metric": "ttft_s.p90", "direction": "minimize"}
    assert objective_value(mini, off) == 0.5                        # dotted key
    assert objective_value(mini, None) == 1e30                      # default penalty: the worst side
    assert objective_value({"metric": "nope"}, off) == -1e30


@pytest.mark.skipif(not _have("hydra_plugins.hydra_optuna_sweeper", "optuna"),
                    reason="Optuna sweeper not installed (pip install '.[optuna]')")
def test_optuna_search_pd_policy(tmp_path):
    d = tmp_path / "search"
    p = dpsim("-m", "+search=pd_policy", "hydra.sweeper.n_trials=4", "workload.agents=8",
              "workload.mal=32k", "workload.n_trajectories=16", f"hydra.sweep.dir={d}")
    assert p.returncode == 0, p.stderr[-3000:]
    res = yaml.safe_load((d / "optimization_results.yaml").read_text())
    assert set(res["best_params"]) == {"cluster.prefill_nodes", "system.dualpath.alpha_s",
                                       "system.dualpath.beta_s", "system.batching.quota_s",
                                       "system.dualpath.z_factor"}
    sweep = pd.read_parquet(d / "sweep.parquet")
    assert len(sweep) == 4 and (sweep.status == "ok").all()
    assert ((sweep.prefill_nodes + sweep.decode_nodes) == 3).all()  # the fixed node budget
    assert (sweep["mode"] == "offline").all()
    trials = pd.read_parquet(d / "search.parquet")
    assert len(trials) == 4 and trials.best.sum() == 1 and bool(trials.best.iloc[0])
    assert trials.objective.iloc[0] == trials.objective.max() == pytest.approx(res["best_value"])
    best = yaml.safe_load((d / "best.yaml").read_text())
    s = json.loads((d / best["job"] / "summary.json").read_text())
    assert s["prompt_tokens_per_s"] == pytest.approx(res["best_value"])
    assert best["summary"]["prefill_nodes"] == res["best_params"]["cluster.prefill_nodes"]
    assert best["feasible"] and best["trials"] == 4
