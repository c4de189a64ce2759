"""RDMA verbs through pyverbs (optional extra ``dpsim-dualpath[rdma]``): RC queue pairs
doing RDMA WRITE / READ -- the CNIC path of §S4 (loop-back RDMA write = H2D
through the NIC, PE <-> DE transfers over the compute network).

NOT RUN in this project's environment: no machine here has an RDMA NIC or
rdma-core 59.  The code follows the pyverbs API used by rdma-core's own tests
(``tests/base.py``, ``tests/test_cuda_dmabuf.py``); only its clear errors are
tested (pyverbs absent, no RDMA device).

Three ways to run:

* ``mode="loopback"`` (default): one process, one HCA, pairs of RC QPs
  connected to each other; traffic leaves and re-enters the same port.
* ``mode="process"``: this process spawns ``python -m dpsim.hw.verbs serve`` on
  127.0.0.1, exchanges QP info with it over TCP, and drives the traffic.
* ``mode="remote"`` with ``peer="HOST:PORT"``: the same against a server
  started by hand on another node (``python -m dpsim.hw.verbs serve --listen
  0.0.0.0:18515``); see hw/README.md for the two-node commands.

The client (this transport) always initiates: ``rdma_write`` moves its local
buffer into the server's buffer, ``rdma_read`` pulls the server's buffer into
the local one.  Time = post to completion polled on the requester's CQ (for
RC, a WRITE completes once the responder acknowledged it).  Every wait has a
timeout (CQ polls, TCP exchange, server lifetime); nothing blocks forever.

Memory: ``local_mem`` / ``remote_mem`` are ``host`` (page-aligned, from
pyverbs' MR) or ``cuda:N`` (a torch allocation).  GPU memory is registered
with dma-buf (``cuMemGetHandleForAddressRange`` -> ``DmaBufMR``) where the
pyverbs build and kernel support it, else with plain ``ibv_reg_mr`` on the
device pointer, which needs the ``nvidia-peermem`` kernel module.  ``describe()``
reports which registration was used.
"""
from __future__ import annotations

import ctypes
import json
import os
import random
import socket
import subprocess
import sys
import time
from typing import Sequence

import numpy as np

from .base import BlockResult, Route, TransferSpec, Transport, TransportUnavailable, pattern_bytes

HOW = ("pip install dpsim-dualpath[rdma] (pyverbs==59.0; it builds against rdma-core 59: install rdma-core, "
       "libibverbs-dev, librdmacm-dev and ibverbs-providers of version 59 first) on a host with an "
       "InfiniBand or RoCE NIC")
HOW_DEVICE = ("needs an RDMA NIC (InfiniBand or RoCE) with its rdma-core provider; `ibv_devices` "
              "should list it and `ibv_devinfo` show an ACTIVE port")
DEFAULT_PORT = 18515
ZERO_GID = "0000:0000:0000:0000:0000:0000:0000:0000"


def import_pyverbs():
    """Import the pyverbs pieces we use, or raise TransportUnavailable."""
    try:
        import pyverbs.device as d
        import pyverbs.enums as e
        from pyverbs.addr import GID, AHAttr, GlobalRoute
        from pyverbs.cq import CQ
        from pyverbs.mr import MR
        from pyverbs.pd import PD
        from pyverbs.qp import QP, QPAttr, QPCap, QPInitAttr
        from pyverbs.wr import SGE, SendWR
    except ImportError as ex:
        raise TransportUnavailable("verbs", f"pyverbs is not importable ({ex})", HOW) from None
    ns = dict(d=d, e=e, GID=GID, AHAttr=AHAttr, GlobalRoute=GlobalRoute, CQ=CQ, MR=MR, PD=PD,
              QP=QP, QPAttr=QPAttr, QPCap=QPCap, QPInitAttr=QPInitAttr, SGE=SGE, SendWR=SendWR)
    try:
        from pyverbs.mr import DmaBufMR

        ns["DmaBufMR"] = DmaBufMR
    except ImportError:
        ns["DmaBufMR"] = None
    return type("PV", (), ns)


def list_rdma_devices(pv) -> list[str]:
    try:
        devs = pv.d.get_device_list()
    except Exception as ex:  # libibverbs present but no provider / sysfs
        raise TransportUnavailable("verbs", f"cannot list RDMA devices ({ex})", HOW_DEVICE) from None
    return [x.name.decode() if isinstance(x.name, bytes) else str(x.name) for x in devs]


# --------------------------------------------------------------- resources


class _Mem:
    """A registered buffer (host or GPU) with read/write helpers for checks."""

    def __init__(self, pv, pd, nbytes: int, loc: str, access: int):
        self.loc = loc
        self.nbytes = nbytes
        self.registration = "host"
        self._tensor = None
        if loc == "host":
            self.mr = pv.MR(pd, nbytes, access)
            self.addr = self.mr.buf
        elif loc.startswith("cuda"):
            try:
                import torch
            except ImportError:
                raise TransportUnavailable("verbs", "GPU memory needs PyTorch",
                                           "pip install dpsim-dualpath[torch]") from None
            self._tensor = torch.empty(nbytes, dtype=torch.uint8, device=loc)
            self._tensor.fill_(1)
            torch.cuda.synchronize(loc)
            ptr = self._tensor.data_ptr()
            self.mr = None
            err = []
            fd = _cuda_dmabuf_fd(ptr, nbytes, err)
            if fd is not None and pv.DmaBufMR is not None:
                try:
                    self.mr = pv.DmaBufMR(pd, nbytes, access, fd)
                    self.registration = "dma-buf"
                except Exception as ex:
                    err.append(f"DmaBufMR: {ex}")
                finally:
                    os.close(fd)
            if self.mr is None:
                try:
                    self.mr = pv.MR(pd, nbytes, access, address=ptr)
                    self.registration = "peermem (ibv_reg_mr on the device pointer)"
                except Exception as ex:
                    err.append(f"ibv_reg_mr on GPU pointer: {ex}")
                    raise TransportUnavailable(
                        "verbs", "cannot register GPU memory with the NIC (" + "; ".join(err) + ")",
                        "needs dma-buf support (Linux >= 5.12, open GPU kernel modules, rdma-core >= 35) "
                        "or the nvidia-peermem module (modprobe nvidia-peermem)") from None
            self.addr = self.mr.buf if self.registration.startswith("dma-buf") else ptr
        else:
            raise ValueError(f"verbs: unknown memory location {loc!r}")

    @property
    def lkey(self):
        return self.mr.lkey

    @property
    def rkey(self):
        return self.mr.rkey

    def write(self, data: np.ndarray, offset: int = 0):
        if self._tensor is not None:
            import torch

            self._tensor[offset:offset + data.size].copy_(torch.from_numpy(data))
            torch.cuda.synchronize(self.loc)
        else:
            ctypes.memmove(self.mr.buf + offset, data.ctypes.data, data.size)

    def read(self, n: int, offset: int = 0) -> np.ndarray:
        if self._tensor is not None:
            return self._tensor[offset:offset + n].cpu().numpy()
        out = np.empty(n, np.uint8)
        ctypes.memmove(out.ctypes.data, self.mr.buf + offset, n)
        return out

    def close(self):
        try:
            self.mr.close()
        except Exception:
            pass
        self._tensor = None


def _cuda_dmabuf_fd(ptr: int, nbytes: int, err: list):
    """dma-buf fd for [ptr, ptr+nbytes) through cuMemGetHandleForAddressRange."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
        fd = ctypes.c_int(-1)
        f = lib.cuMemGetHandleForAddressRange
        f.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_int, ctypes.c_uint64]
        rc = f(ctypes.byref(fd), ctypes.c_uint64(ptr), ctypes.c_size_t(nbytes), 1, 0)  # 1 = DMA_BUF_FD
        if rc != 0:
            err.append(f"cuMemGetHandleForAddressRange: CUresult {rc}")
            return None
        return fd.value
    except (OSError, AttributeError) as ex:
        err.append(f"cuMemGetHandleForAddressRange unavailable ({ex})")
        return None


class _Endpoint:
    """One side: context, PD, CQ, n_qps RC QPs and one registered buffer."""

    def __init__(self, pv, dev: str, port: int, gid_index: int | None, nbytes: int, mem: str,
                 n_qps: int, sq_depth: int = 1024):
        self.pv = pv
        e = pv.e
        self.ctx = pv.d.Context(name=dev)
        self.port = port
        pattr = self.ctx.query_port(port)
        if pattr.state != e.IBV_PORT_ACTIVE:
            raise TransportUnavailable("verbs", f"port {port} of {dev} is not ACTIVE (state {pattr.state})",
                                       "bring the link up (cable, subnet manager for InfiniBand)")
        self.lid = pattr.lid
        self.mtu = pattr.active_mtu
        self.gid_index = gid_index if gid_index is not None else self._pick_gid(pattr)
        self.gid = str(self.ctx.query_gid(port, self.gid_index)) if self.gid_index is not None else ZERO_GID
        dattr = self.ctx.query_device()
        self.max_sge = max(1, min(int(getattr(dattr, "max_sge", 16)), 30))
        self.max_rd = max(1, min(int(getattr(dattr, "max_qp_rd_atom", 16)), 16))
        self.sq_depth = min(sq_depth, int(getattr(dattr, "max_qp_wr", sq_depth)))
        self.pd = pv.PD(self.ctx)
        self.cq = pv.CQ(self.ctx, self.sq_depth * n_qps + 16, None, None, 0)
        access = e.IBV_ACCESS_LOCAL_WRITE | e.IBV_ACCESS_REMOTE_WRITE | e.IBV_ACCESS_REMOTE_READ
        self.mem = _Mem(pv, self.pd, nbytes, mem, access)
        cap = pv.QPCap(max_send_wr=self.sq_depth, max_recv_wr=1, max_send_sge=self.max_sge, max_recv_sge=1)
        init = pv.QPInitAttr(qp_type=e.IBV_QPT_RC, scq=self.cq, rcq=self.cq, cap=cap, sq_sig_all=0)
        qattr = pv.QPAttr(port_num=port)
        qattr.qp_access_flags = access
        self.qps = [pv.QP(self.pd, init, qattr) for _ in range(n_qps)]
        self.psns = [random.getrandbits(24) for _ in self.qps]

    def _pick_gid(self, pattr):
        for i in range(int(getattr(pattr, "gid_tbl_len", 0))):
            try:
                g = str(self.ctx.query_gid(self.port, i))
            except Exception:
                continue
            if g != ZERO_GID and not g.endswith("0000:0000:0000:0000"):
                return i
        return None  # InfiniBand with LIDs: no GRH needed

    def info(self) -> dict:
        return {"qpns": [q.qp_num for q in self.qps], "psns": self.psns, "lid": self.lid, "gid": self.gid,
                "gid_index": self.gid_index, "rkey": self.mem.rkey, "addr": self.mem.addr,
                "nbytes": self.mem.nbytes}

    def connect(self, remote: dict):
        pv, e = self.pv, self.pv.e
        if len(remote["qpns"]) != len(self.qps):
            raise RuntimeError("verbs: the two sides created different numbers of QPs")
        for i, qp in enumerate(self.qps):
            a = pv.QPAttr(port_num=self.port)
            a.qp_access_flags = e.IBV_ACCESS_LOCAL_WRITE | e.IBV_ACCESS_REMOTE_WRITE | e.IBV_ACCESS_REMOTE_READ
            a.path_mtu = self.mtu
            a.max_dest_rd_atomic = self.max_rd
            a.max_rd_atomic = self.max_rd
            a.min_rnr_timer = 12
            a.timeout = 14
            a.retry_cnt = 7
            a.rnr_retry = 7
            if self.gid_index is not None and remote.get("gid") not in (None, ZERO_GID):
                gr = pv.GlobalRoute(dgid=pv.GID(val=remote["gid"]), sgid_index=self.gid_index)
                a.ah_attr = pv.AHAttr(port_num=self.port, is_global=1, gr=gr, dlid=remote["lid"])
            else:
                a.ah_attr = pv.AHAttr(port_num=self.port, is_global=0, dlid=remote["lid"])
            a.dest_qp_num = remote["qpns"][i]
            a.rq_psn = self.psns[i]
            a.sq_psn = remote["psns"][i]
            qp.to_rts(a)

    def close(self):
        for obj in [*self.qps, self.mem, self.cq, self.pd, self.ctx]:
            try:
                obj.close()
            except Exception:
                pass


# ------------------------------------------------------------------ tcp glue


def _send_json(sock, obj):
    data = json.dumps(obj).encode() + b"\n"
    sock.sendall(data)


def _recv_json(sock, timeout: float):
    sock.settimeout(timeout)
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("verbs: peer closed the TCP connection")
        buf += chunk
    return json.loads(buf)


def _parse_hostport(s: str, default_host="127.0.0.1") -> tuple[str, int]:
    if ":" in s:
        h, p = s.rsplit(":", 1)
        return h or default_host, int(p)
    return default_host, int(s)


def serve(listen: str = f"127.0.0.1:{DEFAULT_PORT}", device: str | None = None, port: int = 1,
          gid_index: int | None = None, mem: str = "host", nbytes: int = 1 << 30, n_qps: int = 8,
          accept_timeout_s: float = 600.0, session_timeout_s: float = 3600.0, ready_file: str | None = None):
    """Passive side: register a buffer, exchange QP info with one client, keep
    the resources alive until the client says ``done`` (or the timeout)."""
    pv = import_pyverbs()
    devs = list_rdma_devices(pv)
    if not devs:
        raise TransportUnavailable("verbs", "no RDMA device found", HOW_DEVICE)
    dev = device or devs[0]
    host, p = _parse_hostport(listen)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, p))
    srv.listen(1)
    srv.settimeout(accept_timeout_s)
    if ready_file:
        with open(ready_file, "w") as f:
            f.write(str(srv.getsockname()[1]))
    print(f"verbs server: {dev} port {port}, listening on {host}:{srv.getsockname()[1]}", flush=True)
    conn, addr = srv.accept()
    try:
        hello = _recv_json(conn, 60)
        ep = _Endpoint(pv, dev, port, gid_index, max(nbytes, int(hello.get("nbytes", 0))), mem,
                       int(hello.get("n_qps", n_qps)))
        _send_json(conn, ep.info())
        ep.connect(hello)
        _send_json(conn, {"ready": True, "registration": ep.mem.registration})
        deadline = time.monotonic() + session_timeout_s
        while time.monotonic() < deadline:
            try:
                msg = _recv_json(conn, min(60.0, max(1.0, deadline - time.monotonic())))
            except socket.timeout:
                continue
            if msg.get("op") == "done":
                break
        ep.close()
    finally:
        conn.close()
        srv.close()


# ----------------------------------------------------------------- transport


class VerbsTransport(Transport):
    name = "verbs"

    def __init__(self, device: str | None = None, port: int = 1, gid_index: int | None = None,
                 mode: str = "loopback", peer: str | None = None, local_mem: str = "host",
                 remote_mem: str = "host", n_qps: int = 8, max_bytes: int | None = None,
                 timeout_s: float = 30.0):
        self.device = device
        self.port = int(port)
        self.gid_index = None if gid_index in (None, "") else int(gid_index)
        self.mode = "remote" if peer and mode == "loopback" else mode
        self.peer = peer
        self.local_mem = local_mem
        self.remote_mem = remote_mem
        self.n_qps = int(n_qps)
        self._max_bytes = int(max_bytes) if max_bytes else (256 << 20)
        self.timeout_s = float(timeout_s)
        self.pv = None
        self.local = None
        self.remote_ep = None  # loopback only
        self.remote = None  # dict: qpns, rkey, addr, ...
        self._sock = None
        self._server_proc = None
        self.registration = {}

    # ------------------------------------------------------------------ setup
    def check(self) -> None:
        self.pv = import_pyverbs()
        devs = list_rdma_devices(self.pv)
        if not devs:
            raise TransportUnavailable("verbs", "no RDMA device found (ibv_get_device_list is empty)",
                                       HOW_DEVICE)
        if self.device and self.device not in devs:
            raise TransportUnavailable("verbs", f"RDMA device {self.device!r} not found (have {devs})",
                                       "pick one listed by ibv_devices")
        self.device = self.device or devs[0]
        if self.mode not in ("loopback", "process", "remote"):
            raise ValueError(f"verbs: unknown mode {self.mode!r}")
        if self.mode == "remote" and not self.peer:
            raise ValueError("verbs: mode=remote needs peer=HOST:PORT")

    def _ensure(self):
        if self.local is not None:
            return
        if self.pv is None:
            self.check()
        nb = self._max_bytes
        self.local = _Endpoint(self.pv, self.device, self.port, self.gid_index, 2 * nb, self.local_mem, self.n_qps)
        self.registration["local"] = self.local.mem.registration
        if self.mode == "loopback":
            self.remote_ep = _Endpoint(self.pv, self.device, self.port, self.gid_index, nb, self.remote_mem,
                                       self.n_qps)
            self.remote = self.remote_ep.info()
            self.local.connect(self.remote)
            self.remote_ep.connect(self.local.info())
            self.registration["remote"] = self.remote_ep.mem.registration
            return
        if self.mode == "process":
            import tempfile

            rf = tempfile.NamedTemporaryFile(prefix="dpsim_verbs_", delete=False).name
            os.unlink(rf)
            # -P passed on: the server imports the same dpsim as this process (not a checkout's
            # dpsim/ folder in the working directory, which has no dpsim.hw)
            cmd = [sys.executable, *(["-P"] if sys.flags.safe_path else []), "-m", "dpsim.hw.verbs", "serve",
                   "--listen", "127.0.0.1:0", "--device", self.device, "--port", str(self.port),
                   "--mem", self.remote_mem, "--nbytes", str(nb),
                   "--ready-file", rf, "--accept-timeout", str(self.timeout_s + 30)]
            if self.gid_index is not None:
                cmd += ["--gid-index", str(self.gid_index)]
            self._server_proc = subprocess.Popen(cmd)
            deadline = time.monotonic() + self.timeout_s + 30
            while not os.path.exists(rf) or not open(rf).read().strip():
                if self._server_proc.poll() is not None:
                    raise RuntimeError(f"verbs server process exited with {self._server_proc.returncode}")
                if time.monotonic() > deadline:
                    self.close()
                    raise TimeoutError("verbs server process did not start listening in time")
                time.sleep(0.05)
            self.peer = f"127.0.0.1:{int(open(rf).read())}"
            os.unlink(rf)
        host, p = _parse_hostport(self.peer)
        self._sock = socket.create_connection((host, p), timeout=self.timeout_s)
        hello = self.local.info()
        hello.update({"nbytes": nb, "n_qps": self.n_qps})
        _send_json(self._sock, hello)
        self.remote = _recv_json(self._sock, self.timeout_s)
        self.local.connect(self.remote)
        ready = _recv_json(self._sock, self.timeout_s)
        self.registration["remote"] = ready.get("registration")

    def close(self) -> None:
        if self._sock is not None:
            try:
                _send_json(self._sock, {"op": "done"})
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        if self._server_proc is not None:
            try:
                self._server_proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._server_proc.kill()
            self._server_proc = None
        for ep in (self.local, self.remote_ep):
            if ep is not None:
                ep.close()
        self.local = self.remote_ep = None

    def max_transfer_bytes(self) -> int:
        return self._max_bytes

    # ---------------------------------------------------------------- routes
    def routes(self) -> list[Route]:
        return [Route("rdma_write", self.local_mem, "remote:" + self.remote_mem),
                Route("rdma_read", "remote:" + self.remote_mem, self.local_mem)]

    def concurrency_groups(self):
        w, r = self.routes()
        return [("rdma_write_same", [w]), ("rdma_write+rdma_read", [w, r])]

    def block_routes(self) -> list[Route]:
        return [self.routes()[0]]

    def block_modes(self):
        return ["loop", "batched"]

    # -------------------------------------------------------------- plumbing
    def _is_read(self, src, dst) -> bool:
        return bool(src and str(src).startswith("remote"))

    def _wr(self, wr_id, read, sges, roff, signaled=True):
        e = self.pv.e
        wr = self.pv.SendWR(wr_id=wr_id, opcode=e.IBV_WR_RDMA_READ if read else e.IBV_WR_RDMA_WRITE,
                            num_sge=len(sges), sg=sges, send_flags=e.IBV_SEND_SIGNALED if signaled else 0)
        wr.set_wr_rdma(self.remote["rkey"], self.remote["addr"] + roff)
        return wr

    def _poll(self, n: int, t_start: float) -> dict:
        """Poll ``n`` completions; return {wr_id: perf_counter at completion}."""
        e = self.pv.e
        got = {}
        deadline = t_start + self.timeout_s
        while len(got) < n:
            npolled, wcs = self.local.cq.poll(num_entries=min(16, n - len(got)))
            now = time.perf_counter()
            for wc in wcs[:npolled]:
                if wc.status != e.IBV_WC_SUCCESS:
                    raise RuntimeError(f"verbs: work completion error status {wc.status} (wr_id {wc.wr_id})")
                got[wc.wr_id] = now
            if not npolled and now > deadline:
                raise TimeoutError(f"verbs: {n - len(got)} completions missing after {self.timeout_s} s")
        return got

    # ------------------------------------------------------------- transfers
    def transfer_concurrent(self, specs: Sequence[TransferSpec], *, verify=False) -> list[float]:
        self._ensure()
        wrs, pats = [], []
        for i, sp in enumerate(specs):
            n = int(sp.nbytes)
            read = self._is_read(sp.src, sp.dst)
            loff = (i * n) % max(1, self.local.mem.nbytes // 2 - n + 1)  # upper half: read-back area
            roff = (i * n) % max(1, self.remote["nbytes"] - n + 1)
            if verify and not read:
                pat = pattern_bytes(n, 300 + i)
                self.local.mem.write(pat, loff)
                pats.append((i, pat, loff, roff))
            sge = self.pv.SGE(self.local.mem.addr + loff, n, self.local.mem.lkey)
            wrs.append((i % len(self.local.qps), self._wr(i, read, [sge], roff)))
        t0 = time.perf_counter()
        for qi, wr in wrs:
            self.local.qps[qi].post_send(wr)
        done = self._poll(len(wrs), t0)
        out = [done[i] - t0 for i in range(len(specs))]
        if verify:
            for i, pat, loff, roff in pats:  # read back what was written and compare
                back_off = self.local.mem.nbytes // 2
                sge = self.pv.SGE(self.local.mem.addr + back_off, pat.size, self.local.mem.lkey)
                self.local.qps[0].post_send(self._wr(10_000 + i, True, [sge], roff))
                self._poll(1, time.perf_counter())
                if not np.array_equal(self.local.mem.read(pat.size, back_off), pat):
                    raise AssertionError(f"verbs: RDMA write {i} read back wrong bytes")
        return out

    def transfer(self, nbytes, *, src=None, dst=None, verify=False) -> float:
        return self.transfer_concurrent([TransferSpec(nbytes, src, dst)], verify=verify)[0]

    def transfer_blocks(self, n_blocks, block_bytes, *, src=None, dst=None, mode="loop",
                        verify=False) -> BlockResult:
        """``loop``: one signaled-every-64 WRITE per block; ``batched``: blocks
        gathered max_sge at a time into one WR each (scatter/gather list);
        ``single``: one WRITE of the total."""
        self._ensure()
        read = self._is_read(src, dst)
        total = n_blocks * block_bytes
        mem = self.local.mem
        perm = np.random.permutation(n_blocks)
        if mode == "single":
            return BlockResult(self.transfer(total, src=src, dst=dst, verify=verify), "rdma-single")
        qp = self.local.qps[0]
        sq = self.local.sq_depth
        if mode == "loop":
            items = [([self.pv.SGE(mem.addr + int(p) * block_bytes, block_bytes, mem.lkey)], i * block_bytes)
                     for i, p in enumerate(perm)]
            method = "rdma-wr-per-block"
        elif mode == "batched":
            k = self.local.max_sge
            items = []
            for j in range(0, n_blocks, k):
                sges = [self.pv.SGE(mem.addr + int(p) * block_bytes, block_bytes, mem.lkey)
                        for p in perm[j:j + k]]
                items.append((sges, j * block_bytes))
            method = f"rdma-sgl-{k}-per-wr"
        else:
            raise ValueError(f"verbs: unknown block mode {mode!r}")
        if verify and not read:
            pat = pattern_bytes(total, 99)
            for i, p in enumerate(perm):
                mem.write(pat[i * block_bytes:(i + 1) * block_bytes], int(p) * block_bytes)
        sig_every = max(1, min(64, sq // 2))
        t0 = time.perf_counter()
        outstanding = 0
        for idx, (sges, roff) in enumerate(items):
            last = idx == len(items) - 1
            signaled = last or (idx % sig_every == sig_every - 1)
            qp.post_send(self._wr(idx, read, sges, roff, signaled))
            if signaled:
                outstanding += 1
            if outstanding * sig_every >= sq - sig_every:  # keep the send queue from overflowing
                self._poll(1, t0)
                outstanding -= 1
        self._poll(outstanding, t0)
        dt = time.perf_counter() - t0
        if verify and not read:
            back = mem.nbytes // 2
            sge = self.pv.SGE(mem.addr + back, total, mem.lkey)
            qp.post_send(self._wr(1 << 30, True, [sge], 0))
            self._poll(1, time.perf_counter())
            if not np.array_equal(mem.read(total, back), pat):
                raise AssertionError("verbs: block write read back wrong bytes")
        return BlockResult(dt, method)

    def describe(self) -> dict:
        d = super().describe()
        d.update({"rdma_device": self.device, "port": self.port, "mode": self.mode, "peer": self.peer,
                  "local_mem": self.local_mem, "remote_mem": self.remote_mem,
                  "registration": self.registration})
        try:
            import pyverbs

            d["pyverbs"] = getattr(pyverbs, "__version__", "unknown")
        except ImportError:
            d["pyverbs"] = None
        if self.local is not None:
            d["gid_index"] = self.local.gid_index
            d["mtu"] = int(self.local.mtu)
        return d


def main(argv=None):  # pragma: no cover - needs RDMA hardware
    import argparse

    ap = argparse.ArgumentParser(prog="python -m dpsim.hw.verbs", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="passive side of a verbs measurement")
    s.add_argument("--listen", default=f"127.0.0.1:{DEFAULT_PORT}",
                   help="HOST:PORT to accept the client's TCP connection on")
    s.add_argument("--device", default=None)
    s.add_argument("--port", type=int, default=1)
    s.add_argument("--gid-index", type=int, default=None)
    s.add_argument("--mem", default="host", help="host or cuda:N")
    s.add_argument("--nbytes", type=int, default=1 << 30)
    s.add_argument("--ready-file", default=None)
    s.add_argument("--accept-timeout", type=float, default=600.0)
    s.add_argument("--session-timeout", type=float, default=3600.0)
    sub.add_parser("devices", help="list RDMA devices")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "devices":
            pv = import_pyverbs()
            print("\n".join(list_rdma_devices(pv)) or "no RDMA device")
            return 0
        serve(a.listen, a.device, a.port, a.gid_index, a.mem, a.nbytes, accept_timeout_s=a.accept_timeout,
              session_timeout_s=a.session_timeout, ready_file=a.ready_file)
    except TransportUnavailable as ex:
        print(ex, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
