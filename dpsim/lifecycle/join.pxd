cimport cython
# Augmenting declarations: Join as an extension type (see dpsim/_core.py and setup.py).
@cython.freelist(256)  # allocated and freed per request stage: reuse the memory
@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class Join:
    cdef public long left
    cdef public object then

    cpdef add(self, long k=*)


@cython.freelist(256)
@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class Call:
    cdef public object fn
    cdef public tuple args


cpdef Call call(fn, tuple args)
