"""Hardware-in-the-loop (HIL) link backend: every simulated transfer runs for real.

:class:`HardwareBackend` is a :class:`dpsim.net.ExternalBackend`.  When the simulation starts a
transfer, the backend maps its route to a real operation, runs it on a worker thread (never on
the simulation's thread) and, once the hardware is done, reports the completion back into the
simulation at ``t_start + measured duration``.  The simulation runs on a
``simpy.rt.RealtimeEnvironment`` (:func:`make_env`), so simulated time follows wall time and
transfers that overlap in the simulation overlap on the hardware: they really share the disk,
the PCIe links and host memory.  A small poller process (every ``poll_s`` of simulated time,
only while transfers are in flight) drains a thread-safe queue of finished transfers and calls
``net.complete(tr)``.

Mapping (one host with two GPUs: node 0 = GPU 0 = the PE, node 1 = GPU 1 = the DE; run the
simulation with ``cluster.gpus_per_node=1``, ``prefill_nodes=1``, ``decode_nodes=1``; global
GPU ``g`` -> ``devices[g % len(devices)]``, node ``n`` -> host region ``n % 2``).  With one GPU
(``devices=[0]``) the PE and the DE both run on GPU 0: their copies share that GPU's one PCIe
link, where the simulated 1P1D has one per GPU (``describe()["shared_pcie"]``):

=====================================  =====================  ==============================
route kind (tag)                       ``cuda`` mapping       ``cpu`` mapping (CI)
=====================================  =====================  ==============================
storage_read (``read``)                O_DIRECT file read into the node's pinned host region
storage_write (``persist[_gen]``)      O_DIRECT file write from the node's host region
h2d (``pe_in`` PE path, ``de_h2d``)    pinned H2D            memcpy host -> "GPU" buffer
d2h (``d2h``)                          pinned D2H            memcpy "GPU" buffer -> host
remote_h2d (``pe_in`` DE path)         pinned H2D from the DE's host region into the PE GPU
gpu_to_remote (``pe_out``)             pinned D2H from the PE GPU into the DE's host region
model (``ep``)                         not supported: run with ``system.model_traffic=false``
=====================================  =====================  ==============================

The cross-node (CNIC) routes start or end in a host-DRAM buffer, so on one host they are an
H2D into / a D2H out of the GPU at the other end: host memory is shared, and one PCIe
traversal (~55 GB/s) is the bandwidth class of a 400 Gbps CNIC (~48 GB/s); a GPU peer copy
would move HBM to HBM over NVLink (~390 GB/s), neither the right memory nor the right speed.
``dpsim.cluster.profile.apply_profile(cfg, profile, "cuda")`` configures the flow model the
same way.

Buffers are allocated once (:meth:`HardwareBackend.open`): a pinned host pool split into one
region per node, a device pool per GPU, a pre-written read file and a pre-allocated write file.
Transfers are real bytes copied from/to slots of ``chunk_bytes`` taken round-robin from the
pools (offsets modulo the pool size; the data is not meaningful).  A transfer is split into
pieces of at most ``chunk_bytes`` issued back to back on the transfer's own CUDA stream (file
I/O: ``file_chunk_bytes`` requests kept ``queue_depth`` deep).  A transfer the simulation paces
(``max_rate``: layerwise prefill streams KV one layer at a time) is split into at least
``pace_pieces`` pieces, piece ``i`` released no earlier than ``i x piece / max_rate`` after the
start, and it completes no earlier than ``size / max_rate`` (the flow model's semantics).

Timing: wall clock (``time.perf_counter``) from the moment the simulation started the transfer
to the end of the last piece (``cudaStreamSynchronize`` / the last ``pread``/``pwrite``), so it
includes launch and queueing costs, as the real system pays them.  ``speed`` = simulated
seconds per wall second (1.0 = real time, the only setting where overlaps are faithful).

    from dpsim.hw.replay import HardwareBackend, make_env
    be = HardwareBackend("cuda").open()              # or "cpu" (CI), file_dir=..., pools...
    env = make_env(1.0)
    sim = dpsim.runner.build(cfg, backend=be, env=env); env.sync(); sim.run()
    be.records                                       # one dict per executed transfer
"""
from __future__ import annotations

import concurrent.futures as cf
import ctypes
import math
import mmap
import os
import queue
import shutil
import tempfile
import threading
import time

import numpy as np

from dpsim.cluster.routes import RouteKind
from dpsim.net import ExternalBackend

from .base import PAGE, TransportUnavailable

__all__ = ["HardwareBackend", "HardwareReplayError", "make_env", "record_transfers", "resolve", "Op"]

INF = math.inf


class HardwareReplayError(RuntimeError):
    """A transfer could not be mapped or failed on the hardware."""


def make_env(speed: float = 1.0):
    """A real-time SimPy environment: ``speed`` simulated seconds per wall second."""
    import simpy.rt

    if not speed > 0:
        raise ValueError(f"speed must be > 0 (got {speed!r})")
    return simpy.rt.RealtimeEnvironment(factor=1.0 / float(speed), strict=False)


def record_transfers(sim) -> list:
    """Keep every Transfer the simulation creates (through the network's ``on_transfer`` hook,
    after any observer already set); returns the list that fills as the simulation runs."""
    out: list = []
    net = sim.net
    prev = net.on_transfer
    if prev is None:
        net.on_transfer = out.append
    else:
        def both(tr, _prev=prev, _add=out.append):
            _prev(tr)
            _add(tr)
        net.on_transfer = both
    return out


class Op:
    """A real operation for one simulated route."""

    __slots__ = ("label", "kind", "node", "gpu", "gid")

    def __init__(self, label: str, kind: str, node: int, gpu: int | None = None, gid: int | None = None):
        self.label = label  # route class: storage_read, storage_write, h2d, d2h, remote_h2d, gpu_to_remote
        self.kind = kind    # what runs: file_read, file_write, h2d, d2h
        self.node = node    # host region
        self.gpu = gpu      # local device index (None for file I/O)
        self.gid = gid      # simulated global GPU id

    def __repr__(self) -> str:  # pragma: no cover
        return f"Op({self.label}: {self.kind} node={self.node} gpu={self.gpu})"


def _node(x) -> int:
    """The host node of a route endpoint (a Node or a GPU)."""
    return x.nid if hasattr(x, "nid") else x.node.nid


# Route kind -> (hardware operation, the endpoint whose node hosts it, the endpoint whose GPU
# it uses or None): the one table that maps simulated routes onto real operations.
_OPS = {
    RouteKind.STORAGE_READ: ("file_read", "src", None),
    RouteKind.STORAGE_WRITE: ("file_write", "src", None),
    RouteKind.H2D: ("h2d", "src", "dst"),           # node DRAM -> own GPU
    RouteKind.REMOTE_H2D: ("h2d", "src", "dst"),    # DE node DRAM -> PE GPU
    RouteKind.D2H: ("d2h", "dst", "src"),           # GPU -> own node DRAM
    RouteKind.GPU_TO_REMOTE: ("d2h", "dst", "src"), # PE GPU -> DE node DRAM
}


def resolve(tr) -> tuple:
    """``(route kind, operation, host node, global GPU id or None)`` of a simulated transfer,
    read from its route's kind and endpoints (dpsim.cluster.routes)."""
    route = tr.route
    kind = getattr(route, "kind", None)
    if kind == RouteKind.MODEL or not (tr.size < INF):
        raise HardwareReplayError(
            f"transfer {tr.tag}: model-traffic streams (infinite size) cannot be replayed on "
            f"hardware -- run with system.model_traffic=false")
    if kind not in _OPS:
        raise HardwareReplayError(f"transfer {tr.tag}: no hardware mapping for route kind {kind!r} "
                                  f"(a dpsim.cluster.routes.Route is needed)")
    op, host, gpu = _OPS[kind]
    host_node = _node(getattr(route, host))
    gid = getattr(route, gpu).gid if gpu is not None else None
    return str(kind), op, host_node, gid


def _filesystem(path) -> str | None:
    """``type (device on mountpoint)`` of the filesystem holding ``path`` (best effort)."""
    best, fs = "", None
    try:
        real = os.path.realpath(path or ".")
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mnt = parts[1]
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                    best, fs = mnt, f"{parts[2]} ({parts[0]} on {mnt})"
    except OSError:
        pass
    return fs


class _HostPool:
    """Page-aligned host memory: pinned torch tensor (cuda) or anonymous mmap (cpu)."""

    def __init__(self, nbytes: int, pinned: bool, torch=None):
        self.size = nbytes
        self.tensor = None
        self._mm = None
        if pinned:
            # exactly nbytes (the caching host allocator rounds sizes up to a power of two);
            # cudaHostAlloc memory is page aligned, else take a padded one
            t = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
            if t.data_ptr() % PAGE:  # pragma: no cover - not seen
                del t
                t = torch.empty(nbytes + PAGE, dtype=torch.uint8, pin_memory=True)
            pad = (-t.data_ptr()) % PAGE
            self.tensor = t[pad:pad + nbytes]
            self.np = self.tensor.numpy()
        else:
            self._mm = mmap.mmap(-1, nbytes)
            self.np = np.frombuffer(self._mm, dtype=np.uint8)
        self.np[::PAGE] = 1  # fault every page in now, not inside a timed copy
        self.addr = self.np.ctypes.data
        assert self.addr % PAGE == 0

    def view(self, off: int, n: int):
        return memoryview(self.np[off:off + n])

    def close(self):
        self.np = None
        self.tensor = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # pragma: no cover - a view is still alive
                pass


class HardwareBackend(ExternalBackend):
    """Runs simulated transfers on real hardware (see the module docstring).

    ``device``: ``"cuda"`` (pinned H2D/D2H through PyTorch on ``devices``) or ``"cpu"`` (host
    memcpy stands in for every GPU copy; CI).  Pools: ``host_pool_bytes`` (split into 2 node
    regions), ``dev_pool_bytes`` per GPU, ``file_bytes`` for each of the read and write files in
    ``file_dir`` (a temporary directory by default).
    """

    name = "hardware"

    def __init__(self, device: str = "cuda", *, devices=None, file_dir: str | None = None,
                 file_bytes: int = 4 << 30, host_pool_bytes: int = 8 << 30, dev_pool_bytes: int = 4 << 30,
                 chunk_bytes: int = 64 << 20, file_chunk_bytes: int = 1 << 20, queue_depth: int = 4,
                 workers: int = 32, io_workers: int = 32, poll_s: float = 1e-4, speed: float = 1.0,
                 o_direct: bool = True, pace_pieces: int = 30, n_regions: int = 2):
        if device not in ("cuda", "cpu"):
            raise ValueError(f"device must be 'cuda' or 'cpu' (got {device!r})")
        self.device = device
        self.mapping = device  # dpsim.cluster.profile mapping name
        # None: the first two visible GPUs (cuda), or GPU 0 alone where only one is visible;
        # a list: exactly those (one GPU: the PE and the DE both run on it).
        self.devices = None if devices is None else [int(d) for d in devices]
        self.file_dir = file_dir
        self.chunk = max(PAGE, (int(chunk_bytes) // PAGE) * PAGE)
        self.fchunk = max(PAGE, (int(file_chunk_bytes) // PAGE) * PAGE)
        if self.chunk % self.fchunk:
            raise ValueError("chunk_bytes must be a multiple of file_chunk_bytes")
        self.n_regions = int(n_regions)
        per_region = max(self.chunk, (int(host_pool_bytes) // self.n_regions // self.chunk) * self.chunk)
        self.region_bytes = per_region
        self.dev_bytes = max(self.chunk, (int(dev_pool_bytes) // self.chunk) * self.chunk)
        self.file_bytes = max(self.chunk, (int(file_bytes) // self.chunk) * self.chunk)
        self.queue_depth = max(1, int(queue_depth))
        self.workers = int(workers)
        self.io_workers = int(io_workers)
        self.poll_s = float(poll_s)
        self.speed = float(speed)
        self.want_o_direct = bool(o_direct)
        self.pace_pieces = max(1, int(pace_pieces))
        self.torch = None
        self.host: _HostPool | None = None
        self.dev: dict = {}
        self._streams: queue.SimpleQueue | None = None
        self._pool = None
        self._io = None
        self._rfd = self._wfd = None
        self._tmpdir = None
        self.o_direct = None
        self.o_direct_note = ""
        self._lock = threading.Lock()
        self._slot = [0] * self.n_regions
        self._dslot: dict = {}
        self._rcur = 0
        self._wcur = 0
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self.env = None
        self.net = None
        self.inflight = 0
        self._idle = None
        self.gen = 0
        self.records: list = []
        self.opened = False
        self.meta: dict = {}

    # ------------------------------------------------------------------ setup
    def open(self) -> "HardwareBackend":
        """Check the hardware and allocate every buffer (raises TransportUnavailable)."""
        if self.opened:
            return self
        try:
            return self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> "HardwareBackend":
        t0 = time.perf_counter()
        if self.device == "cuda":
            from .cuda import CudaTransport

            ct = CudaTransport(devices=self.devices)
            ct.check()  # one clear TransportUnavailable if torch / GPUs are missing
            torch = ct.torch
            self.devices = list(ct.devices)  # resolved (auto: min(2, visible))
            self.meta["devices"] = list(self.devices)
            self.meta["shared_pcie"] = len(self.devices) == 1
            self.torch = torch
            self.meta["gpus"] = [torch.cuda.get_device_name(d) for d in self.devices]
            self.meta["torch"] = torch.__version__
        self.meta["device"] = self.device
        self._open_files()
        pinned = self.device == "cuda"
        self.host = _HostPool(self.region_bytes * self.n_regions, pinned, self.torch)
        if self.devices is None:  # cpu: two host "GPU" buffers
            self.devices = [0, 1]
        ndev = len(self.devices) if self.device == "cuda" else max(2, len(self.devices))
        for i in range(ndev):
            if self.device == "cuda":
                d = self.devices[i]
                t = self.torch.empty(self.dev_bytes, dtype=self.torch.uint8, device=f"cuda:{d}")
                t.fill_(1)
                self.dev[i] = t
            else:
                self.dev[i] = _HostPool(self.dev_bytes, False)
            self._dslot[i] = 0
        self._streams = queue.SimpleQueue()
        for _ in range(self.workers):
            if self.device == "cuda":
                self._streams.put({i: self.torch.cuda.Stream(device=f"cuda:{self.devices[i]}")
                                   for i in range(ndev)})
            else:
                self._streams.put(None)
        self._pool = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="hil-xfer")
        self._io = cf.ThreadPoolExecutor(self.io_workers, thread_name_prefix="hil-io")
        self.opened = True
        # Warm-up: one small operation of every kind on every GPU (lazy initialisation out of
        # the timed replay).
        for i in range(ndev):
            for kind in ("h2d", "d2h"):
                self.measure([Op(kind, kind, i % self.n_regions, i, i)], 1 << 20)
        for kind in ("file_read", "file_write"):
            self.measure([Op("storage", kind, 0)], 1 << 20)
        self.meta.update({"host_pool_bytes": self.region_bytes * self.n_regions, "dev_pool_bytes": self.dev_bytes,
                          "file_bytes": self.file_bytes, "file_dir": self.file_dir, "o_direct": self.o_direct,
                          "o_direct_note": self.o_direct_note, "chunk_bytes": self.chunk,
                          "file_chunk_bytes": self.fchunk, "queue_depth": self.queue_depth,
                          "open_s": time.perf_counter() - t0})
        return self

    def _open_direct(self, path: str, flags: int) -> int:
        """Open ``path`` with O_DIRECT when the filesystem takes it (probed with one aligned
        read/write), else buffered (noted in ``o_direct_note``)."""
        if self.want_o_direct and hasattr(os, "O_DIRECT"):
            fd = None
            try:
                fd = os.open(path, flags | os.O_DIRECT)
                buf = _HostPool(PAGE, False)
                try:
                    if flags & os.O_RDWR:
                        os.pwritev(fd, [buf.view(0, PAGE)], 0)
                    os.preadv(fd, [buf.view(0, PAGE)], 0)
                finally:
                    buf.close()
                if self.o_direct is None:
                    self.o_direct, self.o_direct_note = True, "O_DIRECT"
                return fd
            except OSError as e:
                if fd is not None:
                    os.close(fd)
                self.o_direct = False
                self.o_direct_note = (f"O_DIRECT unsupported in {self.file_dir!r} ({e.strerror}); buffered "
                                      f"I/O with posix_fadvise(DONTNEED) before each read")
        else:
            self.o_direct = False
            self.o_direct_note = "O_DIRECT off; buffered I/O"
        return os.open(path, flags)

    def _open_files(self) -> None:
        if self.file_dir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="dpsim_hil_")
            self.file_dir = self._tmpdir
        if not os.path.isdir(self.file_dir) or not os.access(self.file_dir, os.W_OK):
            raise TransportUnavailable("file", f"directory {self.file_dir!r} is missing or not writable",
                                       "pass file_dir= (--file-dir) a writable directory on the disk to use")
        rpath = os.path.join(self.file_dir, f"dpsim_hil_{os.getpid()}.read")
        wpath = os.path.join(self.file_dir, f"dpsim_hil_{os.getpid()}.write")
        self._paths = [rpath, wpath]
        blk = np.random.default_rng(1).integers(0, 255, size=min(16 << 20, self.file_bytes), dtype=np.uint8)
        data = blk.tobytes()
        with open(rpath, "wb") as f:
            left = self.file_bytes
            while left > 0:
                n = min(len(data), left)
                f.write(data[:n])
                left -= n
            f.flush()
            os.fsync(f.fileno())
        fd = os.open(rpath, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        with open(wpath, "wb") as f:
            pass
        fd = os.open(wpath, os.O_RDWR)
        try:
            try:
                os.posix_fallocate(fd, 0, self.file_bytes)
            except OSError:
                os.ftruncate(fd, self.file_bytes)
        finally:
            os.close(fd)
        self._rfd = self._open_direct(rpath, os.O_RDONLY)
        self._wfd = self._open_direct(wpath, os.O_RDWR)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._io.shutdown(wait=True)
            self._pool = self._io = None
        if self.device == "cuda" and self.torch is not None:
            self.torch.cuda.synchronize()
        for fd in (self._rfd, self._wfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._rfd = self._wfd = None
        for p in getattr(self, "_paths", []):
            try:
                os.unlink(p)
            except OSError:
                pass
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        if self.host is not None:
            self.host.close()
            self.host = None
        for v in self.dev.values():
            if isinstance(v, _HostPool):
                v.close()
        self.dev.clear()
        self.opened = False

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()
        return False

    # ------------------------------------------------------------------ mapping
    def classify(self, tr) -> Op:
        """The real operation for a simulated transfer (by tag and route)."""
        label, kind, node, gid = resolve(tr)
        return Op(label, kind, node % self.n_regions, None if gid is None else self._local(gid), gid)

    def _local(self, gid: int) -> int:
        n = len(self.devices) if self.device == "cuda" else len(self.dev)
        return gid % n

    # ------------------------------------------------------------------ simulation side
    def _bind(self, net) -> None:
        """Serve ``net`` (a new simulation): a poller process on its environment; results of
        an earlier simulation still arriving are dropped."""
        self.net = net
        self.env = net.env
        self.gen += 1
        self.inflight = 0
        self._idle = None
        self.env.process(self._poller(self.gen))

    def start(self, net, tr) -> None:
        if not self.opened:
            raise HardwareReplayError("HardwareBackend.open() was not called")
        if self.net is not net:
            self._bind(net)
        op = self.classify(tr)
        t0 = time.perf_counter()
        self.inflight += 1
        self._pool.submit(self._execute, tr, op, t0, self.gen)
        if self._idle is not None and not self._idle.triggered:
            self._idle.succeed()

    def _poller(self, gen: int):
        env = self.env
        while gen == self.gen:
            if self.inflight == 0:
                self._idle = env.event()
                yield self._idle
                self._idle = None
            yield env.timeout(self.poll_s)
            self._drain()

    def _drain(self) -> None:
        env = self.env
        q = self._done
        while True:
            try:
                tr, op, t0, t1, floor_s, npieces, err, gen = q.get_nowait()
            except queue.Empty:
                return
            if gen != self.gen:
                continue
            if err is not None:
                raise HardwareReplayError(f"transfer {tr.tag} ({op.label} -> {op.kind}) failed on the "
                                          f"hardware: {err!r}") from err
            hw = (t1 - t0) * self.speed
            dur = max(hw, floor_s)
            t_done = tr.t_start + dur
            now = env.now
            rec = {"id": tr.id, "kind": tr.tag[0] if tr.tag else "", "tag": repr(tr.tag), "route_class": op.label,
                   "op": op.kind, "node": op.node, "gpu": op.gpu, "size": tr.size, "pieces": npieces,
                   "max_rate": tr.max_rate, "t_submit": tr.t_submit, "t_start": tr.t_start,
                   "hw_s": hw, "pace_floor_s": floor_s, "dur_s": dur, "t_end": max(t_done, now),
                   "late_s": max(0.0, now - t_done)}
            self.records.append(rec)
            if t_done > now + 1e-9:
                ev = env.timeout(t_done - now)
                ev.callbacks.append(lambda _e, tr=tr: self._complete(tr))
            else:
                self._complete(tr)

    def _complete(self, tr) -> None:
        self.inflight -= 1
        self.net.complete(tr)

    # ------------------------------------------------------------------ hardware side
    def _pieces(self, size: int, rate: float, align: int) -> list:
        n = max(1, -(-size // self.chunk))
        if rate < INF and n < self.pace_pieces:
            n = self.pace_pieces
        piece = -(-size // n)
        piece = -(-piece // align) * align
        out = []
        left = size
        while left > 0:
            p = min(piece, left)
            out.append(p)
            left -= p
        return out or [0]

    def _host_slot(self, region: int) -> int:
        with self._lock:
            n = self.region_bytes // self.chunk
            s = self._slot[region]
            self._slot[region] = (s + 1) % n
        return region * self.region_bytes + s * self.chunk

    def _dev_slot(self, dev: int) -> int:
        with self._lock:
            n = self.dev_bytes // self.chunk
            s = self._dslot[dev]
            self._dslot[dev] = (s + 1) % n
        return s * self.chunk

    def _file_base(self, write: bool, size: int) -> int:
        step = -(-size // self.fchunk) * self.fchunk
        with self._lock:
            if write:
                b, self._wcur = self._wcur, (self._wcur + step) % self.file_bytes
            else:
                b, self._rcur = self._rcur, (self._rcur + step) % self.file_bytes
        return b

    def _execute(self, tr, op: Op, t0: float, gen: int) -> None:
        """Worker thread: run ``tr`` as ``op``; put the result on the completion queue."""
        err = None
        floor_s = 0.0
        npieces = 0
        try:
            size = int(math.ceil(tr.size))
            rate = tr.max_rate
            if rate < INF:
                floor_s = tr.size / rate
            npieces = self._run(op, size, rate, t0)
        except BaseException as e:  # reported on the simulation's thread
            err = e
        t1 = time.perf_counter()
        self._done.put((tr, op, t0, t1, floor_s, npieces, err, gen))

    def _run(self, op: Op, size: int, rate: float, t0: float) -> int:
        if size <= 0:
            return 0
        if op.kind in ("file_read", "file_write"):
            return self._file_io(op, size, rate, t0)
        return self._copy(op, size, rate, t0)

    def _wait_release(self, t0: float, done_bytes: int, rate: float) -> None:
        if rate < INF and done_bytes > 0:
            t = t0 + done_bytes / rate / self.speed
            d = t - time.perf_counter()
            if d > 0:
                time.sleep(d)

    def _copy(self, op: Op, size: int, rate: float, t0: float) -> int:
        pieces = self._pieces(size, rate, 1)
        h2d = op.kind == "h2d"
        if self.device == "cpu":
            dev = self.dev[op.gpu]
            mv = ctypes.memmove
            done = 0
            for p in pieces:
                self._wait_release(t0, done, rate)
                ho = self.host.addr + self._host_slot(op.node)
                do = dev.addr + self._dev_slot(op.gpu)
                if h2d:
                    mv(do, ho, p)
                else:
                    mv(ho, do, p)
                done += p
            return len(pieces)
        torch = self.torch
        host = self.host.tensor
        dev = self.dev[op.gpu]
        streams = self._streams.get()
        try:
            s = streams[op.gpu]
            done = 0
            with torch.cuda.device(dev.device), torch.cuda.stream(s):
                for p in pieces:
                    self._wait_release(t0, done, rate)
                    ho = self._host_slot(op.node)
                    do = self._dev_slot(op.gpu)
                    if h2d:
                        dev[do:do + p].copy_(host[ho:ho + p], non_blocking=True)
                    else:
                        host[ho:ho + p].copy_(dev[do:do + p], non_blocking=True)
                    done += p
            s.synchronize()
        finally:
            self._streams.put(streams)
        return len(pieces)

    def _file_io(self, op: Op, size: int, rate: float, t0: float) -> int:
        write = op.kind == "file_write"
        size = -(-size // PAGE) * PAGE
        fd = self._wfd if write else self._rfd
        base = self._file_base(write, size)
        # Requests of file_chunk_bytes: file offset (base + k) mod file size, buffer slot of the
        # node's host region.
        reqs = []
        k = 0
        slot = None
        in_slot = self.chunk
        while k < size:
            ln = min(self.fchunk, size - k)
            if in_slot + ln > self.chunk:
                slot = self._host_slot(op.node)
                in_slot = 0
            reqs.append(((base + k) % self.file_bytes, slot + in_slot, ln))
            in_slot += ln
            k += ln
        if not self.o_direct and not write:
            for fo, _bo, ln in reqs:
                os.posix_fadvise(fd, fo, ln, os.POSIX_FADV_DONTNEED)
        qd = min(self.queue_depth, len(reqs))
        host = self.host

        def work(part):
            for fo, bo, ln in part:
                v = host.view(bo, ln)
                got = 0
                while got < ln:
                    w = v[got:] if got else v
                    n = os.pwritev(fd, [w], fo + got) if write else os.preadv(fd, [w], fo + got)
                    if n <= 0:
                        raise OSError(f"short {'write' if write else 'read'} at offset {fo + got}")
                    got += n
                v.release()
        if qd == 1:
            work(reqs)
        else:
            futs = [self._io.submit(work, reqs[i::qd]) for i in range(qd)]
            for f in futs:
                f.result(timeout=600)
        return len(reqs)

    # ------------------------------------------------------------------ measurement (probe)
    def measure(self, ops: list, nbytes: int) -> list:
        """Run ``ops`` (each moving ``nbytes``) at once, outside any simulation, and return each
        one's wall seconds from the common start (the replay's own code path)."""
        if not self.opened:
            raise HardwareReplayError("HardwareBackend.open() was not called")
        t0 = time.perf_counter()
        futs = [self._pool.submit(self._timed, op, int(nbytes), t0) for op in ops]
        return [f.result(timeout=600) for f in futs]

    def _timed(self, op: Op, nbytes: int, t0: float) -> float:
        self._run(op, nbytes, INF, t0)
        return time.perf_counter() - t0

    def describe(self) -> dict:
        from .base import host_metadata

        d = host_metadata()
        d.update(self.meta)
        d["backend"] = self.name
        d["filesystem"] = _filesystem(self.file_dir)
        d["speed"] = self.speed
        d["poll_s"] = self.poll_s
        if self.device == "cuda" and self.torch is not None:
            try:
                from .cuda import nvidia_smi_facts

                d.update(nvidia_smi_facts())
            except Exception:  # pragma: no cover
                pass
        return d
