"""Shared test helpers: composing the real Hydra config, tiny workloads, a fast compute model."""
from __future__ import annotations

import numpy as np
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from dpsim.workload.trajectory import Trajectory


def make_cfg(*overrides: str) -> dict:
    """The resolved config dict that `dpsim <overrides>` would run."""
    with initialize_config_module(config_module="dpsim.conf", version_base=None):
        cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def trajectories(n: int, rounds: int, *, first: int = 4000, append=(100, 600), gen=(20, 200),
                 seed: int = 0) -> list[Trajectory]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        rs = [[int(rng.integers(*append)), int(rng.integers(*gen)), 0] for _ in range(rounds)]
        rs[0][0] = first
        out.append(Trajectory.from_rounds(f"t{i}", rs))
    return out


class FastCompute:
    """A compute model so fast that storage is the bottleneck (for storage-bound checks)."""

    def __init__(self, n_layers=30, kvb=20000, hbm=40e9, scale=1.0):
        self.n_layers = n_layers
        self.kv_bytes_per_token = kvb
        self.hbm_kv_bytes = hbm
        self.hbm_kv_bytes_prefill = hbm
        self.ep_bytes_per_token_layer = 0.0
        self.decode_ctx_cap = None
        # A dense model with no expert parallelism: no all-to-all traffic.
        self.n_moe_layers = 0
        self.ep_size_prefill = self.ep_size_decode = 1
        self.ep_cnic_bytes_per_token_layer_prefill = self.ep_cnic_bytes_per_token_layer_decode = 0.0
        self.s = scale

    def attn_work(self, c, n):
        return n * (c + n / 2)

    def prefill_time(self, n, w, r):
        return self.s * (1e-4 + n * 1e-7)

    def attention_time_forward(self, n, w, r):
        return self.s * n * 1e-8

    def attention_time_layer(self, n, w, r):
        return self.s * n * 1e-8 / self.n_layers

    def decode_coeffs(self):
        return (self.s * 1e-3, self.s * 1e-6, 0.0)
