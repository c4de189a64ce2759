cimport cython
# Augmenting declarations: RouteBook as an extension type with typed per-kind caches (see
# dpsim/_core.py, setup.py).
from dpsim.cluster.topology cimport GPU, Node


@cython.final
@cython.freelist(256)  # one per pair transfer, short-lived: reuse the memory
cdef class Route:
    cdef public tuple links
    cdef public object kind, src, dst
    cdef public double latency
    cdef char _pad[56]  # 56 bytes + 56: a line-aligned block, one line read (dpsim/net/links.pxd)


@cython.locals(r=Route)
cpdef Route new_route(tuple links, kind, src, dst, double latency)


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class RouteBook:
    cdef public object cl, transform, _tf
    cdef public dict lat
    cdef public list _read, _write, _h2d, _d2h
    cdef public double net_lat

    cpdef _make(self, kind, src, dst, tuple links)
    @cython.locals(r=Route)
    cpdef _fresh(self, kind, src, dst, tuple links, double latency)
    cpdef storage_read(self, Node node)
    cpdef storage_write(self, Node node)
    cpdef h2d(self, GPU gpu)
    cpdef d2h(self, GPU gpu)
    cpdef remote_h2d(self, GPU src_gpu, GPU dst_gpu)
    cpdef gpu_to_remote(self, GPU src_gpu, GPU dst_gpu)
    cpdef model(self, GPU src_gpu, GPU dst_gpu)
