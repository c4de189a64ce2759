# Augmenting declarations: RequestLog as an extension type (see dpsim/_core.py, setup.py).
cimport cython
from dpsim.lifecycle.request cimport Request


cdef class RequestLog:
    cdef public dict live, fail_reason
    cdef public object _ints, _times, _path, _status

    cpdef issued(self, Request req)
    cpdef finished(self, Request req)

    cpdef _write(self, Request r)
