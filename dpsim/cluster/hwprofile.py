"""Hardware profiles (schema in calibration/PROFILE.md): load, validate, evaluate.

A profile is a YAML file with per-link latency/bandwidth models, sharing groups and a compute
section.  The measurement and fitting that write profiles live in ``calibration/``; reading
them is the simulator's (``dpsim.cluster.profile`` prices the cluster's links from one), so it
is here, and ``dpsim.calibration.profile`` re-exports these names::

    from dpsim.cluster.hwprofile import load_profile, transfer_time
    prof = load_profile("calibration/profiles/c3_h100_reference.yaml")
    transfer_time(prof, "h2d", 16 << 20)                      # one 16 MiB copy
    transfer_time(prof, "h2d", 61 * (64 << 10), n_messages=61)  # 61 Layer Blocks one by one
    transfer_time(prof, "h2d", 61 * (64 << 10), n_messages=61, batched=True)

``transfer_time`` model (one transfer alone on its link)::

    t1(n)  = latency_s + n / bandwidth_Bps         (or the piece of ``pieces`` holding n)
    T(N, m) = t1(N/m) + (m - 1) * max(per_message, (N/m) / bandwidth_Bps)

where ``per_message`` is ``per_message_batched_s`` when ``batched`` (falling
back to ``per_message_s``), i.e. each extra message costs its submission or
its wire time, whichever is larger (submission and DMA overlap).
"""
from __future__ import annotations

import math
import os
from numbers import Real

__all__ = ["ProfileError", "load_profile", "validate_profile", "transfer_time", "single_time",
           "link_names", "sharing_total", "gemm_time", "attention_time", "dump_profile"]

LINK_KEYS = {
    "latency_s": "required, seconds >= 0: time of a zero-byte transfer",
    "bandwidth_Bps": "required, > 0: one transfer's asymptotic bandwidth",
    "per_message_s": "optional, seconds >= 0: submission cost per block issued one by one",
    "per_message_batched_s": "optional, seconds >= 0: per block when batched",
    "per_message_graph_s": "optional, seconds >= 0: per block when replayed from a CUDA graph",
    "batched_method": "optional, str: how the batched numbers were produced",
    "pieces": "optional, list of {from_bytes, to_bytes, latency_s, bandwidth_Bps}",
    "fit": "optional, mapping: fit quality (mape, max_err, n_train, n_heldout, ...)",
    "per_message_fit": "optional, mapping: fit quality of the per-message costs",
    "points": "optional, list of the measured/quoted points the link was built from",
    "source": "optional, str: where the numbers come from",
    "note": "optional, str",
    "storage_weight": "optional, >= 1 (storage write links): bytes of the shared storage capacity one "
                      "written byte consumes, a read byte 1 (dpsim.calibration.mixed; dpsim.cluster.profile)",
    "storage_weight_fit": "optional, mapping: fit quality and source of storage_weight",
}
PIECE_KEYS = {"from_bytes", "to_bytes", "latency_s", "bandwidth_Bps"}
SHARING_KEYS = {"kinds", "total_Bps", "directions", "fit", "source", "note", "binding", "points"}
TOP_KEYS = {"meta", "links", "sharing", "compute", "schema_version"}
COMPUTE_KEYS = {"meta", "gemm", "attention", "decode", "hbm", "source", "note"}


class ProfileError(ValueError):
    """A profile is malformed; ``key`` is the dotted path of the offending entry."""

    def __init__(self, key: str, message: str, path: str | None = None):
        self.key = key
        where = f"{path}: " if path else ""
        super().__init__(f"{where}profile key {key!r}: {message}")


def _num(v, key, path, lo=None, lo_strict=False, allow_none=False):
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, Real) or (isinstance(v, float) and math.isnan(v)):
        raise ProfileError(key, f"must be a number, got {v!r}", path)
    if lo is not None and (v <= lo if lo_strict else v < lo):
        raise ProfileError(key, f"must be {'>' if lo_strict else '>='} {lo}, got {v!r}", path)


def validate_profile(p, path: str | None = None) -> dict:
    """Check the structure; raise :class:`ProfileError` naming the bad key."""
    if not isinstance(p, dict):
        raise ProfileError("<root>", f"a profile is a mapping, got {type(p).__name__}", path)
    for k in p:
        if k not in TOP_KEYS:
            raise ProfileError(k, f"unknown top-level key (allowed: {sorted(TOP_KEYS)})", path)
    for k in ("meta", "links"):
        if k not in p:
            raise ProfileError(k, "missing", path)
    meta = p["meta"]
    if not isinstance(meta, dict):
        raise ProfileError("meta", "must be a mapping", path)
    if "source" not in meta:
        raise ProfileError("meta.source", "missing (say where the numbers come from)", path)
    links = p["links"]
    if not isinstance(links, dict) or not links:
        raise ProfileError("links", "must be a non-empty mapping of link kinds", path)
    for kind, link in links.items():
        base = f"links.{kind}"
        if not isinstance(link, dict):
            raise ProfileError(base, "must be a mapping", path)
        for k in link:
            if k not in LINK_KEYS:
                raise ProfileError(f"{base}.{k}", f"unknown key (allowed: {sorted(LINK_KEYS)})", path)
        for k in ("latency_s", "bandwidth_Bps"):
            if k not in link:
                raise ProfileError(f"{base}.{k}", "missing", path)
        _num(link["latency_s"], f"{base}.latency_s", path, lo=0)
        _num(link["bandwidth_Bps"], f"{base}.bandwidth_Bps", path, lo=0, lo_strict=True)
        for k in ("per_message_s", "per_message_batched_s", "per_message_graph_s"):
            if k in link:
                _num(link[k], f"{base}.{k}", path, lo=0, allow_none=True)
        if "storage_weight" in link:
            _num(link["storage_weight"], f"{base}.storage_weight", path, lo=1)
        if "pieces" in link and link["pieces"] is not None:
            pcs = link["pieces"]
            if not isinstance(pcs, list) or not pcs:
                raise ProfileError(f"{base}.pieces", "must be a non-empty list", path)
            prev_to = None
            for i, pc in enumerate(pcs):
                pk = f"{base}.pieces[{i}]"
                if not isinstance(pc, dict):
                    raise ProfileError(pk, "must be a mapping", path)
                for k in pc:
                    if k not in PIECE_KEYS:
                        raise ProfileError(f"{pk}.{k}", f"unknown key (allowed: {sorted(PIECE_KEYS)})", path)
                for k in PIECE_KEYS:
                    if k not in pc:
                        raise ProfileError(f"{pk}.{k}", "missing", path)
                _num(pc["bandwidth_Bps"], f"{pk}.bandwidth_Bps", path, lo=0, lo_strict=True)
                _num(pc["latency_s"], f"{pk}.latency_s", path)
                _num(pc["from_bytes"], f"{pk}.from_bytes", path, lo=0)
                _num(pc["to_bytes"], f"{pk}.to_bytes", path, lo=0)
                if pc["to_bytes"] <= pc["from_bytes"]:
                    raise ProfileError(f"{pk}.to_bytes", "must exceed from_bytes", path)
                if prev_to is not None and pc["from_bytes"] != prev_to:
                    raise ProfileError(f"{pk}.from_bytes", f"must equal the previous piece's to_bytes {prev_to}", path)
                prev_to = pc["to_bytes"]
    sharing = p.get("sharing") or {}
    if not isinstance(sharing, dict):
        raise ProfileError("sharing", "must be a mapping", path)
    for name, sh in sharing.items():
        base = f"sharing.{name}"
        if not isinstance(sh, dict):
            raise ProfileError(base, "must be a mapping", path)
        for k in sh:
            if k not in SHARING_KEYS:
                raise ProfileError(f"{base}.{k}", f"unknown key (allowed: {sorted(SHARING_KEYS)})", path)
        if "kinds" not in sh or not isinstance(sh["kinds"], list) or not sh["kinds"]:
            raise ProfileError(f"{base}.kinds", "must be a non-empty list of link kinds", path)
        for kd in sh["kinds"]:
            if kd not in links:
                raise ProfileError(f"{base}.kinds", f"names link {kd!r}, which is not under links", path)
        if "total_Bps" not in sh:
            raise ProfileError(f"{base}.total_Bps", "missing", path)
        _num(sh["total_Bps"], f"{base}.total_Bps", path, lo=0, lo_strict=True)
        if "directions" in sh and sh["directions"] not in (1, 2):
            raise ProfileError(f"{base}.directions", "must be 1 or 2", path)
    comp = p.get("compute")
    if comp is not None:
        if not isinstance(comp, dict):
            raise ProfileError("compute", "must be a mapping", path)
        for k in comp:
            if k not in COMPUTE_KEYS:
                raise ProfileError(f"compute.{k}", f"unknown key (allowed: {sorted(COMPUTE_KEYS)})", path)
        att = comp.get("attention")
        if att is not None:
            for k in ("a_s", "b_s_per_flop", "heads", "head_dim"):
                if k not in att:
                    raise ProfileError(f"compute.attention.{k}", "missing", path)
        for dt, g in (comp.get("gemm") or {}).items():
            for k in ("overhead_s", "flops_per_s", "mem_Bps"):
                if k not in g:
                    raise ProfileError(f"compute.gemm.{dt}.{k}", "missing", path)
    return p


def load_profile(path: str | os.PathLike) -> dict:
    """Read and validate a profile YAML; raise :class:`ProfileError` on a bad key."""
    import yaml

    path = os.fspath(path)
    with open(path) as f:
        try:
            p = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ProfileError("<yaml>", f"not valid YAML ({e})", path) from None
    return validate_profile(p, path)


def dump_profile(p: dict, path: str, header: str = "") -> None:
    import yaml

    validate_profile(p)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        if header:
            for line in header.strip().splitlines():
                f.write(f"# {line}\n")
        yaml.safe_dump(_plain(p), f, sort_keys=False, width=110)


def _plain(x):
    """numpy scalars -> python, tuples -> lists (for yaml.safe_dump)."""
    import numpy as np

    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    return x


def link_names(p: dict) -> list[str]:
    return list(p["links"])


def _link(p: dict, kind: str) -> dict:
    try:
        return p["links"][kind]
    except KeyError:
        raise ProfileError(f"links.{kind}", f"no such link kind (have {sorted(p['links'])})") from None


def single_time(link: dict, nbytes: float) -> float:
    """Time of one transfer of ``nbytes`` alone on ``link``."""
    pcs = link.get("pieces")
    if pcs:
        pc = pcs[-1]
        for cand in pcs:
            if nbytes < cand["to_bytes"]:
                pc = cand
                break
        t = pc["latency_s"] + nbytes / pc["bandwidth_Bps"]
        return max(t, link["latency_s"] if nbytes > 0 else 0.0, 0.0)
    return link["latency_s"] + nbytes / link["bandwidth_Bps"]


def transfer_time(profile: dict, kind: str, nbytes: float, n_messages: int = 1,
                  batched: bool = False) -> float:
    """Seconds to move ``nbytes`` in total over link ``kind``, as ``n_messages``
    equal blocks issued one by one (``batched=False``) or in one batch."""
    link = _link(profile, kind)
    if nbytes < 0:
        raise ValueError("nbytes must be >= 0")
    m = max(1, int(n_messages))
    if m == 1:
        return single_time(link, nbytes)
    b = nbytes / m
    per = None
    if batched:
        per = link.get("per_message_batched_s")
    if per is None:
        per = link.get("per_message_s") or 0.0
    wire = b / link["bandwidth_Bps"]
    return single_time(link, b) + (m - 1) * max(per, wire)


def sharing_total(profile: dict, kinds) -> float | None:
    """The tightest ``total_Bps`` of a sharing group covering all ``kinds``."""
    kinds = set(kinds)
    best = None
    for sh in (profile.get("sharing") or {}).values():
        if kinds <= set(sh.get("kinds", ())):
            if best is None or sh["total_Bps"] < best:
                best = sh["total_Bps"]
    return best


def gemm_time(profile: dict, M: int, N: int, K: int, dtype: str = "bf16") -> float:
    """Roofline fit: overhead + max(2MNK / flops_per_s, bytes / mem_Bps)."""
    try:
        g = profile["compute"]["gemm"][dtype]
    except (KeyError, TypeError):
        raise ProfileError(f"compute.gemm.{dtype}", "no GEMM fit for this dtype in the profile") from None
    elt = {"bf16": 2, "fp16": 2, "fp8": 1}.get(dtype, 2)
    flops = 2.0 * M * N * K
    nbytes = (M * K + N * K) * elt + M * N * 2
    return g["overhead_s"] + max(flops / g["flops_per_s"], nbytes / g["mem_Bps"])


def attention_time(profile: dict, cached: int, new: int, heads: int | None = None,
                   head_dim: int | None = None) -> float:
    """Fitted attention-layer time for one request: ``cached`` tokens already
    in the KV cache, ``new`` tokens computed now (see PROFILE.md)."""
    try:
        a = profile["compute"]["attention"]
    except (KeyError, TypeError):
        raise ProfileError("compute.attention", "no attention fit in the profile") from None
    h = heads or a["heads"]
    d = head_dim or a["head_dim"]
    hd = h * d
    flops = 4.0 * hd * new * (cached + new / 2.0)
    kv_bytes = 2.0 * 2.0 * hd * (cached + new)  # K and V, 2 bytes each
    return (a["a_s"] + a["b_s_per_flop"] * flops + a.get("c_s_per_new_token", 0.0) * new
            + a.get("d_s_per_kv_byte", 0.0) * kv_bytes)
