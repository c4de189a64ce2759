# Augmenting declarations: a forward's batch as an extension type (see dpsim/_core.py,
# setup.py).  Strategies written in Python subclass it as usual.
cimport cython
from dpsim.lifecycle.request cimport Request
from dpsim.engines.prefill cimport PrefillEngine, PrefillDeps


cdef class BatchBase:
    cdef public PrefillEngine eng
    cdef public list items
    cdef public double t0, T, ep
    cdef public long L
    cdef public bint finished

    @cython.locals(d=PrefillDeps, t0=double, new_sum=long, work=double, req=Request, bsz=long)
    cpdef _begin(self, PrefillEngine eng, list items)

    @cython.locals(kvb=double, ins=list, outs=list, req=Request, bsz=long, inb=double, outb=double)
    cpdef tuple kv_in_out(self, long div=*)

    cpdef start(self)
    cpdef done(self)
