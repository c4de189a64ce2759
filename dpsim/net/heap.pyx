# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled :class:`TimeHeap` (see ``heap.py``, the pure-Python reference with the same
interface and the same order): keys ``(t, seq)`` in a C array of 32-byte structs, so a sift
compares doubles and integers, never Python objects.  Each entry also carries its payloads'
pointers, borrowed: one Python list owns them, a slot's two side by side (``_p[2 * slot]``,
``_p[2 * slot + 1]``; the slot number is packed into the key's low bits), and keeps them visible
to the garbage collector.  Side by side, a pop or a re-keying writes one line of that list, not
two: on large clusters an entry's slot was written long ago, so each line is a cache miss.
Reading the top's payloads from the entry, not from the list, matters there too, and the next
entry's payloads can be prefetched while the caller handles this one.

Handles (a slot's position in the array, kept up to date by every sift) cost a write to a cold
line per level moved: only a heap made with ``handles=True`` (the network's, whose completions
are re-keyed in place by :meth:`TimeHeap.update`) keeps them; the event loop's and the decode
engines' heaps, which only push and pop, are made with ``handles=False``.

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

cdef extern from *:
    """
    #define DP_PF_LINES(p) do { const char* _q = (const char*)(p); __builtin_prefetch(_q); __builtin_prefetch(_q + 64); } while (0)
    """
    void _prefetch_lines "DP_PF_LINES"(PyObject* p) noexcept nogil

cdef inline void _own(list l, Py_ssize_t i, object v) noexcept:
    """``l[i] = v`` as a store only: the old item is not read, and its reference is the
    caller's to release (it knows the item: None in a free slot, else the entry's pointer)."""
    Py_INCREF(v)
    PyList_SET_ITEM(l, i, v)


cdef double INF = float("inf")
DEF SLOT_BITS = 24
cdef unsigned long long SLOT_MASK = (1ULL << SLOT_BITS) - 1
cdef long long MAX_SEQ = (1LL << (64 - SLOT_BITS)) - 1


cdef inline unsigned long long _key(long long seq, Py_ssize_t slot) except? 0:
    if seq < 0 or seq > MAX_SEQ:
        raise OverflowError(f"TimeHeap: seq {seq} is outside 0..{MAX_SEQ} (the compiled heap packs "
                            f"it with a slot into 64 bits)")
    return ((<unsigned long long> seq) << SLOT_BITS) | <unsigned long long> slot


cdef inline bint _less(_Entry x, _Entry y) noexcept nogil:
    return x.t < y.t or (x.t == y.t and x.key < y.key)


cdef class TimeHeap:
    """Min-heap of ``(t, seq, a, b)`` ordered by ``(t, seq)``."""

    def __cinit__(self, bint handles=True):
        self._handles = handles
        self._cap = 64
        self._n = 0
        self._h = <_Entry*> PyMem_Malloc(self._cap * sizeof(_Entry))
        self._pcap = 64
        self._pos = <Py_ssize_t*> PyMem_Malloc(self._pcap * sizeof(Py_ssize_t))
        self._free = <Py_ssize_t*> PyMem_Malloc(self._pcap * sizeof(Py_ssize_t))
        self._nfree = 0
        if self._h == NULL or self._pos == NULL or self._free == NULL:
            raise MemoryError()
        self._p = []

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
        cdef unsigned long long key
        cdef _Entry* nh
        if self._n == self._cap:
            nh = <_Entry*> PyMem_Realloc(self._h, 2 * self._cap * sizeof(_Entry))
            if nh == NULL:
                raise MemoryError()
            self._h = nh
            self._cap *= 2
        if self._nfree > 0:
            slot = self._free[self._nfree - 1]
            key = _key(seq, slot)
            self._nfree -= 1
            _own(self._p, 2 * slot, a)  # the slot held None (pop left it there)
            _own(self._p, 2 * slot + 1, b)
            Py_DECREF(None)
            Py_DECREF(None)
        else:
            slot = len(self._p) >> 1
            if slot > <Py_ssize_t> SLOT_MASK:
                raise OverflowError(f"TimeHeap: more than {SLOT_MASK + 1} entries at once")
            key = _key(seq, slot)
            if slot >= self._pcap:
                self._grow_pos(slot + 1)
            self._p.append(a)
            self._p.append(b)
        self._h[self._n].t = t
        self._h[self._n].key = key
        self._h[self._n].a = <PyObject*> a
        self._h[self._n].b = <PyObject*> b
        self._n += 1
        self._sift_up(self._n - 1)
        return slot

    cpdef update(self, Py_ssize_t slot, double t, long long seq, a, b):
        """Give the entry with handle ``slot`` (still in the heap) a new key and payloads, in
        place: the heap then holds what a pop of the old entry and a push of the new one would
        leave, without the old one waiting in it until its time."""
        if not self._handles:
            raise ValueError("TimeHeap.update: this heap keeps no handles (made with handles=False)")
        if slot < 0 or slot >= (len(self._p) >> 1):  # (never handed out)
            raise ValueError(f"TimeHeap.update: {slot} is not a handle of this heap")
        cdef Py_ssize_t i = self._pos[slot]
        if i < 0 or i >= self._n or <Py_ssize_t> (self._h[i].key & SLOT_MASK) != slot:
            # (pop does not clear a slot's position: the entry found there tells)
            raise ValueError(f"TimeHeap.update: handle {slot} is not in the heap (popped or dropped)")
        cdef _Entry x = self._h[i]
        cdef unsigned long long key = _key(seq, slot)
        cdef bint up = t < x.t or (t == x.t and key < x.key)
        self._h[i].t = t
        self._h[i].key = key
        self._h[i].a = <PyObject*> a
        self._h[i].b = <PyObject*> b
        # The list now owns the new payloads (the old ones are x's); an unchanged one (the
        # network re-keys a transfer: the same object) is not written again.
        if <PyObject*> a != x.a:
            _own(self._p, 2 * slot, a)
        else:
            x.a = NULL
        if <PyObject*> b != x.b:
            _own(self._p, 2 * slot + 1, b)
        else:
            x.b = NULL
        if up:
            self._sift_up(i)
        else:
            self._sift_down(i)
        if x.a != NULL:  # last, with the heap consistent (see pop)
            Py_DECREF(<object> x.a)
        if x.b != NULL:
            Py_DECREF(<object> x.b)

    cpdef Py_ssize_t size(self) noexcept:
        return self._n

    def __len__(self):
        return self._n

    cpdef double top_t(self) noexcept:
        return self._h[0].t if self._n > 0 else INF

    cpdef long long top_seq(self) except? -1:
        if self._n == 0:
            raise IndexError("top of an empty heap")
        return <long long> (self._h[0].key >> SLOT_BITS)

    cpdef object top_a(self):
        if self._n == 0:
            raise IndexError("top of an empty heap")
        return <object> self._h[0].a

    cpdef object top_b(self):
        if self._n == 0:
            raise IndexError("top of an empty heap")
        return <object> self._h[0].b

    cpdef pop(self):
        cdef Py_ssize_t slot
        if self._n == 0:
            raise IndexError("pop from an empty heap")
        cdef PyObject* a = self._h[0].a
        cdef PyObject* b = self._h[0].b
        slot = <Py_ssize_t> (self._h[0].key & SLOT_MASK)
        self._free[self._nfree] = slot
        self._nfree += 1
        # (the slot's position is left as it was: a cold line at scale, and update tells a
        # popped handle by the entry it points at)
        self._n -= 1
        if self._n > 0:
            self._h[0] = self._h[self._n]
            self._sift_down(0)
            # The next entry's payloads are what the caller touches next: start loading them
            # now, while it runs this one (with tens of thousands of timers they are cold).
            _prefetch_lines(self._h[0].a)
            _prefetch_lines(self._h[0].b)
        # Release the slot's references last (they may be the last ones: a callback's
        # object freed here must not see the heap half-updated).
        _own(self._p, 2 * slot, None)
        _own(self._p, 2 * slot + 1, None)
        Py_DECREF(<object> a)
        Py_DECREF(<object> b)

    cdef void _sift_up(self, Py_ssize_t i) noexcept:
        cdef _Entry x = self._h[i]
        cdef Py_ssize_t p
        while i > 0:
            p = (i - 1) >> 2
            if _less(x, self._h[p]):
                self._h[i] = self._h[p]
                if self._handles:
                    self._pos[self._h[i].key & SLOT_MASK] = i
                i = p
            else:
                break
        self._h[i] = x
        if self._handles:
            self._pos[x.key & SLOT_MASK] = i

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
                if self._handles:
                    self._pos[self._h[i].key & SLOT_MASK] = i
                i = c
            else:
                break
        self._h[i] = x
        if self._handles:
            self._pos[x.key & SLOT_MASK] = i

    cpdef list entries(self):
        cdef Py_ssize_t i
        cdef list out = []
        for i in range(self._n):
            out.append((self._h[i].t, <long long> (self._h[i].key >> SLOT_BITS), <object> self._h[i].a,
                        <object> self._h[i].b))
        return out

    cpdef drop_stale(self, long start):
        """See heap.py: drop the network's superseded entries in place (C loop), keep the rest
        in the same order."""
        cdef Py_ssize_t i, j = 0, slot
        cdef long ver
        cdef Transfer tr
        for i in range(self._n):
            slot = <Py_ssize_t> (self._h[i].key & SLOT_MASK)
            ver = <object> self._h[i].a
            tr = <Transfer> self._h[i].b
            if ver == start or (ver == tr.version and tr.t_end < 0.0):
                self._h[j] = self._h[i]
                if self._handles:
                    self._pos[slot] = j
                j += 1
            else:
                if ver != start and tr._hslot == slot:
                    tr._hslot = -1  # its completion entry is gone
                _set(self._p, 2 * slot, None)
                _set(self._p, 2 * slot + 1, None)
                self._free[self._nfree] = slot
                self._nfree += 1
        self._n = j
        i = (j - 2) // 4 if j > 1 else -1  # the last parent
        while i >= 0:
            self._sift_down(i)
            i -= 1
