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
        self._pcap = 64
        self._pos = <Py_ssize_t*> PyMem_Malloc(self._pcap * sizeof(Py_ssize_t))
        if self._h == NULL or self._pos == NULL:
            raise MemoryError()
        self._pa = []
        self._pb = []
        self._free = []

    def __dealloc__(self):
        if self._h != NULL:
            PyMem_Free(self._h)
        if self._pos != NULL:
            PyMem_Free(self._pos)

    cdef int _grow_pos(self, Py_ssize_t need) except -1:
        cdef Py_ssize_t* np
        cdef Py_ssize_t cap = self._pcap
        while cap < need:
            cap *= 2
        np = <Py_ssize_t*> PyMem_Realloc(self._pos, cap * sizeof(Py_ssize_t))
        if np == NULL:
            raise MemoryError()
        self._pos = np
        self._pcap = cap
        return 0

    cpdef Py_ssize_t push(self, double t, long long seq, a, b):
        """Add an entry; returns its handle (a slot, valid until the entry leaves the heap)."""
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
            if slot >= self._pcap:
                self._grow_pos(slot + 1)
            self._pa.append(a)
            self._pb.append(b)
        self._h[self._n].t = t
        self._h[self._n].seq = seq
        self._h[self._n].slot = slot
        self._n += 1
        self._sift_up(self._n - 1)
        return slot

    cpdef update(self, Py_ssize_t slot, double t, long long seq, a, b):
        """Give the entry with handle ``slot`` (still in the heap) a new key and payloads, in
        place: the heap then holds what a pop of the old entry and a push of the new one would
        leave, without the old one waiting in it until its time."""
        cdef Py_ssize_t i = self._pos[slot]
        cdef _Entry x = self._h[i]
        cdef bint up = t < x.t or (t == x.t and seq < x.seq)
        self._h[i].t = t
        self._h[i].seq = seq
        self._pa[slot] = a
        self._pb[slot] = b
        if up:
            self._sift_up(i)
        else:
            self._sift_down(i)

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
        self._pos[slot] = -1
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
                self._pos[self._h[i].slot] = i
                i = p
            else:
                break
        self._h[i] = x
        self._pos[x.slot] = i

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
                self._pos[self._h[i].slot] = i
                i = c
            else:
                break
        self._h[i] = x
        self._pos[x.slot] = i

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
                self._pos[slot] = j
                j += 1
            else:
                if ver != start and tr._hslot == slot:
                    tr._hslot = -1  # its completion entry is gone
                self._pa[slot] = None
                self._pb[slot] = None
                self._free.append(slot)
                self._pos[slot] = -1
        self._n = j
        i = j // 2 - 1
        while i >= 0:
            self._sift_down(i)
            i -= 1
