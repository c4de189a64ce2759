"""The cluster's furniture (§S2): nodes, their GPUs and their host-DRAM KV buffers.

Like the floor plan of a warehouse: a node is a building with one loading dock to storage (its
SNIC links) and a stock room (its DRAM buffer); each GPU is a workbench in it with its own
door to the compute network (CNIC links) and, optionally, its own PCIe lanes.  The links
themselves belong to the network; these objects only say which links are whose, and keep the
few figures the lifecycle and the scheduler read and write on every request (HBM in use, a
buffer's bytes in use and its FIFO of waiters, a node's queued storage reads).  They are part of
the compiled core (``topology.pxd`` types their fields), so reading them costs a C field access.
"""
from __future__ import annotations

from collections import deque


class Buffer:
    """A host-DRAM KV buffer with a capacity; waiters are served FIFO."""

    def __init__(self, name: str, capacity: float, used: float = 0.0, peak: float = 0.0,
                 waiters=None) -> None:
        self.name = name
        self.capacity = capacity
        self.used = used
        self.peak = peak
        self.waiters = deque() if waiters is None else waiters

    def __repr__(self) -> str:
        return (f"Buffer(name={self.name!r}, capacity={self.capacity!r}, used={self.used!r}, "
                f"peak={self.peak!r}, waiters={len(self.waiters)})")

    def try_alloc(self, nbytes: float) -> bool:
        if self.used + nbytes <= self.capacity * (1 + 1e-12) and not self.waiters:
            self.used += nbytes
            if self.used > self.peak:
                self.peak = self.used
            return True
        return False

    def alloc_or_wait(self, nbytes: float, cb) -> bool:
        """Allocate now (True) or queue ``cb()`` to run once allocated (False)."""
        if self.try_alloc(nbytes):
            return True
        self.waiters.append((nbytes, cb))
        return False

    def free(self, nbytes: float) -> None:
        self.used -= nbytes
        if self.used < 0.0:
            if self.used < -1e-9 * self.capacity - 1.0:
                raise AssertionError(f"buffer {self.name}: freed more than allocated ({nbytes} B)")
            self.used = 0.0
        while self.waiters:
            nb, cb = self.waiters[0]
            if self.used + nb <= self.capacity * (1 + 1e-12):
                self.waiters.popleft()
                self.used += nb
                if self.used > self.peak:
                    self.peak = self.used
                cb()
            else:
                break


class Node:
    """A node: its SNIC links (``snic_rx``/``snic_tx``, one link if half duplex), its DRAM
    bandwidth link, its KV buffer, its GPUs, and ``read_q``: tokens queued or in flight for
    storage reads on its SNIC (§S6; written only by the scheduling layer's LoadLedger)."""

    def __init__(self, nid: int, role: str, snic_rx, snic_tx, dram, buffer: Buffer, gpus=None,
                 read_q: float = 0.0) -> None:
        self.nid = nid
        self.role = role  # "prefill" | "decode"
        self.snic_rx = snic_rx
        self.snic_tx = snic_tx
        self.dram = dram
        self.buffer = buffer
        self.gpus = [] if gpus is None else gpus
        self.read_q = read_q

    def __repr__(self) -> str:
        return f"Node(nid={self.nid}, role={self.role!r}, gpus={len(self.gpus)}, read_q={self.read_q!r})"

    @property
    def key(self) -> int:
        return -1 - self.nid


class GPU:
    """A GPU: global index ``gid``, its ``node`` and index ``local`` in it, its CNIC links
    (``cnic_rd``: bytes it reads from local memory and sends; ``cnic_wr``: bytes it receives
    and writes), optional PCIe links, and its HBM for KV (``hbm_kv``; in use, peak)."""

    def __init__(self, gid: int, node: Node, local: int, cnic_rd, cnic_wr, pcie_dn, pcie_up,
                 hbm_kv: float, hbm_used: float = 0.0, hbm_peak: float = 0.0) -> None:
        self.gid = gid
        self.node = node
        self.local = local
        self.cnic_rd = cnic_rd
        self.cnic_wr = cnic_wr
        self.pcie_dn = pcie_dn
        self.pcie_up = pcie_up
        self.hbm_kv = hbm_kv
        self.hbm_used = hbm_used
        self.hbm_peak = hbm_peak

    def __repr__(self) -> str:
        return f"GPU(gid={self.gid}, node={self.node.nid}, local={self.local}, hbm_used={self.hbm_used!r})"

    @property
    def key(self) -> int:
        return self.gid
