"""CUDA copies through PyTorch (imported lazily): H2D / D2H (pinned and
pageable), D2D, GPU<->GPU peer copies, and many small blocks issued one by
one or batched.

Every copy runs on a non-default stream and is timed with CUDA events
recorded on that stream (``elapsed_time``; ~0.5 us resolution).  Single
transfers are *gated*: a short GPU spin (``torch.cuda._sleep``) is queued
before the start event, so the host has submitted the copy before the
start event fires and the interval is the copy on the device, not Python's
launch overhead (``gate=False`` measures the latter too; its link kinds get
the suffix ``_launch``).  Block transfers are never gated: their submission
cost is what they measure.

Locations: ``host`` (pinned, ``cudaHostAlloc``), ``host_pageable`` (ordinary
malloc'ed memory), ``cuda:N``.

Link kinds: ``h2d``, ``d2h`` (pinned), ``h2d_pageable``, ``d2h_pageable``,
``d2d`` (within one GPU), ``p2p`` (GPU0 -> GPU1: NVLink where present).

Block modes (``transfer_blocks``):

* ``loop``    -- one ``Tensor.copy_`` (cudaMemcpyAsync) per block, issued from
  Python: the submission-bound path of §S4.
* ``batched`` -- one ``cuMemcpyBatchAsync`` call (CUDA >= 12.8 driver), reached
  through ``cuGetProcAddress`` with ctypes on ``libcuda.so.1`` (no extra Python
  package).  Where the driver lacks it, the fallback is ``graph`` and the
  result's ``method`` says so.
* ``graph``   -- the per-block copies captured once into a CUDA graph and
  replayed (one launch for all blocks).
* ``single``  -- one copy of the same total bytes.

Concurrent transfers: each on its own stream, all held behind one "go" event
recorded after a short GPU spin (``torch.cuda._sleep``) so that they start
together although Python submits them one after another; each transfer's
time is measured from that event to its own end event.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
from typing import Sequence

import numpy as np

from .base import BlockResult, Route, TransferSpec, Transport, TransportUnavailable, pattern_bytes

HOW_TORCH = ("pip install dpsim-dualpath[torch] (torch==2.13.0 with CUDA) on a machine with an "
             "NVIDIA GPU and driver")

# ----------------------------------------------------------------- driver API


class _CUmemLocation(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("id", ctypes.c_int)]


class _CUmemcpyAttributes(ctypes.Structure):
    _fields_ = [
        ("srcAccessOrder", ctypes.c_int),
        ("srcLocHint", _CUmemLocation),
        ("dstLocHint", _CUmemLocation),
        ("flags", ctypes.c_uint),
    ]


_CU_MEMCPY_SRC_ACCESS_ORDER_STREAM = 1


class DriverBatchCopy:
    """``cuMemcpyBatchAsync`` through ctypes.

    The symbol is requested with ``cuGetProcAddress_v2(..., cudaVersion=12080)``
    so that the driver hands back the CUDA 12.8 ABI (with the ``failIdx``
    argument) whatever its own version; CUDA 13 headers renamed that ABI.
    """

    def __init__(self):
        self.error = None
        self.fn = None
        self.driver_version = None
        try:
            lib = ctypes.CDLL("libcuda.so.1")
        except OSError as e:
            self.error = f"libcuda.so.1 not loadable ({e})"
            return
        self.lib = lib
        v = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(v)) == 0:
            self.driver_version = v.value
        if not self.driver_version or self.driver_version < 12080:
            self.error = (f"driver CUDA version {self.driver_version} < 12.8: "
                          "cuMemcpyBatchAsync not available")
            return
        pfn = ctypes.c_void_p()
        status = ctypes.c_int(0)
        try:
            gpa = lib.cuGetProcAddress_v2
            gpa.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int,
                            ctypes.c_uint64, ctypes.POINTER(ctypes.c_int)]
            rc = gpa(b"cuMemcpyBatchAsync", ctypes.byref(pfn), 12080, 0, ctypes.byref(status))
        except AttributeError:
            self.error = "cuGetProcAddress_v2 missing from libcuda"
            return
        if rc != 0 or not pfn.value:
            self.error = f"cuGetProcAddress(cuMemcpyBatchAsync) failed: CUresult {rc}, status {status.value}"
            return
        proto = ctypes.CFUNCTYPE(
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_uint64),  # dsts
            ctypes.POINTER(ctypes.c_uint64),  # srcs
            ctypes.POINTER(ctypes.c_size_t),  # sizes
            ctypes.c_size_t,  # count
            ctypes.POINTER(_CUmemcpyAttributes),  # attrs
            ctypes.POINTER(ctypes.c_size_t),  # attrsIdxs
            ctypes.c_size_t,  # numAttrs
            ctypes.POINTER(ctypes.c_size_t),  # failIdx
            ctypes.c_void_p,  # hStream
        )
        self.fn = proto(pfn.value)
        self.attr = _CUmemcpyAttributes()
        self.attr.srcAccessOrder = _CU_MEMCPY_SRC_ACCESS_ORDER_STREAM
        self.attr_idx = (ctypes.c_size_t * 1)(0)
        self.fail_idx = ctypes.c_size_t(0)

    @property
    def available(self) -> bool:
        return self.fn is not None

    def prepare(self, dst_ptrs, src_ptrs, sizes):
        n = len(dst_ptrs)
        return ((ctypes.c_uint64 * n)(*dst_ptrs), (ctypes.c_uint64 * n)(*src_ptrs),
                (ctypes.c_size_t * n)(*sizes), n)

    def __call__(self, prepared, stream_handle: int) -> int:
        d, s, z, n = prepared
        return self.fn(d, s, z, n, ctypes.byref(self.attr), self.attr_idx, 1,
                       ctypes.byref(self.fail_idx), ctypes.c_void_p(stream_handle))


# ------------------------------------------------------------------ transport


def _import_torch():
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise TransportUnavailable("cuda", f"PyTorch is not installed ({e})", HOW_TORCH) from None
    return torch


class CudaTransport(Transport):
    name = "cuda"

    def __init__(self, devices: Sequence[int] | None = None, max_bytes: int | None = None,
                 spin_cycles: int = 2_000_000, gate: bool = True, gate_cycles: int = 200_000,
                 kind_suffix: str | None = None):
        self.devices = list(devices) if devices is not None else None
        self._max_bytes = max_bytes
        self.spin_cycles = spin_cycles
        # gate=True: a short GPU spin precedes the start event, so the timed
        # interval is the copy on the device, not Python's launch overhead.
        self.gate = bool(gate)
        self.gate_cycles = int(gate_cycles)
        self.kind_suffix = kind_suffix if kind_suffix is not None else ("" if self.gate else "_launch")
        self.torch = None
        self._bufs: dict = {}
        self._streams: dict = {}
        self._graphs: dict = {}
        self._batch: DriverBatchCopy | None = None
        self.batch_note = ""

    # ------------------------------------------------------------------ setup
    def check(self) -> None:
        torch = _import_torch()
        if not torch.cuda.is_available():
            if getattr(torch.version, "cuda", None) is None:
                raise TransportUnavailable(
                    "cuda", f"this PyTorch ({torch.__version__}) is a CPU-only build",
                    "install a CUDA build of torch (pip install dpsim-dualpath[torch] from the CUDA wheel index) "
                    "on a machine with an NVIDIA GPU")
            raise TransportUnavailable(
                "cuda", "no NVIDIA GPU visible (torch.cuda.is_available() is False)",
                "run on a machine with an NVIDIA GPU and driver; check nvidia-smi and CUDA_VISIBLE_DEVICES")
        self.torch = torch
        n = torch.cuda.device_count()
        if self.devices is None:
            self.devices = list(range(min(n, 2)))
        bad = [d for d in self.devices if d >= n]
        if bad:
            ok = ",".join(str(i) for i in range(min(n, 2))) or "0"
            raise TransportUnavailable("cuda", f"GPU(s) {bad} requested but only {n} visible",
                                       f"pick GPUs among the {n} visible (0..{n - 1}) with --devices, "
                                       f"e.g. `--devices {ok}` (python -m dpsim.calibration run and "
                                       f"python -m dpsim.calibration.hil both take it)")
        for d in self.devices:
            torch.cuda.init()
            torch.empty(1, device=f"cuda:{d}")  # make the primary context current
        if len(self.devices) >= 2:
            a, b = self.devices[:2]
            self.peer = bool(torch.cuda.can_device_access_peer(a, b))
        else:
            self.peer = None
        torch.cuda.set_device(self.devices[0])
        self._batch = DriverBatchCopy()
        if not self._batch.available:
            self.batch_note = f"cuMemcpyBatchAsync unavailable ({self._batch.error}); batched mode uses a CUDA graph"

    def close(self) -> None:
        self._graphs.clear()
        self._bufs.clear()
        self._streams.clear()
        if self.torch is not None:
            self.torch.cuda.synchronize()
            self.torch.cuda.empty_cache()

    def _need(self):
        if self.torch is None:
            self.check()
        return self.torch

    @property
    def dev0(self) -> str:
        return f"cuda:{self.devices[0]}"

    def max_transfer_bytes(self) -> int:
        torch = self._need()
        free, _ = torch.cuda.mem_get_info(self.devices[0])
        cap = min(free // 8, 1 << 30)
        from .base import available_memory_bytes

        cap = min(cap, available_memory_bytes() // 8)
        if self._max_bytes:
            cap = min(cap, self._max_bytes)
        return int(cap)

    # ---------------------------------------------------------------- routes
    def routes(self) -> list[Route]:
        self._need()
        d0 = self.dev0
        x = self.kind_suffix
        rs = [
            Route("h2d" + x, "host", d0),
            Route("d2h" + x, d0, "host"),
            Route("h2d_pageable" + x, "host_pageable", d0),
            Route("d2h_pageable" + x, d0, "host_pageable"),
            Route("d2d" + x, d0, d0),
        ]
        if len(self.devices) >= 2:
            rs.append(Route("p2p" + x, d0, f"cuda:{self.devices[1]}"))
        return rs

    def concurrency_groups(self):
        self._need()
        d0 = self.dev0
        h2d, d2h = Route("h2d", "host", d0), Route("d2h", d0, "host")
        groups = [("h2d_same", [h2d]), ("d2h_same", [d2h]), ("h2d+d2h", [h2d, d2h])]
        if len(self.devices) >= 2:
            d1 = f"cuda:{self.devices[1]}"
            groups += [
                ("p2p_same", [Route("p2p", d0, d1)]),
                ("p2p_duplex", [Route("p2p", d0, d1), Route("p2p", d1, d0)]),
                ("h2d_2gpu", [h2d, Route("h2d", "host", d1)]),
            ]
        return groups

    def block_routes(self) -> list[Route]:
        self._need()
        return [Route("h2d", "host", self.dev0), Route("d2h", self.dev0, "host")]

    def block_modes(self):
        return ["loop", "batched", "graph"]

    # --------------------------------------------------------------- buffers
    def _buf(self, key, loc: str, nbytes: int):
        torch = self.torch
        k = (key, loc)
        b = self._bufs.get(k)
        if b is None or b.numel() < nbytes:
            self._bufs.pop(k, None)
            n = max(int(nbytes), 4096)
            if loc == "host":
                b = torch.empty(n, dtype=torch.uint8, pin_memory=True)
                b.fill_(1)
            elif loc == "host_pageable":
                b = torch.empty(n, dtype=torch.uint8)
                b.fill_(1)
            elif loc.startswith("cuda"):
                b = torch.empty(n, dtype=torch.uint8, device=loc)
                b.fill_(1)
            else:
                raise ValueError(f"cuda transport: unknown location {loc!r}")
            self._bufs[k] = b
        return b

    def _stream(self, slot, dev: str):
        k = (slot, dev)
        s = self._streams.get(k)
        if s is None:
            s = self.torch.cuda.Stream(device=dev)
            self._streams[k] = s
        return s

    @staticmethod
    def _copy_dev(src: str, dst: str) -> str:
        if src.startswith("cuda"):
            return src
        if dst.startswith("cuda"):
            return dst
        raise ValueError("cuda transport: one end must be a GPU")

    def _fill(self, t, pattern: np.ndarray):
        torch = self.torch
        src = torch.from_numpy(pattern)
        t[: pattern.size].copy_(src)

    def _read(self, t, n) -> np.ndarray:
        return t[:n].cpu().numpy()

    # ------------------------------------------------------------- transfers
    def transfer(self, nbytes, *, src=None, dst=None, verify=False) -> float:
        torch = self._need()
        src = src or "host"
        dst = dst or self.dev0
        dev = self._copy_dev(src, dst)
        a = self._buf(("s", 0), src, nbytes)[:nbytes]
        b = self._buf(("d", 0), dst, nbytes)[:nbytes]
        if verify:
            pat = pattern_bytes(nbytes, seed=int(np.random.randint(1 << 30)))
            self._fill(a, pat)
            b.zero_()
            torch.cuda.synchronize(dev)
        s = self._stream(0, dev)
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        with torch.cuda.device(dev), torch.cuda.stream(s):
            if self.gate:
                try:
                    torch.cuda._sleep(self.gate_cycles)
                except Exception:  # pragma: no cover - private API gone
                    self.gate = False
            e0.record(s)
            b.copy_(a, non_blocking=True)
            e1.record(s)
        e1.synchronize()
        dt = e0.elapsed_time(e1) * 1e-3
        if verify:
            assert np.array_equal(self._read(b, nbytes), pat), f"cuda {src}->{dst}: destination differs"
        return dt

    def transfer_concurrent(self, specs, *, verify=False) -> list[float]:
        torch = self._need()
        specs = [TransferSpec(sp.nbytes, sp.src or "host", sp.dst or self.dev0) for sp in specs]
        devs = [self._copy_dev(sp.src, sp.dst) for sp in specs]
        pairs = []
        pats = []
        for i, sp in enumerate(specs):
            a = self._buf(("s", i), sp.src, sp.nbytes)[: sp.nbytes]
            b = self._buf(("d", i), sp.dst, sp.nbytes)[: sp.nbytes]
            if verify:
                pat = pattern_bytes(sp.nbytes, seed=100 + i)
                self._fill(a, pat)
                b.zero_()
                pats.append(pat)
            pairs.append((a, b))
        for d in set(devs):
            torch.cuda.synchronize(d)
        # one go-event per device, all released by the master's spin kernel
        master = devs[0]
        go = {}
        ls = self._stream("launch", master)
        with torch.cuda.device(master), torch.cuda.stream(ls):
            try:
                torch.cuda._sleep(self.spin_cycles)
            except Exception:  # pragma: no cover - private API gone
                pass
            g = torch.cuda.Event(enable_timing=True)
            g.record(ls)
        go[master] = g
        for d in set(devs) - {master}:
            sd = self._stream("launch", d)
            with torch.cuda.device(d):
                sd.wait_event(g)
                gd = torch.cuda.Event(enable_timing=True)
                gd.record(sd)
            go[d] = gd
        ends = []
        for i, ((a, b), d) in enumerate(zip(pairs, devs)):
            s = self._stream(i, d)
            with torch.cuda.device(d), torch.cuda.stream(s):
                s.wait_event(go[d])
                b.copy_(a, non_blocking=True)
                e = torch.cuda.Event(enable_timing=True)
                e.record(s)
            ends.append(e)
        for e in ends:
            e.synchronize()
        out = [go[d].elapsed_time(e) * 1e-3 for d, e in zip(devs, ends)]
        if verify:
            for i, (a, b) in enumerate(pairs):
                assert np.array_equal(self._read(b, specs[i].nbytes), pats[i]), f"cuda concurrent transfer {i} corrupted"
        return out

    def _block_views(self, n_blocks, block_bytes, src, dst):
        total = n_blocks * block_bytes
        a = self._buf(("bs", 0), src, total)
        b = self._buf(("bd", 0), dst, total)
        perm = np.random.permutation(n_blocks)
        srcs = [a[i * block_bytes:(i + 1) * block_bytes] for i in range(n_blocks)]
        dsts = [b[int(p) * block_bytes:(int(p) + 1) * block_bytes] for p in perm]
        return a, b, perm, srcs, dsts

    def transfer_blocks(self, n_blocks, block_bytes, *, src=None, dst=None, mode="loop",
                        verify=False) -> BlockResult:
        torch = self._need()
        src = src or "host"
        dst = dst or self.dev0
        dev = self._copy_dev(src, dst)
        total = n_blocks * block_bytes
        s = self._stream(0, dev)
        a, b, perm, srcs, dsts = self._block_views(n_blocks, block_bytes, src, dst)
        pat = None
        if verify:
            pat = pattern_bytes(total, seed=11)
            self._fill(a, pat)
            b[:total].zero_()
        torch.cuda.synchronize(dev)
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        method = mode
        extra = {}
        if mode == "batched" and not (self._batch and self._batch.available):
            mode = "graph"
            extra["fallback"] = self.batch_note
        with torch.cuda.device(dev), torch.cuda.stream(s):
            if mode == "single":
                e0.record(s)
                b[:total].copy_(a[:total], non_blocking=True)
                e1.record(s)
                method = "cudaMemcpyAsync"
                perm = np.arange(n_blocks)
            elif mode == "loop":
                e0.record(s)
                for d_, s_ in zip(dsts, srcs):
                    d_.copy_(s_, non_blocking=True)
                e1.record(s)
                method = "cudaMemcpyAsync-per-block"
            elif mode == "batched":
                prep = self._batch.prepare([d_.data_ptr() for d_ in dsts],
                                           [s_.data_ptr() for s_ in srcs], [block_bytes] * n_blocks)
                e0.record(s)
                rc = self._batch(prep, s.cuda_stream)
                e1.record(s)
                if rc != 0:
                    e1.synchronize()
                    self._batch.fn = None
                    self._batch.error = f"cuMemcpyBatchAsync returned CUresult {rc}"
                    self.batch_note = f"cuMemcpyBatchAsync failed ({self._batch.error}); batched mode uses a CUDA graph"
                    return self.transfer_blocks(n_blocks, block_bytes, src=src, dst=dst, mode="batched",
                                                verify=verify)
                method = "cuMemcpyBatchAsync"
            elif mode == "graph":
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g, stream=s):
                    for d_, s_ in zip(dsts, srcs):
                        d_.copy_(s_, non_blocking=True)
                s.synchronize()
                if verify:
                    b[:total].zero_()
                    torch.cuda.synchronize(dev)
                e0.record(s)
                g.replay()
                e1.record(s)
                method = "cuda-graph"
            else:
                raise ValueError(f"cuda transport: unknown block mode {mode!r}")
        e1.synchronize()
        dt = e0.elapsed_time(e1) * 1e-3
        if verify:
            got = self._read(b, total).reshape(n_blocks, block_bytes)
            want = pat.reshape(n_blocks, block_bytes)
            assert np.array_equal(got[perm], want), f"cuda block copy ({method}) misplaced data"
        return BlockResult(dt, method, extra)

    # -------------------------------------------------------------- metadata
    def describe(self) -> dict:
        d = super().describe()
        torch = self._need()
        d["torch"] = torch.__version__
        d["cuda_runtime"] = torch.version.cuda
        d["devices"] = [torch.cuda.get_device_name(i) for i in self.devices]
        d["gpu"] = d["devices"][0] if d["devices"] else None
        d["device_count"] = torch.cuda.device_count()
        d["peer_access"] = self.peer
        d["driver"] = None
        d["driver_cuda_version"] = self._batch.driver_version if self._batch else None
        d["batched_copy"] = "cuMemcpyBatchAsync" if (self._batch and self._batch.available) else "cuda-graph"
        d["batched_copy_note"] = self.batch_note
        d["timing"] = ("CUDA events on a non-default stream; single transfers gated behind a GPU spin "
                       f"({self.gate_cycles} cycles) so launch overhead is excluded" if self.gate else
                       "CUDA events on a non-default stream, recorded around the Python copy_ call "
                       "(includes launch overhead)")
        d.update(nvidia_smi_facts())
        return d


def nvidia_smi_facts() -> dict:
    """Driver version, PCIe link and topology from nvidia-smi (best effort)."""
    out: dict = {}
    try:
        q = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,driver_version,pcie.link.gen.current,"
             "pcie.link.gen.max,pcie.link.width.current,memory.total,clocks.max.sm",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        if q.returncode == 0:
            rows = [r.strip() for r in q.stdout.strip().splitlines() if r.strip()]
            out["nvidia_smi_gpus"] = rows
            if rows:
                out["driver"] = rows[0].split(",")[2].strip()
        t = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True, timeout=20)
        if t.returncode == 0:
            out["topology"] = t.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        out["cuda_visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return out
