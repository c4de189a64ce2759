# Augmenting declarations: the coarse layerwise batch as an extension type (see
# dpsim/_core.py, setup.py).
cimport cython
from dpsim.engines.prefill_modes.base cimport BatchBase
from dpsim.lifecycle.request cimport Request
from dpsim.lifecycle.ports cimport KVPort
from dpsim.engines.prefill cimport PrefillDeps
from dpsim.cluster.topology cimport GPU


cdef class LayerwiseBatch(BatchBase):
    cdef public long pin, pout
    cdef public double t_in
    cdef public bint timer_fired, compute_done, out_started
    cdef public list out_list

    @cython.locals(ins=list, T=double, pace=double, req=Request, inb=double, d=PrefillDeps, gpu=GPU,
                   port=KVPort, L=long)
    cpdef start(self)

    cpdef _in_done(self, _tr=*)
    cpdef _timer(self, _ev=*)

    @cython.locals(tail=double, now=double)
    cpdef _after_compute(self)

    cpdef _compute_finished(self, _ev=*)

    @cython.locals(pace=double, req=Request, outb=double, d=PrefillDeps, gpu=GPU, port=KVPort)
    cpdef _start_out(self, _ev=*)

    cpdef _out_done(self, _tr=*)
    cpdef _check(self)
