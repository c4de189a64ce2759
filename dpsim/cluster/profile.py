"""Link parameters of the cluster from a measured hardware profile (calibration/PROFILE.md).

``apply_profile(cfg, profile, mapping)`` returns a copy of a resolved config whose link
capacities, latencies and submission costs come from a profile's measured links, so that the
flow model (the default link backend) predicts what a set of real transports does.  Which
profile link stands for which simulated route is the *mapping*: the hardware-in-the-loop replay
(``dpsim.hw.replay``) executes every simulated transfer with one transport, and the model must be
configured with the links that those transports measured.

Mappings (``MAPPINGS``):

* ``cuda`` -- one host with two GPUs (node 0 = GPU 0 = the PE, node 1 = GPU 1 = the DE), the
  HIL replay's default.  Storage reads/writes are O_DIRECT file I/O (``file_read`` /
  ``file_write``) on one local disk shared by both "nodes"; DRAM -> own GPU is a pinned H2D,
  GPU -> own DRAM a pinned D2H.  The cross-node CNIC routes (DE buffer -> PE GPU, PE GPU -> DE
  buffer) start or end in host DRAM, so they are an H2D into the receiving GPU / a D2H out of
  the sending GPU (host memory is shared on one host): one PCIe traversal, the bandwidth class of
  a 400 Gbps CNIC (~48 GB/s vs ~55 GB/s), sharing the GPU's PCIe direction as the real route
  shares the GPU's CNIC.
* ``cuda_p2p`` -- as ``cuda`` but the cross-node routes priced as GPU peer copies (``p2p``,
  NVLink).  Only for what-ifs: the replay does not execute this mapping (a peer copy moves
  HBM to HBM, while these routes start or end in a DRAM buffer).
* ``cpu`` -- the CI stand-in: every GPU copy is a host memcpy (``memcpy``), storage is file I/O.

``submission`` says how the replay issues a transfer and so which per-block submission cost
the model must charge (``system.submission``): ``chunked`` (the HIL replay: each transfer is a
few large contiguous copies, so per-block costs are 0 and the per-copy cost is in the link
latency), ``per_block`` (one copy per block: ``per_message_s``), ``batched`` (one batched
submission: ``per_message_batched_s``).

Usage::

    from dpsim.cluster.hwprofile import load_profile
    from dpsim.cluster.profile import apply_profile, link_profile
    cfg2 = apply_profile(cfg, load_profile("calibration/profiles/h100_measured.yaml"), "cuda")
    cfg2 = link_profile(cfg)   # cfg["cluster"]["link_profile"] names a profile file (or None)
"""
from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass

from .hwprofile import load_profile, sharing_total

__all__ = ["LinkMapping", "MAPPINGS", "apply_profile", "link_profile", "profile_link_kinds",
           "storage_write_weight", "StorageWriteCost", "weight_storage_writes", "link_profile_write_weight"]


@dataclass(frozen=True)
class LinkMapping:
    """Which profile link kind prices each simulated route (see the module docstring)."""

    name: str
    storage_read: str = "file_read"      # r_storage_read: storage -> node DRAM (SNIC rx)
    storage_write: str = "file_write"    # r_storage_write: node DRAM -> storage (SNIC tx)
    h2d: str = "h2d"                     # r_h2d: node DRAM -> own GPU (loop-back through its CNIC)
    d2h: str = "d2h"                     # r_d2h: GPU -> own node DRAM
    remote_h2d: str = "h2d"              # r_remote_h2d: DE buffer -> PE GPU (cross-node CNIC)
    gpu_to_remote: str = "d2h"           # r_gpu_to_remote_dram: PE GPU -> DE buffer (cross-node CNIC)
    submission: str = "chunked"          # chunked | per_block | batched
    shared_storage: bool = True          # one storage device serves every node (HIL: one local disk)
    executable: bool = True              # dpsim.hw.replay can run it

    def kinds(self) -> dict:
        return {"storage_read": self.storage_read, "storage_write": self.storage_write, "h2d": self.h2d,
                "d2h": self.d2h, "remote_h2d": self.remote_h2d, "gpu_to_remote": self.gpu_to_remote}


MAPPINGS = {
    "cuda": LinkMapping("cuda"),
    "cuda_p2p": LinkMapping("cuda_p2p", remote_h2d="p2p", gpu_to_remote="p2p", executable=False),
    "cpu": LinkMapping("cpu", h2d="memcpy", d2h="memcpy", remote_h2d="memcpy", gpu_to_remote="memcpy"),
}


def _mapping(mapping) -> LinkMapping:
    if mapping is None:
        return MAPPINGS["cuda"]
    if isinstance(mapping, LinkMapping):
        return mapping
    try:
        return MAPPINGS[str(mapping)]
    except KeyError:
        raise ValueError(f"unknown link mapping {mapping!r}; choose one of {sorted(MAPPINGS)}") from None


def profile_link_kinds(mapping) -> dict:
    """route class -> profile link kind for ``mapping`` (name or LinkMapping)."""
    return _mapping(mapping).kinds()


def _link(profile: dict, kind: str) -> dict:
    try:
        return profile["links"][kind]
    except KeyError:
        have = sorted((profile.get("links") or {}))
        raise KeyError(f"profile has no link {kind!r} (needed by the mapping; it has {have})") from None


def _sharing(profile: dict, name: str):
    sh = (profile.get("sharing") or {}).get(name)
    return None if sh is None else float(sh["total_Bps"])


def _covering(profile: dict, kinds) -> float | None:
    """Tightest measured total of a sharing group that covers all ``kinds``."""
    v = sharing_total(profile, kinds)
    return None if v is None else float(v)


def apply_profile(cfg: dict, profile: dict, mapping="cuda") -> dict:
    """A copy of ``cfg`` with cluster link parameters and submission costs from ``profile``.

    Every value set below names the profile key it comes from.  ``profile`` is a loaded profile
    (:func:`dpsim.cluster.hwprofile.load_profile`); ``mapping`` a name in :data:`MAPPINGS` or a
    :class:`LinkMapping`.
    """
    m = _mapping(mapping)
    out = copy.deepcopy(cfg)
    cl = out["cluster"]
    sub = out["system"]["submission"]
    rd, wr = _link(profile, m.storage_read), _link(profile, m.storage_write)
    h2d, d2h = _link(profile, m.h2d), _link(profile, m.d2h)
    remote = _link(profile, m.remote_h2d)

    # --- storage (SNIC) ---------------------------------------------------------------
    cl["snic_Bps"] = float(rd["bandwidth_Bps"])            # links.<storage_read>.bandwidth_Bps (one read alone)
    cl["snic_efficiency"] = 1.0                            # the profile's bandwidth is already the achieved one
    if m.shared_storage:
        # One device serves the reads and writes of every node (the HIL host's one disk): the
        # aggregate `storage` link = sharing.<storage_read>_same.total_Bps (concurrent reads: most
        # storage bytes are reads), else sharing.<group covering storage_read and
        # storage_write>.total_Bps; never below one read alone (links.<storage_read>.bandwidth_Bps:
        # a total fitted below it comes from small concurrent sizes, not from sharing).
        tot = _sharing(profile, f"{m.storage_read}_same") or _covering(profile, [m.storage_read, m.storage_write])
        cl["storage_Bps"] = max(float(tot or 0.0), float(rd["bandwidth_Bps"]))
    cl["storage_latency_s"] = float(rd["latency_s"])       # links.<storage_read>.latency_s (first byte of a read)

    # --- GPU side (CNIC / PCIe) ---------------------------------------------------------
    # links.<h2d>.bandwidth_Bps, links.<d2h>.bandwidth_Bps: one PCIe direction of one GPU (the
    # model has one value for both directions: the smaller).
    cl["pcie_Bps"] = float(min(h2d["bandwidth_Bps"], d2h["bandwidth_Bps"]))
    if m.remote_h2d == m.h2d:
        # CNIC = the GPU's PCIe: a loop-back route crosses cnic_rd and cnic_wr of one GPU, so the
        # CNIC capacity is the duplex total of one GPU's PCIe: sharing.<group of h2d and d2h>.total_Bps
        # (e.g. "h2d+d2h"), else h2d + d2h bandwidths.
        # Never below pcie_Bps: a sharing total measured below one transfer's own bandwidth
        # (CPU-bound memcpy threads) would slow a transfer that runs alone.
        duplex = _covering(profile, [m.h2d, m.d2h]) if m.h2d != m.d2h else _sharing(profile, f"{m.h2d}_same")
        cl["cnic_Bps"] = max(float(duplex or (h2d["bandwidth_Bps"] + d2h["bandwidth_Bps"])), cl["pcie_Bps"])
    else:
        cl["cnic_Bps"] = float(remote["bandwidth_Bps"])   # links.<remote_h2d>.bandwidth_Bps (e.g. p2p)
    cl["cnic_efficiency"] = 1.0                            # achieved bandwidth already
    cl["net_latency_s"] = float(h2d["latency_s"])          # links.<h2d>.latency_s (per-copy latency of a GPU-bound transfer)
    # Host memory feeding both GPUs: sharing.h2d_2gpu.total_Bps (H2D into two GPUs at once) when
    # measured, else sharing.<h2d>_same / 2 x links.<h2d>.bandwidth_Bps; for memcpy mappings the
    # memcpy sharing total (sharing.memcpy_same.total_Bps).
    # (never below pcie_Bps, as above).
    dram = _sharing(profile, f"{m.h2d}_2gpu") if m.h2d != "memcpy" else _sharing(profile, "memcpy_same")
    cl["dram_Bps"] = max(float(dram or 2.0 * h2d["bandwidth_Bps"]), cl["pcie_Bps"])

    # --- submission costs (system.submission, §S4) -------------------------------------------
    if m.submission == "chunked":
        # The replay issues each transfer as a few large contiguous copies, not one per block:
        # no per-block cost (the per-copy cost is in net_latency_s / storage_latency_s above).
        sub["layer_block_s"] = 0.0
        sub["full_block_s"] = 0.0
        sub["storage_block_s"] = 0.0
    elif m.submission in ("per_block", "batched"):
        key = "per_message_s" if m.submission == "per_block" else "per_message_batched_s"

        def per(link):
            v = link.get(key)
            if v is None:
                v = link.get("per_message_s") or 0.0
            return float(v)
        sub["layer_block_s"] = per(h2d)                    # links.<h2d>.per_message(_batched)_s
        sub["full_block_s"] = per(h2d)                     # links.<h2d>.per_message(_batched)_s
        sub["storage_block_s"] = per(rd)                   # links.<storage_read>.per_message(_batched)_s
    else:
        raise ValueError(f"mapping {m.name}: submission must be chunked, per_block or batched "
                         f"(got {m.submission!r})")
    for k, v in cl.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"profile gave cluster.{k}={v}")
    return out


def link_profile(cfg: dict, mapping=None) -> dict:
    """``cfg`` with ``cluster.link_profile`` (a profile YAML path, or None: ``cfg`` unchanged)
    applied with ``mapping`` (default ``cluster.link_mapping`` if the config has one, else
    ``cuda``).  A relative path is taken from the working directory, else from the repository
    root (``calibration/profiles/...``)."""
    path = (cfg.get("cluster") or {}).get("link_profile")
    if not path:
        return cfg
    if mapping is None:
        mapping = cfg["cluster"].get("link_mapping") or "cuda"
    return apply_profile(cfg, load_profile(_profile_path(path)), mapping)


def _profile_path(path) -> str:
    p = os.fspath(path)
    if not os.path.isabs(p) and not os.path.exists(p):
        here = os.path.join(os.path.dirname(__file__), "..", "..", p)
        if os.path.exists(here):
            p = here
    return p


def link_profile_write_weight(cfg: dict) -> float:
    """The storage write weight of the profile ``cluster.link_profile`` names (1.0 without a
    profile, or when the profile has none), read with ``cluster.link_mapping``."""
    path = (cfg.get("cluster") or {}).get("link_profile")
    if not path:
        return 1.0
    mapping = cfg["cluster"].get("link_mapping") or "cuda"
    return storage_write_weight(load_profile(_profile_path(path)), mapping)


# ------------------------------------------------------------------ storage write weight
def storage_write_weight(profile: dict, mapping="cuda") -> float:
    """``links.<storage_write>.storage_weight`` of ``profile``: how many bytes of the shared
    storage device's capacity one written byte consumes (a read byte consumes 1); 1.0 when
    absent.  ``dpsim.calibration.mixed`` fits it from a suite that mixes reads with a stream of
    writes (calibration/PROFILE.md)."""
    m = _mapping(mapping)
    v = (profile.get("links") or {}).get(m.storage_write, {}).get("storage_weight")
    return 1.0 if v is None else float(v)


class StorageWriteCost:
    """The lifecycle's KV port, with every storage write of ``nbytes`` also starting a
    *write-cost* transfer of ``(weight - 1) x nbytes`` over the shared ``storage`` link alone
    (tag ``("write_cost", rid)``, no callback): the device work a write costs beyond its own
    bytes (on a disk that absorbs writes and writes them back later, the write-back).

    It competes with the reads for the ``storage`` link as any transfer does (max-min fair), so
    over a span in which the link stays busy, R bytes read and W bytes written take
    ``(R + weight x W) / C`` (C = ``cluster.storage_Bps``); the written bytes themselves, their
    route and their completion are unchanged.  Everything else is the port's own (attribute
    access is forwarded).  ``weight`` < 1 cannot be priced this way (a write cannot give
    capacity back): :func:`weight_storage_writes` refuses it."""

    def __init__(self, port, net, storage, weight: float):
        from .routes import Route, RouteKind

        self.port = port
        self.net = net
        self.weight = float(weight)
        self.extra = self.weight - 1.0
        self._route = {}
        self._mk = lambda node: Route((storage,), RouteKind.STORAGE_WRITE, node, node, 0.0)
        self.n_cost = 0
        self.cost_bytes = 0.0

    def __getattr__(self, name):
        return getattr(self.port, name)

    def storage_write(self, node, nbytes, cb, tag, rid=-1) -> None:
        self.port.storage_write(node, nbytes, cb, tag, rid)
        if nbytes > 0.0 and self.extra > 0.0:
            r = self._route.get(node.nid)
            if r is None:
                r = self._route[node.nid] = self._mk(node)
            self.n_cost += 1
            self.cost_bytes += nbytes * self.extra
            # The request id: ``rid``, or the second item of a ``(kind, rid)`` tag; none else
            # (a bare string tag's second letter is not an id).
            if rid < 0:
                rid = tag[1] if isinstance(tag, tuple) and len(tag) > 1 else None
            self.net.transfer(r, nbytes * self.extra, None, tag=("write_cost", rid))


def weight_storage_writes(sim, weight: float):
    """Make a built, not yet started simulation ``sim`` charge each storage write ``weight``
    bytes of the shared storage capacity per byte written (:class:`StorageWriteCost` on its
    lifecycle's port).  ``weight`` == 1: nothing is touched (byte for byte the same run), None
    is returned; else the wrapped port.  Needs the shared ``storage`` link
    (``cluster.storage_Bps``); ``weight`` must be >= 1.  Only for flow-model runs: a hardware
    backend would execute the write-cost transfers."""
    weight = float(weight)
    if weight == 1.0:
        return None
    if not (weight > 1.0 and math.isfinite(weight)):
        raise ValueError(f"storage write weight must be >= 1 (got {weight!r}): a write cannot give "
                         "storage capacity back in this model")
    st = sim.cluster.storage
    if st is None:
        raise ValueError("a storage write weight needs the shared storage link (cluster.storage_Bps)")
    if not getattr(sim.net, "_flow_model", True):
        raise ValueError("a storage write weight prices the flow model; a hardware backend runs the real writes")
    wrapped = StorageWriteCost(sim.life.port, sim.net, st, weight)
    sim.life.port = wrapped
    return wrapped
