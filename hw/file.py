"""Storage reads (and writes) with O_DIRECT into page-aligned buffers.

The stand-in for the SNIC path of §S4 (storage -> host DRAM buffer): a local
file read with ``O_DIRECT`` bypasses the page cache, so the device's own
bandwidth and latency are measured.  Buffers come from anonymous ``mmap``
(page aligned, as O_DIRECT needs).  A transfer is split into ``chunk_bytes``
requests issued by ``queue_depth`` threads (``os.preadv`` releases the GIL),
which is how a storage client keeps several requests in flight.

Where O_DIRECT is unsupported (tmpfs, some overlay filesystems) the transport
falls back to buffered I/O and says so in ``describe()["o_direct_note"]``; it
then drops the range from the page cache with ``posix_fadvise(DONTNEED)``
before each read, which works on disk-backed filesystems but not on tmpfs
(there the "storage" is RAM and the numbers are memcpy numbers).

Options: ``path``, ``queue_depth`` (4), ``chunk_bytes`` (1 MiB), ``o_direct``, ``max_bytes``,
``file_bytes`` (smallest read file; default 1 MiB, else twice the largest read), ``offsets``
(``random`` page-aligned read offsets, or ``sequential``: each read where the last ended, as the
HIL replay reads).

Link kinds: ``file_read`` (storage -> host), ``file_write`` (host -> storage).
The file holds a known pattern (word ``w`` = ``w * K mod 2**64``), so every
read can be verified.
"""
from __future__ import annotations

import errno
import mmap
import os
import tempfile
import threading
import time
from typing import Sequence

import numpy as np

from .base import PAGE, BlockResult, Route, TransferSpec, Transport, round_up

_K = np.uint64(0x9E3779B97F4A7C15)
_IOV_MAX = 1024


def expected_pattern(offset: int, nbytes: int) -> np.ndarray:
    """The bytes the pattern file holds at [offset, offset+nbytes) (8-aligned)."""
    assert offset % 8 == 0 and nbytes % 8 == 0
    w = np.arange(offset // 8, (offset + nbytes) // 8, dtype=np.uint64)
    with np.errstate(over="ignore"):
        w *= _K
    return w.view(np.uint8)


class _AlignedBuf:
    """Page-aligned host buffer (anonymous mmap) with numpy and memoryview access."""

    def __init__(self, nbytes: int):
        self.size = round_up(max(nbytes, PAGE))
        self.mm = mmap.mmap(-1, self.size)
        self.np = np.frombuffer(self.mm, dtype=np.uint8)
        self.np[:] = 1  # fault pages in
        self.mv = memoryview(self.mm)

    def view(self, off: int, n: int) -> memoryview:
        return self.mv[off:off + n]

    def close(self):
        self.mv.release()
        self.np = None
        try:
            self.mm.close()
        except BufferError:  # pragma: no cover - a view still alive
            pass


class FileTransport(Transport):
    name = "file"

    def __init__(self, path: str | None = None, queue_depth: int = 4,
                 chunk_bytes: int = 1 << 20, o_direct: bool = True,
                 max_bytes: int | None = None, keep_file: bool = False, file_bytes: int = 0,
                 offsets: str = "random"):
        self.dir = path or tempfile.gettempdir()
        self.queue_depth = max(1, int(queue_depth))
        self.chunk_bytes = round_up(max(int(chunk_bytes), PAGE))
        self.want_o_direct = o_direct
        self._max_bytes = max_bytes
        self.keep_file = keep_file
        # the read file is at least this large (reads land at random offsets in it): match the
        # file a replay reads from (dpsim.hw.replay: 4 GiB) so both see the same storage locality
        self.min_file_bytes = round_up(max(int(file_bytes or 0), 1 << 20), 1 << 20)
        # where each read (sizes / concurrency suites) starts: "random" page-aligned offsets, or
        # "sequential": where the previous read ended, wrapping at the end of the file -- the
        # HIL replay's pattern (dpsim.hw.replay reads consecutive regions of its file round robin)
        if offsets not in ("random", "sequential"):
            raise ValueError(f"file transport option offsets={offsets!r}: choose random or sequential "
                             f"(--opt offsets=sequential)")
        self.offsets = offsets
        self._rcur = 0
        self.read_path = os.path.join(self.dir, f"dpsim_file_transport_{os.getpid()}.dat")
        self.write_path = self.read_path + ".w"
        self.file_bytes = 0
        self.o_direct = None
        self.o_direct_note = ""
        self._rfd = None
        self._wfd = None
        self._wbytes = 0
        self._bufs: dict[tuple, _AlignedBuf] = {}
        self._rng = np.random.default_rng(12345)

    # ------------------------------------------------------------------ setup
    def check(self) -> None:
        from .base import TransportUnavailable

        if not os.path.isdir(self.dir):
            raise TransportUnavailable("file", f"directory {self.dir!r} does not exist",
                                       "pass --file-dir to an existing directory on the storage to test")
        if not os.access(self.dir, os.W_OK):
            raise TransportUnavailable("file", f"directory {self.dir!r} is not writable",
                                       "pass --file-dir to a writable directory")
        self._ensure_file(1 << 20)

    def close(self) -> None:
        for fd in (self._rfd, self._wfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._rfd = self._wfd = None
        for b in self._bufs.values():
            b.close()
        self._bufs.clear()
        if not self.keep_file:
            for p in (self.read_path, self.write_path):
                try:
                    os.unlink(p)
                except OSError:
                    pass
        self.file_bytes = 0

    def max_transfer_bytes(self) -> int:
        st = os.statvfs(self.dir)
        free = st.f_bavail * st.f_frsize
        cap = free // 4  # the read file, the write file, and room to spare
        if self._max_bytes:
            cap = min(cap, self._max_bytes)
        return int(cap)

    def _open_direct(self, path: str, flags: int) -> tuple[int, bool, str]:
        if self.want_o_direct and hasattr(os, "O_DIRECT"):
            try:
                fd = os.open(path, flags | os.O_DIRECT)
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                note = (f"O_DIRECT unsupported on {self.dir!r} ({os.strerror(e.errno)}); "
                        "fell back to buffered I/O with posix_fadvise(DONTNEED) before each read "
                        "(no effect on tmpfs: there the numbers are memory copies)")
            else:
                # probe one aligned read/write: some filesystems accept the flag
                # at open() and fail at I/O time
                try:
                    probe = _AlignedBuf(PAGE)
                    if flags & (os.O_WRONLY | os.O_RDWR):
                        os.pwritev(fd, [probe.view(0, PAGE)], 0)
                    else:
                        os.preadv(fd, [probe.view(0, PAGE)], 0)
                    probe.close()
                    return fd, True, "O_DIRECT"
                except OSError as e:
                    os.close(fd)
                    note = (f"O_DIRECT I/O failed on {self.dir!r} ({os.strerror(e.errno)}); "
                            "fell back to buffered I/O with posix_fadvise(DONTNEED)")
        elif not self.want_o_direct:
            note = "O_DIRECT disabled by option; buffered I/O with posix_fadvise(DONTNEED)"
        else:  # pragma: no cover - non-Linux
            note = "os.O_DIRECT not available on this platform; buffered I/O"
        return os.open(path, flags), False, note

    def _ensure_file(self, nbytes: int) -> None:
        need = round_up(nbytes, 1 << 20)
        if self._rfd is not None and self.file_bytes >= need:
            return
        if self._rfd is not None:
            os.close(self._rfd)
            self._rfd = None
        # write the pattern with buffered I/O, then fsync and drop it from the cache
        chunk = 64 << 20
        with open(self.read_path, "ab") as f:
            off = f.tell()
            off -= off % 8
            f.seek(off)
            f.truncate(off)
            while off < need:
                n = min(chunk, need - off)
                f.write(expected_pattern(off, n).tobytes())
                off += n
            f.flush()
            os.fsync(f.fileno())
        fd = os.open(self.read_path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        self.file_bytes = need
        self._rfd, self.o_direct, self.o_direct_note = self._open_direct(self.read_path, os.O_RDONLY)

    def _ensure_wfile(self, nbytes: int) -> None:
        need = round_up(nbytes, 1 << 20)
        if self._wfd is None:
            fd0 = os.open(self.write_path, os.O_RDWR | os.O_CREAT, 0o644)
            os.close(fd0)
            self._wfd, od, _ = self._open_direct(self.write_path, os.O_RDWR)
            self._w_direct = od
        if self._wbytes < need:
            os.ftruncate(self._wfd, need)
            self._wbytes = need

    def _buf(self, key, nbytes) -> _AlignedBuf:
        b = self._bufs.get(key)
        if b is None or b.size < nbytes:
            if b is not None:
                b.close()
            b = _AlignedBuf(nbytes)
            self._bufs[key] = b
        return b

    # ---------------------------------------------------------------- routes
    def routes(self) -> list[Route]:
        return [Route("file_read", "file", "host"), Route("file_write", "host", "file")]

    def concurrency_groups(self):
        r, w = self.routes()
        return [("file_read_same", [r]), ("file_read+file_write", [r, w])]

    def block_routes(self) -> list[Route]:
        return [self.routes()[0]]

    def block_modes(self):
        return ["loop", "batched"]

    # ------------------------------------------------------------- transfers
    def _chunks(self, off: int, n: int) -> list[tuple[int, int, int]]:
        """(file_offset, buf_offset, length) pieces of at most chunk_bytes."""
        out, b = [], 0
        while b < n:
            ln = min(self.chunk_bytes, n - b)
            out.append((off + b, b, ln))
            b += ln
        return out

    def _plan(self, slot: int, spec: TransferSpec):
        n = round_up(spec.nbytes)
        write = (spec.dst == "file")
        buf = self._buf((slot, "w" if write else "r"), n)
        if write:
            self._ensure_wfile((slot + 1) * n)
            off = slot * n
            fd = self._wfd
        else:
            self._ensure_file(max(n * 2, self.min_file_bytes))
            max_off = (self.file_bytes - n) // PAGE
            if self.offsets == "sequential":
                off = self._rcur if self._rcur + n <= self.file_bytes else 0
                self._rcur = off + n
            else:
                off = int(self._rng.integers(0, max_off + 1)) * PAGE if max_off > 0 else 0
            fd = self._rfd
        return write, fd, buf, off, n

    def _run(self, specs: Sequence[TransferSpec], verify: bool) -> list[float]:
        plans = [self._plan(i, sp) for i, sp in enumerate(specs)]
        if verify:
            for write, fd, buf, off, n in plans:
                if write:
                    buf.np[:n] = expected_pattern(off, n)
                else:
                    buf.np[:n] = 0
        # threads: for each transfer, up to queue_depth workers over its chunks
        workers = []  # (transfer_idx, fd, write, [chunks], buf)
        for i, (write, fd, buf, off, n) in enumerate(plans):
            chunks = self._chunks(off, n)
            qd = min(self.queue_depth, len(chunks))
            for t in range(qd):
                workers.append((i, fd, write, chunks[t::qd], buf))
            if not self.o_direct and not write:
                os.posix_fadvise(fd, off, n, os.POSIX_FADV_DONTNEED)
        ends = [0] * len(workers)
        errors: list[BaseException] = []
        if len(workers) == 1:
            i, fd, write, chunks, buf = workers[0]
            t0 = time.perf_counter_ns()
            self._do_chunks(fd, write, chunks, buf)
            ends[0] = time.perf_counter_ns()
        else:
            barrier = threading.Barrier(len(workers) + 1)

            def work(j):
                _, fd, write, chunks, buf = workers[j]
                barrier.wait()
                try:
                    self._do_chunks(fd, write, chunks, buf)
                except BaseException as e:  # pragma: no cover - reported below
                    errors.append(e)
                ends[j] = time.perf_counter_ns()

            ths = [threading.Thread(target=work, args=(j,), daemon=True) for j in range(len(workers))]
            for th in ths:
                th.start()
            barrier.wait()
            t0 = time.perf_counter_ns()
            for th in ths:
                th.join(timeout=600)
                if th.is_alive():
                    raise TimeoutError("file transfer thread did not finish within 600 s")
        if errors:
            raise errors[0]
        per = [0.0] * len(specs)
        for j, (i, *_rest) in enumerate(workers):
            per[i] = max(per[i], max(ends[j] - t0, 0) * 1e-9)
        if verify:
            for write, fd, buf, off, n in plans:
                if write:
                    got = np.empty(n, np.uint8)
                    with open(self.write_path, "rb") as f:
                        f.seek(off)
                        got[:] = np.frombuffer(f.read(n), np.uint8)
                    assert np.array_equal(got, expected_pattern(off, n)), "file write: content differs"
                else:
                    assert np.array_equal(buf.np[:n], expected_pattern(off, n)), \
                        f"file read at offset {off}: content differs from the file's pattern"
        return per

    @staticmethod
    def _do_chunks(fd, write, chunks, buf):
        for foff, boff, ln in chunks:
            v = buf.view(boff, ln)
            done = 0
            while done < ln:
                part = v[done:] if done else v
                k = os.pwritev(fd, [part], foff + done) if write else os.preadv(fd, [part], foff + done)
                if k <= 0:
                    raise OSError(errno.EIO, f"short {'write' if write else 'read'} at {foff + done}")
                done += k
                if done < ln and (done % PAGE):
                    raise OSError(errno.EIO, "unaligned short O_DIRECT transfer")

    def transfer(self, nbytes, *, src=None, dst=None, verify=False) -> float:
        return self._run([TransferSpec(nbytes, src or "file", dst or "host")], verify)[0]

    def transfer_concurrent(self, specs, *, verify=False) -> list[float]:
        specs = [TransferSpec(s.nbytes, s.src or "file", s.dst or "host") for s in specs]
        return self._run(specs, verify)

    def transfer_blocks(self, n_blocks, block_bytes, *, src=None, dst=None, mode="loop",
                        verify=False) -> BlockResult:
        """Read ``n_blocks`` blocks.  ``loop``: one pread per block from scattered
        file offsets; ``batched``: ``preadv`` of one contiguous file range into
        the scattered buffer slots (up to IOV_MAX per syscall); ``single``: one
        pread of the whole range.  Queue depth 1 (the calling thread)."""
        bb = round_up(block_bytes)
        total = n_blocks * bb
        self._ensure_file(max(2 * total, self.min_file_bytes))
        buf = self._buf(("blk", "r"), total)
        fd = self._rfd
        nfile_blocks = self.file_bytes // bb
        perm = np.random.permutation(n_blocks)
        if verify:
            buf.np[:total] = 0
        if mode == "loop":
            fblocks = self._rng.choice(nfile_blocks, size=n_blocks, replace=False)
            views = [buf.view(i * bb, bb) for i in range(n_blocks)]
            offs = [int(fb) * bb for fb in fblocks]
            if not self.o_direct:
                for o in offs:
                    os.posix_fadvise(fd, o, bb, os.POSIX_FADV_DONTNEED)
            t0 = time.perf_counter_ns()
            for v, o in zip(views, offs):
                os.preadv(fd, [v], o)
            t1 = time.perf_counter_ns()
            method = "pread-per-block"
            expect = [(i, offs[i]) for i in range(n_blocks)]
        elif mode in ("batched", "single"):
            base = int(self._rng.integers(0, (self.file_bytes - total) // PAGE + 1)) * PAGE
            if not self.o_direct:
                os.posix_fadvise(fd, base, total, os.POSIX_FADV_DONTNEED)
            if mode == "batched":
                views = [buf.view(int(p) * bb, bb) for p in perm]
                groups = [views[i:i + _IOV_MAX] for i in range(0, n_blocks, _IOV_MAX)]
                t0 = time.perf_counter_ns()
                o = base
                for g in groups:
                    o += os.preadv(fd, g, o)
                t1 = time.perf_counter_ns()
                method = "preadv-scatter"
                expect = [(int(perm[i]), base + i * bb) for i in range(n_blocks)]
            else:
                t0 = time.perf_counter_ns()
                self._do_chunks(fd, False, [(base, 0, total)], buf)
                t1 = time.perf_counter_ns()
                method = "pread"
                expect = [(i, base + i * bb) for i in range(n_blocks)]
        else:
            raise ValueError(f"file transport: unknown block mode {mode!r}")
        if verify:
            for slot, foff in expect:
                assert np.array_equal(buf.np[slot * bb:(slot + 1) * bb], expected_pattern(foff, bb)), \
                    f"file block read: slot {slot} holds the wrong data"
        return BlockResult((t1 - t0) * 1e-9, method)

    def describe(self) -> dict:
        d = super().describe()
        fs = None
        try:
            with open("/proc/mounts") as f:
                best = ""
                for line in f:
                    parts = line.split()
                    mnt = parts[1]
                    if os.path.realpath(self.dir).startswith(mnt) and len(mnt) > len(best):
                        best, fs = mnt, f"{parts[2]} ({parts[0]} on {mnt})"
        except OSError:
            pass
        d.update({
            "file_dir": self.dir,
            "filesystem": fs,
            "o_direct": self.o_direct,
            "o_direct_note": self.o_direct_note,
            "queue_depth": self.queue_depth,
            "chunk_bytes": self.chunk_bytes,
            "read_file_bytes": self.file_bytes,
            "min_file_bytes": self.min_file_bytes,
            "offsets": self.offsets,
        })
        return d
