# Declarations of heap.pyx (the compiled TimeHeap; heap.py is the pure-Python reference).
from cpython.object cimport PyObject

cdef struct _Entry:
    # 32 bytes: four children of a node span two cache lines.
    double t
    unsigned long long key  # seq << SLOT_BITS | slot: ordering by key is ordering by seq
    PyObject* a  # the payloads, borrowed (the list _p owns them): the top's are read
    PyObject* b  # from the entry, not from the slot's (cold) place in the list


cimport cython


@cython.final  # never subclassed: its methods are direct C calls
cdef class TimeHeap:
    # Exception specs: what cannot raise says noexcept; the rest flag an error with a value no
    # result takes (except? -1), so callers test PyErr_Occurred() only on that value.
    cdef _Entry* _h
    cdef Py_ssize_t* _pos  # slot -> index in _h, kept only with _handles (stale once the entry
                           # leaves: update checks the entry found there)
    cdef Py_ssize_t* _free  # stack of free slots (_nfree of them)
    cdef Py_ssize_t _n, _cap, _pcap, _nfree
    cdef bint _handles  # keep each slot's position (for update); the network's heap only
    cdef list _p  # the payloads' owner: slot s's at 2s and 2s + 1

    cpdef Py_ssize_t push(self, double t, long long seq, a, b) except? -1
    cpdef update(self, Py_ssize_t slot, double t, long long seq, a, b)
    cdef int _grow_pos(self, Py_ssize_t need) except -1
    cpdef Py_ssize_t size(self) noexcept
    cpdef double top_t(self) noexcept
    cpdef long long top_seq(self) except? -1
    cpdef object top_a(self)
    cpdef object top_b(self)
    cpdef pop(self)
    cpdef list entries(self)
    cpdef drop_stale(self, long start)
    cdef void _sift_up(self, Py_ssize_t i) noexcept
    cdef void _sift_down(self, Py_ssize_t i) noexcept
