"""NCCL send/recv between two GPUs of one host (torch.distributed, two
processes): the stand-in for the compute network (CNIC <-> CNIC) of §S4.

Two worker processes (``spawn``), one per GPU, join a process group over a
TCP rendezvous on 127.0.0.1 and obey commands sent through pipes.  A
transfer is timed on the host monotonic clock, which all processes of a
host share: both ranks leave a barrier and synchronize, read the clock
(``t0``), post their sends/receives, wait, synchronize and read it again
(``t1``).  A transfer's time is ``t1(receiver) - max(t0)``; it includes the
NCCL kernel launch (tens of us), as a real send does.

Link kind: ``nccl`` (rank0 -> rank1).  Concurrency: k sends in one NCCL group
(``batch_isend_irecv``); duplex: both directions at once.  Blocks: ``loop``
issues one NCCL send per block (each its own launch), ``batched`` puts all of
them in one NCCL group, ``single`` sends the total at once.

Every wait has a timeout: a worker that does not answer within
``timeout_s`` is killed and the call raises ``TimeoutError``.
"""
from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import socket
import time
from typing import Sequence

import numpy as np

from .base import BlockResult, Route, TransferSpec, Transport, TransportUnavailable

HOW = ("needs a CUDA build of PyTorch with NCCL (pip install dpsim-dualpath[torch]) and two NVIDIA GPUs "
       "in one host")

_SAFE_ENV = {  # keep NVLink multicast off (shared machines)
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pattern(n: int, seed: int):
    from .base import pattern_bytes

    return pattern_bytes(n, seed)


def _worker(rank: int, world: int, port: int, device: int, conn, init_timeout_s: float):  # pragma: no cover - runs on GPUs
    for k, v in _SAFE_ENV.items():
        os.environ.setdefault(k, v)
    import torch
    import torch.distributed as dist

    try:
        torch.cuda.set_device(device)
        kw = dict(init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                  timeout=datetime.timedelta(seconds=init_timeout_s))
        try:
            dist.init_process_group("nccl", device_id=torch.device(f"cuda:{device}"), **kw)
        except TypeError:  # older torch: no device_id
            dist.init_process_group("nccl", **kw)
        conn.send({"ok": True})
    except Exception as e:
        conn.send({"ok": False, "error": repr(e)})
        return
    dev = torch.device(f"cuda:{device}")
    bufs: dict = {}

    def buf(key, n):
        b = bufs.get(key)
        if b is None or b.numel() < n:
            b = torch.empty(max(n, 4096), dtype=torch.uint8, device=dev)
            b.fill_(1)
            bufs[key] = b
        return b[:n]

    def sync_start():
        dist.barrier()
        torch.cuda.synchronize()
        return time.perf_counter()

    while True:
        cmd = conn.recv()
        op = cmd.get("op")
        try:
            if op == "exit":
                break
            if op == "describe":
                v = torch.cuda.nccl.version()
                conn.send({"ok": True, "nccl": ".".join(map(str, v)) if isinstance(v, tuple) else str(v),
                           "device": torch.cuda.get_device_name(device)})
                continue
            if op == "p2p":
                transfers = cmd["transfers"]  # [(src_rank, dst_rank, nbytes)]
                verify = cmd.get("verify", False)
                ops = []
                recv_bufs = []
                for i, (s, d, n) in enumerate(transfers):
                    if s == rank:
                        b = buf(("s", i), n)
                        if verify:
                            b.copy_(torch.from_numpy(_pattern(n, 50 + i)).to(dev))
                        ops.append(dist.P2POp(dist.isend, b, d))
                    elif d == rank:
                        b = buf(("r", i), n)
                        if verify:
                            b.zero_()
                        recv_bufs.append((i, b, n))
                        ops.append(dist.P2POp(dist.irecv, b, s))
                t0 = sync_start()
                if ops:
                    for r in dist.batch_isend_irecv(ops):
                        r.wait()
                torch.cuda.synchronize()
                t1 = time.perf_counter()
                bad = []
                if verify:
                    for i, b, n in recv_bufs:
                        if not np.array_equal(b.cpu().numpy(), _pattern(n, 50 + i)):
                            bad.append(i)
                conn.send({"ok": True, "t0": t0, "t1": t1, "bad": bad})
                continue
            if op == "blocks":
                nb, bb, mode = cmd["n_blocks"], cmd["block_bytes"], cmd["mode"]
                src, dst = cmd["src"], cmd["dst"]
                verify = cmd.get("verify", False)
                total = nb * bb
                peer = dst if rank == src else src
                if rank not in (src, dst):
                    conn.send({"ok": True, "t0": sync_start(), "t1": time.perf_counter(), "bad": []})
                    continue
                b = buf(("b", rank == src), total)
                if verify:
                    if rank == src:
                        b.copy_(torch.from_numpy(_pattern(total, 77)).to(dev))
                    else:
                        b.zero_()
                views = [b[i * bb:(i + 1) * bb] for i in range(nb)]
                fn = dist.isend if rank == src else dist.irecv
                t0 = sync_start()
                if mode == "single":
                    fn(b, peer).wait()
                elif mode == "loop":
                    reqs = [fn(v, peer) for v in views]
                    for r in reqs:
                        r.wait()
                elif mode == "batched":
                    for r in dist.batch_isend_irecv([dist.P2POp(fn, v, peer) for v in views]):
                        r.wait()
                else:
                    raise ValueError(f"unknown block mode {mode}")
                torch.cuda.synchronize()
                t1 = time.perf_counter()
                bad = []
                if verify and rank == dst and not np.array_equal(b.cpu().numpy(), _pattern(total, 77)):
                    bad.append(0)
                conn.send({"ok": True, "t0": t0, "t1": t1, "bad": bad})
                continue
            conn.send({"ok": False, "error": f"unknown op {op!r}"})
        except Exception as e:
            conn.send({"ok": False, "error": repr(e)})
    try:
        dist.destroy_process_group()
    except Exception:
        pass


class NcclTransport(Transport):
    name = "nccl"

    def __init__(self, devices: Sequence[int] = (0, 1), timeout_s: float = 120.0,
                 max_bytes: int | None = None):
        self.devices = list(devices)
        self.timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._procs = []
        self._conns = []
        self._info = {}

    # ------------------------------------------------------------------ setup
    def check(self) -> None:
        try:
            import torch
            import torch.distributed as dist
        except ImportError as e:
            raise TransportUnavailable("nccl", f"PyTorch is not installed ({e})", HOW) from None
        if not torch.cuda.is_available():
            what = ("this PyTorch is a CPU-only build" if getattr(torch.version, "cuda", None) is None
                    else "no NVIDIA GPU visible (torch.cuda.is_available() is False)")
            raise TransportUnavailable("nccl", what, HOW)
        if not (dist.is_available() and dist.is_nccl_available()):
            raise TransportUnavailable("nccl", "this PyTorch was built without NCCL", HOW)
        n = torch.cuda.device_count()
        if n < 2 or max(self.devices) >= n:
            raise TransportUnavailable("nccl", f"needs two GPUs, {n} visible",
                                       "run on a host with two or more NVIDIA GPUs (e.g. the nvidia-h100-x2 kind)")

    def _ensure(self):
        if self._procs:
            return
        self.check()
        for k, v in _SAFE_ENV.items():
            os.environ.setdefault(k, v)
        ctx = mp.get_context("spawn")
        port = _free_port()
        for rank, dev in enumerate(self.devices[:2]):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(rank, 2, port, dev, child, self.timeout_s), daemon=True)
            p.start()
            self._procs.append(p)
            self._conns.append(parent)
        for c in self._conns:
            r = self._recv(c, self.timeout_s + 60)
            if not r.get("ok"):
                self.close()
                raise TransportUnavailable("nccl", f"process group init failed: {r.get('error')}", HOW)
        info = self._all({"op": "describe"})
        self._info = {"nccl": info[0].get("nccl"), "devices": [i.get("device") for i in info]}

    def _recv(self, conn, timeout):
        if not conn.poll(timeout):
            self.close(force=True)
            raise TimeoutError(f"nccl worker did not answer within {timeout:.0f} s")
        r = conn.recv()
        return r

    def _all(self, cmd: dict) -> list[dict]:
        for c in self._conns:
            c.send(cmd)
        out = [self._recv(c, self.timeout_s) for c in self._conns]
        for r in out:
            if not r.get("ok"):
                raise RuntimeError(f"nccl worker error: {r.get('error')}")
        return out

    def close(self, force: bool = False) -> None:
        if not force:
            for c in self._conns:
                try:
                    c.send({"op": "exit"})
                except (OSError, EOFError, BrokenPipeError):
                    pass
        for p in self._procs:
            p.join(timeout=0 if force else 15)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
            if p.is_alive():  # pragma: no cover
                p.kill()
        self._procs, self._conns = [], []

    def max_transfer_bytes(self) -> int:
        cap = 1 << 30
        if self._max_bytes:
            cap = min(cap, self._max_bytes)
        return cap

    # ---------------------------------------------------------------- routes
    def routes(self) -> list[Route]:
        return [Route("nccl", "rank0", "rank1")]

    def concurrency_groups(self):
        return [("nccl_same", [Route("nccl", "rank0", "rank1")]),
                ("nccl_duplex", [Route("nccl", "rank0", "rank1"), Route("nccl", "rank1", "rank0")])]

    def block_modes(self):
        return ["loop", "batched"]

    @staticmethod
    def _rank(loc: str | None, default: int) -> int:
        if loc is None:
            return default
        return int(loc.replace("rank", ""))

    # ------------------------------------------------------------- transfers
    def transfer_concurrent(self, specs, *, verify=False) -> list[float]:
        self._ensure()
        tr = [(self._rank(s.src, 0), self._rank(s.dst, 1), int(s.nbytes)) for s in specs]
        res = self._all({"op": "p2p", "transfers": tr, "verify": verify})
        bad = sorted(set(sum((r["bad"] for r in res), [])))
        if bad:
            raise AssertionError(f"nccl transfers {bad} delivered wrong bytes")
        start = max(r["t0"] for r in res)
        return [res[d]["t1"] - start for (_, d, _) in tr]

    def transfer(self, nbytes, *, src=None, dst=None, verify=False) -> float:
        return self.transfer_concurrent([TransferSpec(nbytes, src, dst)], verify=verify)[0]

    def transfer_blocks(self, n_blocks, block_bytes, *, src=None, dst=None, mode="loop",
                        verify=False) -> BlockResult:
        self._ensure()
        s, d = self._rank(src, 0), self._rank(dst, 1)
        res = self._all({"op": "blocks", "n_blocks": n_blocks, "block_bytes": block_bytes,
                         "mode": mode, "src": s, "dst": d, "verify": verify})
        if any(r["bad"] for r in res):
            raise AssertionError("nccl block transfer delivered wrong bytes")
        start = max(r["t0"] for r in res)
        method = {"loop": "nccl-send-per-block", "batched": "nccl-group", "single": "nccl-send"}[mode]
        return BlockResult(res[d]["t1"] - start, method)

    def describe(self) -> dict:
        d = super().describe()
        self._ensure()
        import torch

        d["torch"] = torch.__version__
        d["cuda_runtime"] = torch.version.cuda
        d.update(self._info)
        d["gpu"] = (self._info.get("devices") or [None])[0]
        d["timing"] = "host monotonic clock across 2 processes after a barrier"
        from .cuda import nvidia_smi_facts

        d.update(nvidia_smi_facts())
        return d
