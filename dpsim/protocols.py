"""Typed interfaces between the mechanism and what plugs into it.

The simulation checks a compute model against :class:`ComputeModel` when it is built and
names any missing member, so a stand-in (tests, what-if models) fails at once with the name,
not deep inside a run.  Policies follow :class:`Policy` (dpsim.scheduling.base.Policy is the
base class that implements it).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class ComputeModel(Protocol):
    """What the engines and policies ask of a compute model (dpsim.engines.compute.ComputeModel)."""

    n_layers: int
    n_moe_layers: int                      # layers whose experts are all-to-all'ed (0: dense)
    kv_bytes_per_token: float
    hbm_kv_bytes: float                    # a decode GPU's HBM for KV
    hbm_kv_bytes_prefill: float            # a prefill GPU's HBM for KV
    ep_size_prefill: int                   # expert-parallel group sizes (1: none)
    ep_size_decode: int
    ep_cnic_bytes_per_token_layer_prefill: float  # EP bytes per token and MoE layer leaving the node
    ep_cnic_bytes_per_token_layer_decode: float
    decode_ctx_cap: int | None             # sparse attention's top-k cap on attended context

    def attn_work(self, cached: float, new: float) -> float: ...
    def prefill_time(self, new_tokens_sum: float, attn_work: float, n_reqs: int) -> float: ...
    def attention_time_forward(self, new_tokens_sum: float, attn_work: float, n_reqs: int) -> float: ...
    def attention_time_layer(self, new_tokens_sum: float, attn_work: float, n_reqs: int) -> float: ...
    def decode_coeffs(self) -> tuple[float, float, float]: ...


COMPUTE_MEMBERS = ("n_layers", "n_moe_layers", "kv_bytes_per_token", "hbm_kv_bytes", "hbm_kv_bytes_prefill",
                   "ep_size_prefill", "ep_size_decode", "ep_cnic_bytes_per_token_layer_prefill",
                   "ep_cnic_bytes_per_token_layer_decode", "decode_ctx_cap", "attn_work", "prefill_time",
                   "attention_time_forward", "attention_time_layer", "decode_coeffs")


def check_compute(compute) -> None:
    missing = [m for m in COMPUTE_MEMBERS if not hasattr(compute, m)]
    if missing:
        raise TypeError(f"compute model {type(compute).__name__} lacks {', '.join(missing)} "
                        f"(see dpsim.protocols.ComputeModel)")


class Policy(Protocol):
    """A scheduling policy (dpsim.scheduling): inter-engine and intra-engine decisions."""

    def submit(self, req) -> None: ...
    def waiting(self) -> int: ...
    def form_batch(self, pe, queue) -> list: ...
    def on_prefill_done(self, req) -> None: ...
    def on_request_done(self, req) -> None: ...
