# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled :class:`TimeHeap` (see ``heap.py``, the pure-Python reference with the same
interface and the same order): keys ``(t, seq)`` in a C array of structs, payloads in two
Python lists indexed by a slot number that the key carries, so a sift moves 24-byte structs and
compares doubles, never Python objects.

The array is a 4-ary heap (children of ``i`` at ``4i+1 .. 4i+4``): half the levels of a binary
heap, and a node's children share one or two cache lines -- what matters with tens of thousands
of pending timers.  Keys are unique, so it hands entries out in exactly the order any heap does.
Free slots are a C stack; payload slots are written with the list macros (the index is always
in range), so a push or pop boxes nothing."""
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.list cimport PyList_GET_ITEM, PyList_SET_ITEM
from .links cimport Transfer


cdef inline void _set(list l, Py_ssize_t i, object v) noexcept:
    """``l[i] = v`` for an index known to be in range (no bounds check, no boxing)."""
    cdef PyObject* old = PyList_GET_ITEM(l, i)
    Py_INCREF(v)
    PyList_SET_ITEM(l, i, v)
    Py_DECREF(<object> old)

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
        self._free = <Py_ssize_t*> PyMem_Malloc(self._pcap * sizeof(Py_ssize_t))
        self._nfree = 0
        if self._h == NULL or self._pos == NULL or self._free == NULL:
            raise MemoryError()
        self._pa = []
        self._pb = []

    def __dealloc__(self):
        if self._h != NULL:
            PyMem_Free(self._h)
        if self._pos != NULL:
            PyMem_Free(self._pos)
        if self._free != NULL:
            PyMem_Free(self._free)

    cdef int _grow_pos(self, Py_ssize_t need) except -1:
        """Room for ``need`` slots in the slot -> index map and the free-slot stack."""
        cdef Py_ssize_t* np
        cdef Py_ssize_t* nf
        cdef Py_ssize_t cap = self._pcap
        while cap < need:
            cap *= 2
        np = <Py_ssize_t*> PyMem_Realloc(self._pos, cap * sizeof(Py_ssize_t))
        if np == NULL:
            raise MemoryError()
        self._pos = np
        nf = <Py_ssize_t*> PyMem_Realloc(self._free, cap * sizeof(Py_ssize_t))
        if nf == NULL:
            raise MemoryError()
        self._free = nf
        self._pcap = cap
        return 0

    cpdef Py_ssize_t push(self, double t, long long seq, a, b) except? -1:
        """Add an entry; returns its handle (a slot, valid until the entry leaves the heap)."""
        cdef Py_ssize_t slot
        cdef _Entry* nh
        if self._n == self._cap:
            nh = <_Entry*> PyMem_Realloc(self._h, 2 * self._cap * sizeof(_Entry))
            if nh == NULL:
                raise MemoryError()
            self._h = nh
            self._cap *= 2
        if self._nfree > 0:
            self._nfree -= 1
            slot = self._free[self._nfree]
            _set(self._pa, slot, a)
            _set(self._pb, slot, b)
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
        _set(self._pa, slot, a)
        _set(self._pb, slot, b)
        if up:
            self._sift_up(i)
        else:
            self._sift_down(i)

    cpdef Py_ssize_t size(self) noexcept:
        return self._n

    def __len__(self):
        return self._n

    cpdef double top_t(self) noexcept:
        return self._h[0].t if self._n > 0 else INF

    cpdef long long top_seq(self) except? -1:
        if self._n == 0:
            raise IndexError("top of an empty heap")
        return self._h[0].seq

    cpdef object top_a(self):
        if self._n == 0:
            raise IndexError("top of an empty heap")
        return <object> PyList_GET_ITEM(self._pa, self._h[0].slot)

    cpdef object top_b(self):
        if self._n == 0:
            raise IndexError("top of an empty heap")
        return <object> PyList_GET_ITEM(self._pb, self._h[0].slot)

    cpdef pop(self):
        cdef Py_ssize_t slot
        if self._n == 0:
            raise IndexError("pop from an empty heap")
        slot = self._h[0].slot
        _set(self._pa, slot, None)
        _set(self._pb, slot, None)
        self._free[self._nfree] = slot
        self._nfree += 1
        self._pos[slot] = -1
        self._n -= 1
        if self._n > 0:
            self._h[0] = self._h[self._n]
            self._sift_down(0)

    cdef void _sift_up(self, Py_ssize_t i) noexcept:
        cdef _Entry x = self._h[i]
        cdef Py_ssize_t p
        while i > 0:
            p = (i - 1) >> 2
            if _less(x, self._h[p]):
                self._h[i] = self._h[p]
                self._pos[self._h[i].slot] = i
                i = p
            else:
                break
        self._h[i] = x
        self._pos[x.slot] = i

    cdef void _sift_down(self, Py_ssize_t i) noexcept:
        cdef _Entry x = self._h[i]
        cdef Py_ssize_t n = self._n
        cdef Py_ssize_t c, k, last
        while True:
            c = 4 * i + 1
            if c >= n:
                break
            last = c + 4 if c + 4 <= n else n
            k = c + 1
            while k < last:  # the smallest of up to four children
                if _less(self._h[k], self._h[c]):
                    c = k
                k += 1
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
                _set(self._pa, slot, None)
                _set(self._pb, slot, None)
                self._free[self._nfree] = slot
                self._nfree += 1
                self._pos[slot] = -1
        self._n = j
        i = (j - 2) // 4 if j > 1 else -1  # the last parent
        while i >= 0:
            self._sift_down(i)
            i -= 1
