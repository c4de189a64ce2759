cimport cython
# Augmenting declarations: the load ledger as an extension type (see dpsim/_core.py, setup.py).
from dpsim.lifecycle.request cimport Request

cpdef long new_tokens(Request req)


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class LoadLedger:
    cdef public object on_pe, on_de

    cpdef charge_pe(self, Request req, pe)
    cpdef charge_de(self, Request req, de)
    cpdef recharge_pe(self, Request req)
    cpdef release_pe(self, Request req)
    cpdef release_de(self, Request req)
    cpdef read_started(self, node, long tokens)
    cpdef read_finished(self, node, long tokens)
