# Augmenting declarations: KVPort as an extension type (see dpsim/_core.py, setup.py).
cimport cython
from dpsim.lifecycle.request cimport Request
from dpsim.cluster.routes cimport Route, RouteBook
from dpsim.net._c.network cimport Network

cdef double INF


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class KVPort:
    cdef public Network net  # the compiled network (dpsim._core runs this build only with it)
    cdef public RouteBook routes
    cdef public dict ep_peer
    cdef public list _peer
    cdef public double full_block_bytes, cap_layer, cap_full, cap_storage
    cdef public long model_prio, read_qd

    cpdef _send(self, Route route, double nbytes, cb, double cap, tag, long rid)
    @cython.locals(route=Route, lat=double, qd=long, blocks=long)
    cpdef storage_read(self, node, double nbytes, cb, long rid)
    cpdef storage_write(self, node, double nbytes, cb, tag, long rid=*)
    cpdef de_h2d(self, gpu, double nbytes, cb, long rid)
    cpdef d2h(self, gpu, double nbytes, cb, long rid)

    @cython.locals(cap=double, f=double, n=long, b=double, mr=double, p=double)
    cpdef long pe_input(self, Request req, gpu, double nbytes, double pace, cb, bint layer_blocks)

    @cython.locals(cap=double, p=double)
    cpdef long pe_output(self, Request req, gpu, double nbytes, double pace, cb, bint layer_blocks)

    cpdef long model_traffic(self, gpu, double nbytes, double duration, cb, long idx)
    cdef _peer_of(self, long gid)
