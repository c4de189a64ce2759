"""The KV I/O port: every KV move the lifecycle and the engines start, as transfers over
cluster routes.

An engine does not know links or the network: it asks its port to "bring this much cached KV
into my GPU" and gets a callback.  The port picks the route (by the request's read plan), the
cap (per-block submission costs, §S4; compute pacing for layerwise prefill) and the priority
class (§S5), and tags the transfer with its route kind.  Under the Oracle system the cluster's
route transform has emptied the KV routes, so the same calls complete at once.
"""
from __future__ import annotations

import math

from ..net import HIGH, LOW

INF = math.inf


class KVPort:
    def __init__(self, net, routes, kvb: float, n_layers: int, block: int, submission: dict,
                 model_prio: int, ep_peer: dict, read_queue_depth: int = 0):
        self.net = net  # a dpsim.net.Network (typed in the compiled build: net._submit is a C call)
        self.routes = routes
        lb = block * kvb / n_layers  # one Layer Block
        fb = block * kvb  # one Full Block
        self.full_block_bytes = fb
        # Submission costs (§S4): a stream of blocks cannot go faster than block bytes / cost.
        self.cap_layer = (lb / submission["layer_block_s"]) if submission["layer_block_s"] > 0 else INF
        self.cap_full = (fb / submission["full_block_s"]) if submission["full_block_s"] > 0 else INF
        self.cap_storage = (fb / submission["storage_block_s"]) if submission["storage_block_s"] > 0 else INF
        self.model_prio = model_prio
        self.ep_peer = ep_peer  # gid -> the GPU its EP all-to-all goes to (absent: none)
        # The same as a list indexed by gid (None: no peer), read per forward without a boxed key.
        self._peer: list = [None] * ((max(ep_peer) + 1) if ep_peer else 0)
        for gid, peer in ep_peer.items():
            self._peer[gid] = peer
        # At most this many Full Block reads outstanding per read (cluster.storage_queue_depth;
        # 0: unlimited): a read of n blocks pays ceil(n / depth) rounds of the route's latency.
        self.read_qd = int(read_queue_depth)

    def _send(self, route, nbytes: float, cb, cap: float, tag, rid: int):
        """A KV transfer tagged ``(tag, rid)`` (``rid`` < 0: ``tag`` alone), the pair made only
        if someone reads it."""
        return self.net._submit(route, nbytes, cb, LOW, cap, route.latency, tag, rid)

    # ------------------------------------------------------------------ storage
    def storage_read(self, node, nbytes: float, cb, rid: int) -> None:
        """Hit KV (whole Full Blocks) from storage into ``node``'s DRAM, in waves of at most
        ``read_qd`` outstanding block reads: one route latency per wave before the first byte."""
        route = self.routes.storage_read(node)
        lat = route.latency
        qd = self.read_qd
        if qd > 0:
            blocks = math.ceil(nbytes / self.full_block_bytes)
            if blocks > qd:
                lat *= (blocks + qd - 1) // qd
        self.net._submit(route, nbytes, cb, LOW, self.cap_storage, lat, "read", rid)

    def storage_write(self, node, nbytes: float, cb, tag, rid: int = -1) -> None:
        """``node``'s DRAM -> storage (a persist), tagged ``(tag, rid)``, or ``tag`` alone when
        ``rid`` < 0 (the lifecycle passes kind and id apart: no tuple per persist)."""
        self._send(self.routes.storage_write(node), nbytes, cb, self.cap_storage, tag, rid)

    # ------------------------------------------------------------------ decode side
    def de_h2d(self, gpu, nbytes: float, cb, rid: int) -> None:
        self._send(self.routes.h2d(gpu), nbytes, cb, self.cap_full, "de_h2d", rid)

    def d2h(self, gpu, nbytes: float, cb, rid: int) -> None:
        self._send(self.routes.d2h(gpu), nbytes, cb, self.cap_full, "d2h", rid)

    def decode_stream(self, gpu, rate: float, name: str):
        """The decode batch's EP all-to-all as an open-ended stream (``None``: no EP peer)."""
        peer = self._peer_of(gpu.gid)
        if peer is None:
            return None
        return self.net.stream(self.routes.model(gpu, peer), rate, prio=self.model_prio, tag=("ep", name))

    def set_rate(self, stream, rate: float) -> None:
        self.net.set_max_rate(stream, rate)

    def stop(self, stream) -> None:
        self.net.stop(stream)

    def has_ep_peer(self, gpu) -> bool:
        return self._peer_of(gpu.gid) is not None

    def _peer_of(self, gid: int):
        """The GPU that ``gid``'s EP all-to-all goes to, or None."""
        return self._peer[gid] if 0 <= gid < len(self._peer) else None

    # ------------------------------------------------------------------ prefill side
    def pe_input(self, req, gpu, nbytes: float, pace: float, cb, layer_blocks: bool) -> int:
        """Cached KV into the PE GPU for one forward (or one layer): from the PE node's buffer
        and/or the DE node's (the read plan's split).  Returns the transfers started."""
        cap = self.cap_layer if layer_blocks else self.cap_full
        # The plan's label says where cached KV comes from: all from the PE node (pe), all
        # from the DE node (de), or the split's share from each.
        path = req.path
        f = 0.0 if path == "pe" else (1.0 if path == "de" else (req.de_hit / req.hit if req.hit else 0.0))
        n = 0
        if f > 0:
            b = nbytes * f
            mr = cap
            if pace > 0:
                p = b / pace
                if p < mr:
                    mr = p
            self._send(self.routes.remote_h2d(req.de.gpu, gpu), b, cb, mr, "pe_in", req.rid)
            n += 1
        if f < 1:
            b = nbytes * (1 - f) if f > 0 else nbytes
            mr = cap
            if pace > 0:
                p = b / pace
                if p < mr:
                    mr = p
            self._send(self.routes.h2d(gpu), b, cb, mr, "pe_in", req.rid)
            n += 1
        return n

    def pe_output(self, req, gpu, nbytes: float, pace: float, cb, layer_blocks: bool) -> int:
        """Prompt KV (and the PE side's hit KV on the first chunk) out to the DE buffer."""
        cap = self.cap_layer if layer_blocks else self.cap_full
        if pace > 0:
            p = nbytes / pace
            if p < cap:
                cap = p
        self._send(self.routes.gpu_to_remote(gpu, req.de.gpu), nbytes, cb, cap, "pe_out", req.rid)
        return 1

    def model_traffic(self, gpu, nbytes: float, duration: float, cb, idx: int) -> int:
        """A prefill forward's EP all-to-all bytes leaving the node, paced over the forward."""
        peer = self._peer_of(gpu.gid)
        if peer is None or nbytes <= 0:
            return 0
        self.net._submit(self.routes.model(gpu, peer), nbytes, cb, self.model_prio,
                         nbytes / duration if duration > 0 else INF, 0.0, "ep", idx)
        return 1


__all__ = ["KVPort", "HIGH", "LOW"]
