cimport cython
# Augmenting declarations: RouteBook as an extension type with typed per-kind caches (see
# dpsim/_core.py, setup.py).  Route stays a Python tuple subclass (it carries attributes).
from dpsim.cluster.topology cimport GPU, Node


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class RouteBook:
    cdef public object cl, transform
    cdef public dict lat, _read, _write, _h2d, _d2h
    cdef public list _remote_h2d, _to_remote, _model
    cdef public long _n

    cpdef _make(self, kind, src, dst, links)
    cpdef _pair(self, list table, long k, r)
    cpdef storage_read(self, Node node)
    cpdef storage_write(self, Node node)
    cpdef h2d(self, GPU gpu)
    cpdef d2h(self, GPU gpu)
    @cython.locals(k=long)
    cpdef remote_h2d(self, GPU src_gpu, GPU dst_gpu)
    @cython.locals(k=long)
    cpdef gpu_to_remote(self, GPU src_gpu, GPU dst_gpu)
    @cython.locals(k=long)
    cpdef model(self, GPU src_gpu, GPU dst_gpu)
