# Augmenting declarations: a forward's batch as an extension type (see dpsim/_core.py,
# setup.py).  Strategies written in Python subclass it as usual.
cimport cython
from dpsim.lifecycle.request cimport Request


cdef class BatchBase:
    cdef public object eng
    cdef public list items
    cdef public double t0, T, ep
    cdef public long L
    cdef public bint finished

    @cython.locals(kvb=double, ins=list, outs=list, req=Request, bsz=long, inb=double, outb=double)
    cpdef tuple kv_in_out(self, long div=*)

    cpdef start(self)
    cpdef done(self)
