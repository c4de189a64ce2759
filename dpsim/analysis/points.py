"""The public calibration points C1 and C2 (shared/spec/calibration-points.md), as tables.

These are the only paper numbers that may set free parameters; everything else in the paper's
evaluation is held out.  Each table names its source.  ``dpsim validate``
(:mod:`dpsim.analysis.validate`) simulates every point beside its number; the fits in
``calibration/`` (fit_c1, fit_compute_c2, fit_snic) read the same tables from here.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["C1Point", "C1_POINTS", "QUICK_AGENTS", "HEADLINE_RATIO", "HEADLINE", "MOTIVATION_CTX",
           "MOTIVATION_APPEND", "MOTIVATION", "DS_PREFILL_INPUT_TOK_S_NODE", "DS_CACHE_HIT",
           "DS_DECODE_TOK_S_NODE", "TPOT_LOW_LOAD_S", "TPOT_LOW_LOAD_CLUSTER", "GPUS_PER_NODE"]


# ====================================================================== C1
@dataclass(frozen=True)
class C1Point:
    """One Oracle JCT of C1 (read from the paper's Fig. 7 bars, +-3%)."""

    model: str
    P: int
    D: int
    mal: str
    agents: int
    paper_jct_s: float

    @property
    def name(self) -> str:
        return f"{self.model} {self.P}P{self.D}D {self.mal.upper()} {self.agents} agents"

    @property
    def key(self) -> str:
        return f"{self.model}-{self.P}P{self.D}D-{self.mal}-{self.agents}"


# C1: Oracle offline JCTs (all I/O free), seconds.  Source: the DualPath paper's Fig. 7 bars
# (+-3%), as tabulated in shared/spec/calibration-points.md "C1".
C1_POINTS: tuple[C1Point, ...] = (
    C1Point("ds660b", 2, 4, "64k", 512, 1974.0),
    C1Point("ds660b", 2, 4, "64k", 1024, 2701.0),
    C1Point("ds660b", 2, 4, "64k", 2048, 4935.0),
    C1Point("ds660b", 2, 4, "64k", 4096, 9351.0),
    C1Point("ds27b", 1, 1, "64k", 512, 868.0),
    C1Point("ds27b", 1, 1, "64k", 1024, 1460.0),
    C1Point("ds27b", 1, 1, "64k", 2048, 2406.0),
    C1Point("ds27b", 1, 1, "64k", 4096, 5247.0),
    C1Point("qwen32b", 1, 2, "32k", 128, 524.0),
    C1Point("qwen32b", 1, 2, "32k", 256, 778.0),
    C1Point("qwen32b", 1, 2, "32k", 512, 1175.0),
)
QUICK_AGENTS = {"ds660b": 512, "ds27b": 512, "qwen32b": 128}  # the cheapest C1 point per model (not a paper number)


# ====================================================================== C2
# Headline claim (the DualPath paper's abstract; calibration-points.md "C2"): DualPath over
# Basic offline throughput up to 1.87x (DS 660B), reached at the largest agent count of the
# 64K dataset.  HEADLINE is the scenario the spec places it in (DS 660B 2P4D 64K, 4096 agents).
HEADLINE_RATIO = 1.87
HEADLINE = dict(model="ds660b", P=2, D=4, mal="64k", agents=4096)

# The paper's motivation figure (calibration-points.md "C2"): PE throughput relative to batch
# size 1 for requests of 30K context + 300 appended tokens.
MOTIVATION_CTX = 30_000
MOTIVATION_APPEND = 300
MOTIVATION = {2: 1.66, 3: 2.11, 5: 2.59, 10: 2.92, 20: 3.01}  # batch size -> relative throughput

# DeepSeek's public inference-system overview (V3/R1 on H800 nodes, Feb 2025;
# calibration-points.md "C2"): prefill input tokens/s per node incl. cache hits, the fraction of
# input tokens hitting the on-disk KV cache, decode output tokens/s per node.
DS_PREFILL_INPUT_TOK_S_NODE = 73.7e3
DS_CACHE_HIT = 0.563
DS_DECODE_TOK_S_NODE = 14.8e3

# Online decode speed at low load (calibration-points.md "C2"): TPOT, seconds.
TPOT_LOW_LOAD_S = {"ds660b": 0.030, "ds27b": 0.010}
# The cluster each low-load TPOT is simulated on (P, D): the model's C1 cluster (not a paper number).
TPOT_LOW_LOAD_CLUSTER = {"ds660b": (2, 4), "ds27b": (1, 1)}

GPUS_PER_NODE = 8  # §S2; H800 nodes also have 8 GPUs
