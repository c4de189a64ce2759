"""Host memcpy between numpy buffers (runs everywhere, CI included).

Copies use libc ``memmove`` through ctypes, which releases the GIL, so
concurrent transfers in threads really run in parallel and share the memory
bus.  Timing: ``time.perf_counter_ns`` around the copy.

Link kind: ``memcpy`` (host DRAM -> host DRAM; in DualPath the DRAM traffic of
the KV buffers, §S2 "node memory bandwidth M").
"""
from __future__ import annotations

import ctypes
import threading
import time
from typing import Sequence

import numpy as np

from .base import (
    BlockResult,
    Route,
    TransferSpec,
    Transport,
    available_memory_bytes,
    pattern_bytes,
)

_memmove = ctypes.memmove


class _Buffers:
    """Per-(slot, role) page-faulted numpy buffers that grow on demand."""

    def __init__(self):
        self._bufs: dict[tuple, np.ndarray] = {}

    def get(self, key: tuple, nbytes: int) -> np.ndarray:
        b = self._bufs.get(key)
        if b is None or b.size < nbytes:
            b = np.empty(max(nbytes, 4096), dtype=np.uint8)
            b.fill(1)  # fault every page in now, not inside a timed copy
            self._bufs[key] = b
        return b

    def clear(self):
        self._bufs.clear()


class CpuTransport(Transport):
    name = "cpu"

    def __init__(self, max_bytes: int | None = None, cold: bool = True, pool_bytes: int = 64 << 20):
        self._bufs = _Buffers()
        self._max_bytes = max_bytes
        # cold=True: each single transfer uses the next region of a pool larger
        # than the CPU caches, so small copies read DRAM, not a hot cache
        self.cold = cold
        self.pool_bytes = int(pool_bytes)
        self._off = 0

    def check(self) -> None:  # numpy is a hard dependency: always available
        return None

    def close(self) -> None:
        self._bufs.clear()

    def routes(self) -> list[Route]:
        return [Route("memcpy", "host", "host")]

    def concurrency_groups(self):
        return [("memcpy_same", [Route("memcpy", "host", "host")])]

    def block_modes(self) -> list[str]:
        return ["loop", "batched"]

    def max_transfer_bytes(self) -> int:
        cap = available_memory_bytes() // 6  # src + dst, and room for 2 more slots
        if self._max_bytes:
            cap = min(cap, self._max_bytes)
        return int(cap)

    # ---------------------------------------------------------------- copies
    def _pair(self, slot: int, nbytes: int):
        return self._bufs.get((slot, "src"), nbytes), self._bufs.get((slot, "dst"), nbytes)

    def transfer(self, nbytes, *, src=None, dst=None, verify=False) -> float:
        off = 0
        if self.cold and nbytes < self.pool_bytes // 2:
            s, d = self._pair(0, self.pool_bytes)
            if self._off + nbytes > self.pool_bytes:
                self._off = 0
            off = self._off
            self._off += ((nbytes + 4095) // 4096) * 4096
            s, d = s[off:off + nbytes], d[off:off + nbytes]
        else:
            s, d = self._pair(0, nbytes)
        if verify:
            s[:nbytes] = pattern_bytes(nbytes, seed=np.random.randint(1 << 30))
            d[:nbytes] = 0
        sa, da = s.ctypes.data, d.ctypes.data
        t0 = time.perf_counter_ns()
        _memmove(da, sa, nbytes)
        t1 = time.perf_counter_ns()
        if verify:
            assert np.array_equal(s[:nbytes], d[:nbytes]), "cpu memcpy: destination differs from source"
        return (t1 - t0) * 1e-9

    def transfer_concurrent(self, specs: Sequence[TransferSpec], *, verify=False) -> list[float]:
        k = len(specs)
        pairs = [self._pair(i, sp.nbytes) for i, sp in enumerate(specs)]
        if verify:
            for i, (s, d) in enumerate(pairs):
                n = specs[i].nbytes
                s[:n] = pattern_bytes(n, seed=1000 + i)
                d[:n] = 0
        barrier = threading.Barrier(k + 1)
        ends = [0] * k

        def work(i):
            s, d = pairs[i]
            sa, da, n = s.ctypes.data, d.ctypes.data, specs[i].nbytes
            barrier.wait()
            _memmove(da, sa, n)
            ends[i] = time.perf_counter_ns()

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(k)]
        for th in threads:
            th.start()
        barrier.wait()
        t0 = time.perf_counter_ns()
        for th in threads:
            th.join(timeout=600)
            if th.is_alive():  # pragma: no cover - a memcpy never takes 10 min
                raise TimeoutError("cpu transfer thread did not finish in 600 s")
        if verify:
            for i, (s, d) in enumerate(pairs):
                n = specs[i].nbytes
                assert np.array_equal(s[:n], d[:n]), f"cpu memcpy: transfer {i} corrupted"
        # a thread may pass the barrier before the main thread reads the clock
        return [max(e - t0, 0) * 1e-9 for e in ends]

    def transfer_blocks(self, n_blocks, block_bytes, *, src=None, dst=None, mode="loop",
                        verify=False) -> BlockResult:
        total = n_blocks * block_bytes
        s = self._bufs.get(("blk", "src"), total)
        d = self._bufs.get(("blk", "dst"), total)
        perm = np.random.permutation(n_blocks)
        if verify:
            s[:total] = pattern_bytes(total, seed=7)
            d[:total] = 0
        if mode == "single":
            t0 = time.perf_counter_ns()
            _memmove(d.ctypes.data, s.ctypes.data, total)
            t1 = time.perf_counter_ns()
            method = "memmove"
            if verify:
                assert np.array_equal(s[:total], d[:total])
        elif mode == "loop":
            sa = [s.ctypes.data + i * block_bytes for i in range(n_blocks)]
            da = [d.ctypes.data + int(p) * block_bytes for p in perm]
            t0 = time.perf_counter_ns()
            for a, b in zip(da, sa):
                _memmove(a, b, block_bytes)
            t1 = time.perf_counter_ns()
            method = "memmove-per-block"
        elif mode == "batched":
            s2 = s[:total].reshape(n_blocks, block_bytes)
            d2 = d[:total].reshape(n_blocks, block_bytes)
            t0 = time.perf_counter_ns()
            d2[perm] = s2  # one numpy call scatters all blocks
            t1 = time.perf_counter_ns()
            method = "numpy-scatter"
        else:
            raise ValueError(f"cpu transport: unknown block mode {mode!r}")
        if verify and mode != "single":
            s2 = s[:total].reshape(n_blocks, block_bytes)
            d2 = d[:total].reshape(n_blocks, block_bytes)
            assert np.array_equal(d2[perm], s2), "cpu block copy: blocks misplaced"
        return BlockResult((t1 - t0) * 1e-9, method)

    def describe(self) -> dict:
        d = super().describe()
        d["copy"] = "libc memmove via ctypes (GIL released)"
        d["cold"] = self.cold
        d["pool_bytes"] = self.pool_bytes
        return d
