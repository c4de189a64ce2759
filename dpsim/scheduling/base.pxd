# Augmenting declarations: the policy base as an extension type (see dpsim/_core.py, setup.py).
# Policies written in Python (simple.py, a new policy file) subclass it as usual.
cimport cython
from dpsim.lifecycle.request cimport Request
from dpsim.scheduling.ledger cimport LoadLedger


cdef class Policy:
    cdef dict __dict__
    cdef public object ctx, cfg, read_rule
    cdef public LoadLedger ledger
    cdef public long max_tokens
    cdef public bint chunking
    cdef public double _kvb, _hbm_div
    cdef public long _block
    cdef public object _compute

    cpdef submit(self, req)
    cpdef long waiting(self)

    @cython.locals(h=long)
    cpdef plan(self, Request req, pe, de)

    cpdef on_prefill_done(self, Request req)
    cpdef on_request_done(self, Request req)

    @cython.locals(budget=long, used=long, kvb=double, hbm=double, hbm_div=double, kv_used=double,
                   req=Request, rem=long, room=long, bsz=long, cached=long, kv=double, left=double,
                   items=list)
    cpdef list form_batch(self, pe, queue)
