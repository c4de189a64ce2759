cimport cython
# Augmenting declarations: the load ledger as an extension type (see dpsim/_core.py, setup.py).
from dpsim.lifecycle.request cimport Request
from dpsim.engines.prefill cimport PrefillEngine
from dpsim.engines.decode cimport DecodeEngine
from dpsim.cluster.topology cimport Node

cpdef long new_tokens(Request req)


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class LoadLedger:
    cdef public object on_pe, on_de

    @cython.locals(t=long)
    cpdef charge_pe(self, Request req, PrefillEngine pe)
    @cython.locals(t=long)
    cpdef charge_de(self, Request req, DecodeEngine de)
    @cython.locals(pe=PrefillEngine, d=long)
    cpdef recharge_pe(self, Request req)
    @cython.locals(pe=PrefillEngine)
    cpdef release_pe(self, Request req)
    @cython.locals(de=DecodeEngine)
    cpdef release_de(self, Request req)
    cpdef read_started(self, Node node, long tokens)
    cpdef read_finished(self, Node node, long tokens)
