# Augmenting declarations: RequestLog as an extension type (see dpsim/_core.py, setup.py).
# The current page is written through typed memoryviews: a row is 21 C stores.
cimport cython
from dpsim.lifecycle.request cimport Request


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class RequestLog:
    cdef public dict fail_reason
    cdef public list _live, _free
    cdef public Py_ssize_t _nlive
    cdef public list _pages
    cdef public tuple _page
    cdef long long[::1] _iv
    cdef double[::1] _tv
    cdef signed char[::1] _pv, _sv
    cdef public Py_ssize_t _n, _k

    @cython.locals(free=list)
    cpdef issued(self, Request req)
    cpdef finished(self, Request req)
    cpdef _new_page(self)

    @cython.locals(k=Py_ssize_t, i=Py_ssize_t)
    cpdef _write(self, Request r)
