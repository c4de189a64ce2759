"""The cluster of §S2 built from config: nodes of g GPUs, per-GPU CNIC and PCIe links, per-node
SNIC, host-DRAM buffer and memory bandwidth, and the storage backend.

Link naming (every byte moved crosses a route of these):

* ``snic_rx[n]`` storage -> node n, ``snic_tx[n]`` node n -> storage (one link if half duplex);
* ``dram[n]``   node n's host memory bandwidth M, half duplex: reads and writes share it;
* ``cnic_rd[g]`` bytes GPU g's CNIC reads from local memory (HBM or DRAM) and sends;
* ``cnic_wr[g]`` bytes GPU g's CNIC receives and writes into local memory;
* ``pcie_dn[g]`` / ``pcie_up[g]`` the GPU's PCIe lanes into / out of its HBM (optional);
* ``storage``    the storage backend's aggregate bandwidth (optional; §S2: it can saturate
  every SNIC, so by default it is not a bottleneck and not modelled).

The §S7 accounting ("CNIC read"/"CNIC write") maps onto ``cnic_rd``/``cnic_wr``: a loop-back
H2D through the CNIC (§S4, "CNIC-centric") uses both of the same CNIC.
"""
from __future__ import annotations

from ..net import Link, Network
from .routes import FREE_BUFFERS, TRANSFORMS, Route, RouteBook, RouteKind  # noqa: F401
from .topology import GPU, Buffer, Node  # noqa: F401


class Cluster:
    """Nodes, GPUs and the network links between them."""

    def __init__(self, net: Network, ccfg: dict, hbm_kv_bytes: float, buffer_bytes: float,
                 hbm_kv_bytes_prefill: float, transform: str = "none"):
        """``transform``: a name in :data:`~dpsim.cluster.routes.TRANSFORMS` applied to every
        route the cluster builds (``oracle`` makes KV moves free); under a name in
        :data:`~dpsim.cluster.routes.FREE_BUFFERS` the DRAM buffers are unbounded."""
        if transform not in TRANSFORMS:
            raise ValueError(f"route transform {transform!r} is not one of {sorted(TRANSFORMS)}")
        if transform in FREE_BUFFERS:
            buffer_bytes = float("inf")
        self.net = net
        self.cfg = ccfg
        P, D, g = ccfg["prefill_nodes"], ccfg["decode_nodes"], ccfg["gpus_per_node"]
        snic = ccfg["snic_Bps"] * ccfg["snic_efficiency"]
        cnic = ccfg["cnic_Bps"] * ccfg["cnic_efficiency"]
        self.storage = None
        if ccfg.get("storage_Bps"):
            self.storage = net.add_link("storage", ccfg["storage_Bps"], "storage")
        self.nodes: list[Node] = []
        self.gpus: list[GPU] = []
        for n in range(P + D):
            role = "prefill" if n < P else "decode"
            rx = net.add_link(f"snic_rx[{n}]", snic, "snic_rx", n)
            tx = rx if ccfg["snic_duplex"] == "half" else net.add_link(f"snic_tx[{n}]", snic, "snic_tx", n)
            dram = net.add_link(f"dram[{n}]", ccfg["dram_Bps"], "dram", n)
            node = Node(n, role, rx, tx, dram, Buffer(f"buffer[{n}]", buffer_bytes))
            for i in range(g):
                gid = n * g + i
                pdn = pup = None
                if ccfg.get("pcie_Bps"):
                    pdn = net.add_link(f"pcie_dn[{gid}]", ccfg["pcie_Bps"], "pcie_dn", n)
                    pup = net.add_link(f"pcie_up[{gid}]", ccfg["pcie_Bps"], "pcie_up", n)
                gpu = GPU(gid, node, i, net.add_link(f"cnic_rd[{gid}]", cnic, "cnic_rd", n),
                          net.add_link(f"cnic_wr[{gid}]", cnic, "cnic_wr", n), pdn, pup,
                          hbm_kv_bytes if role == "decode" else hbm_kv_bytes_prefill)
                node.gpus.append(gpu)
                self.gpus.append(gpu)
            self.nodes.append(node)
        self.prefill_nodes = self.nodes[:P]
        self.decode_nodes = self.nodes[P:]
        self.routes = RouteBook(self, float(ccfg["storage_latency_s"]), float(ccfg["net_latency_s"]),
                                TRANSFORMS[transform])

    # Routes (§S4) are built and cached by ``self.routes`` (dpsim.cluster.routes.RouteBook).
