"""The paper's experiments as sweeps over dpsim's Hydra config (§S8, §S9).

Each figure is a list of runs, each run a list of Hydra overrides; ``scale`` picks the paper's
sizes or a small version for quick looks (CI, laptops).  The runner (experiments/run.py)
composes each run's config exactly as ``dpsim <overrides>`` would, runs it, writes one tidy
table per figure and draws a figure shaped like the paper's.

These are predictions: nothing here is tuned to the paper's results beyond the calibration
points (../shared/spec/calibration-points.md).
"""
from __future__ import annotations

# §S9 default P/D per model; §S8 agent counts per model and MAL.
MODELS = {
    "ds660b": {"P": 2, "D": 4},
    "ds27b": {"P": 1, "D": 1},
    "qwen32b": {"P": 1, "D": 2},
}
AGENTS = {
    ("ds660b", "*"): [512, 1024, 2048, 4096],
    ("ds27b", "*"): [512, 1024, 2048, 4096],
    ("qwen32b", "32k"): [128, 256, 512],
    ("qwen32b", "48k"): [128, 256, 512],
    ("qwen32b", "64k"): [32, 64, 128],
}
MALS = ["32k", "48k", "64k"]
SMALL_DIV = 16  # small scale: agent counts divided by this (at least 8)


def _agents(model, mal, scale):
    a = AGENTS.get((model, mal)) or AGENTS[(model, "*")]
    if scale == "small":
        return sorted({max(8, x // SMALL_DIV) for x in a})[:2]
    return a


def _cluster(model, P=None, D=None):
    m = MODELS[model]
    return [f"model={model}", f"cluster.prefill_nodes={P or m['P']}", f"cluster.decode_nodes={D or m['D']}"]


def _small(scale):
    # Small scale also shrinks the synthetic dataset to keep runs short.
    return ["workload.n_trajectories=64"] if scale == "small" else []


def offline_grid(scale):
    runs = []
    mals = MALS if scale == "paper" else ["32k", "64k"]
    for model in MODELS:
        for mal in mals:
            for n in _agents(model, mal, scale):
                for system in ("basic", "dualpath", "oracle"):
                    runs.append(["experiment=offline", *_cluster(model), f"workload.mal={mal}",
                                 f"workload.agents={n}", f"system={system}", *_small(scale)])
    return runs


def pd_ratio(scale):
    runs = []
    n = 2048 if scale == "paper" else 128
    for P, D in ((1, 1), (2, 1), (1, 2)):
        for system in ("basic", "dualpath"):
            runs.append(["experiment=offline", *_cluster("ds27b", P, D), "workload.mal=64k",
                         f"workload.agents={n}", f"system={system}", *_small(scale)])
    return runs


def scaling(scale):
    runs = []
    n = 2048 if scale == "paper" else 128
    for kind in ("append_scale", "gen_scale"):
        for f in (1.0, 1.5, 2.0, 3.0):
            for system in ("basic", "dualpath"):
                runs.append(["experiment=offline", *_cluster("ds660b"), "workload.mal=64k",
                             f"workload.agents={n}", f"workload.{kind}={f}", f"system={system}",
                             *_small(scale)])
    return runs


def ablation(scale):
    runs = []
    n = 4096 if scale == "paper" else 256
    for system in ("basic", "basic_layer", "basic_layer_dpl", "dualpath", "oracle"):
        runs.append(["experiment=offline", *_cluster("ds660b"), "workload.mal=64k",
                     f"workload.agents={n}", f"system={system}", *_small(scale)])
    return runs


def balance(scale):
    # Storage-NIC balance over three nodes (1P2D) and attention-time balance: DualPath's
    # scheduler against round robin.
    runs = []
    n = 2048 if scale == "paper" else 128
    for system in ("round_robin", "dualpath"):
        runs.append(["experiment=offline", *_cluster("ds27b", 1, 2), "workload.mal=64k",
                     f"workload.agents={n}", f"system={system}", "metrics.sample_dt=0.5", *_small(scale)])
    return runs


def online(scale):
    """Online capacity: for each model and system, a ladder of APS values (the runner's
    ``capacity`` post-processing finds the largest APS with slo_met)."""
    runs = []
    aps = {"ds660b": [0.2, 0.4, 0.6, 0.8, 1.2], "ds27b": [0.2, 0.4, 0.6, 0.8, 1.2],
           "qwen32b": [0.05, 0.1, 0.2, 0.3, 0.4]}
    for model in MODELS:
        ladder = aps[model] if scale == "paper" else aps[model][::2]
        for system in ("basic", "dualpath"):
            for a in ladder:
                extra = [] if scale == "paper" else ["experiment.steady_lag_s=300", "experiment.window_s=60",
                                                     "experiment.max_sim_s=900"]
                runs.append(["experiment=online", *_cluster(model), "workload.mal=64k" if model != "qwen32b"
                             else "workload.mal=32k", f"workload.aps={a}", "workload.agents=100000",
                             f"system={system}", *extra, *_small(scale)])
    return runs


def large_scale(scale):
    if scale == "paper":
        return [["experiment=offline", "model=ds660b", "cluster.prefill_nodes=48", "cluster.decode_nodes=96",
                 "workload.mal=64k", "workload.agents=49152", f"system={s}"] for s in ("basic", "dualpath")]
    return [["experiment=offline", "model=ds660b", "cluster.prefill_nodes=8", "cluster.decode_nodes=16",
             "workload.mal=32k", "workload.agents=1024", f"system={s}", *_small(scale)]
            for s in ("basic", "dualpath")]


def headline(scale):
    """Offline DS 660B, 2P4D, 64K, 1024 agents: Basic, DualPath and Oracle (issue #3's one-command
    check: DualPath/Basic and Oracle/DualPath JCT ratios)."""
    n = 1024 if scale == "paper" else 128
    return [["experiment=offline", *_cluster("ds660b"), "workload.mal=64k", f"workload.agents={n}",
             f"system={s}", *_small(scale)] for s in ("basic", "dualpath", "oracle")]


FIGURES = {
    "headline": headline,
    "offline_grid": offline_grid,
    "pd_ratio": pd_ratio,
    "scaling": scaling,
    "ablation": ablation,
    "balance": balance,
    "online": online,
    "large_scale": large_scale,
}


def runs_for(name: str, scale: str) -> list[list[str]]:
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; choose from {sorted(FIGURES)}")
    if scale not in ("paper", "small"):
        raise ValueError(f"scale must be 'paper' or 'small' (got {scale!r})")
    return FIGURES[name](scale)
