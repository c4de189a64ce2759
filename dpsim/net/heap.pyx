# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled :class:`TimeHeap` (see ``heap.py``, the pure-Python reference with the same
interface and the same order): keys ``(t, seq)`` in a C array of structs, payloads in two
Python lists indexed by a slot number that the key carries, so a sift moves 24-byte structs and
compares doubles, never Python objects."""
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from .links cimport Transfer

cdef double INF = float("inf")


cdef inline bint _less(_Entry x, _Entry y) noexcept nogil:
    return x.t < y.t or (x.t == y.t and x.seq < y.seq)


cdef class TimeHeap:
    """Min-heap of ``(t, seq, a, b)`` ordered by ``(t, seq)``."""

    def __cinit__(self):
        self._cap = 64
        self._n = 0
        self._h = <_Entry*> PyMem_Malloc(self._cap * sizeof(_Entry))
        if self._h == NULL:
            raise MemoryError()
        self._pa = []
        self._pb = []
        self._free = []

    def __dealloc__(self):
        if self._h != NULL:
            PyMem_Free(self._h)

    cpdef push(self, double t, long long seq, a, b):
        cdef Py_ssize_t slot
        cdef _Entry* nh
        if self._n == self._cap:
            nh = <_Entry*> PyMem_Realloc(self._h, 2 * self._cap * sizeof(_Entry))
            if nh == NULL:
                raise MemoryError()
            self._h = nh
            self._cap *= 2
        if self._free:
            slot = self._free.pop()
            self._pa[slot] = a
            self._pb[slot] = b
        else:
            slot = len(self._pa)
            self._pa.append(a)
            self._pb.append(b)
        self._h[self._n].t = t
        self._h[self._n].seq = seq
        self._h[self._n].slot = slot
        self._n += 1
        self._sift_up(self._n - 1)

    cpdef Py_ssize_t size(self):
        return self._n

    def __len__(self):
        return self._n

    cpdef double top_t(self):
        return self._h[0].t if self._n > 0 else INF

    cpdef long long top_seq(self):
        if self._n == 0:
            raise IndexError("top of an empty heap")
        return self._h[0].seq

    cpdef object top_a(self):
        if self._n == 0:
            raise IndexError("top of an empty heap")
        return self._pa[self._h[0].slot]

    cpdef object top_b(self):
        if self._n == 0:
            raise IndexError("top of an empty heap")
        return self._pb[self._h[0].slot]

    cpdef pop(self):
        cdef Py_ssize_t slot
        if self._n == 0:
            raise IndexError("pop from an empty heap")
        slot = self._h[0].slot
        self._pa[slot] = None
        self._pb[slot] = None
        self._free.append(slot)
        self._n -= 1
        if self._n > 0:
            self._h[0] = self._h[self._n]
            self._sift_down(0)

    cdef void _sift_up(self, Py_ssize_t i):
        cdef _Entry x = self._h[i]
        cdef Py_ssize_t p
        while i > 0:
            p = (i - 1) >> 1
            if _less(x, self._h[p]):
                self._h[i] = self._h[p]
                i = p
            else:
                break
        self._h[i] = x

    cdef void _sift_down(self, Py_ssize_t i):
        cdef _Entry x = self._h[i]
        cdef Py_ssize_t n = self._n
        cdef Py_ssize_t c
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            if c + 1 < n and _less(self._h[c + 1], self._h[c]):
                c += 1
            if _less(self._h[c], x):
                self._h[i] = self._h[c]
                i = c
            else:
                break
        self._h[i] = x

    cpdef list entries(self):
        cdef Py_ssize_t i
        cdef list out = []
        for i in range(self._n):
            out.append((self._h[i].t, self._h[i].seq, self._pa[self._h[i].slot], self._pb[self._h[i].slot]))
        return out

    cpdef drop_stale(self, long start):
        """See heap.py: drop the network's superseded entries in place (C loop), keep the rest
        in the same order."""
        cdef Py_ssize_t i, j = 0, slot
        cdef long ver
        cdef Transfer tr
        for i in range(self._n):
            slot = self._h[i].slot
            ver = self._pa[slot]
            tr = <Transfer> self._pb[slot]
            if ver == start or (ver == tr.version and tr.t_end < 0.0):
                self._h[j] = self._h[i]
                j += 1
            else:
                self._pa[slot] = None
                self._pb[slot] = None
                self._free.append(slot)
        self._n = j
        i = j // 2 - 1
        while i >= 0:
            self._sift_down(i)
            i -= 1

    cpdef replace_all(self, list entries):
        cdef Py_ssize_t i, n = len(entries)
        cdef _Entry* nh
        self._pa = []
        self._pb = []
        self._free = []
        if n > self._cap:
            nh = <_Entry*> PyMem_Realloc(self._h, n * sizeof(_Entry))
            if nh == NULL:
                raise MemoryError()
            self._h = nh
            self._cap = n
        self._n = 0
        for i in range(n):
            e = entries[i]
            self._pa.append(e[2])
            self._pb.append(e[3])
            self._h[i].t = e[0]
            self._h[i].seq = e[1]
            self._h[i].slot = i
            self._n += 1
        i = self._n // 2 - 1
        while i >= 0:
            self._sift_down(i)
            i -= 1
