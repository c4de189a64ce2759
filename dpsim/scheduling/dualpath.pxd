# Augmenting declarations: the DualPath scheduler as an extension type (see dpsim/_core.py,
# setup.py).
cimport cython
from dpsim.lifecycle.request cimport Request
from dpsim.scheduling.base cimport Policy
from dpsim.scheduling.ledger cimport LoadLedger
from dpsim.cluster.topology cimport GPU
from dpsim.engines.prefill cimport PrefillEngine
from dpsim.engines.decode cimport DecodeEngine


cdef class DualPathPolicy(Policy):
    cdef public double period, alpha_s, beta_s, z, quota, alpha, beta
    cdef public object quota_scope, pe_queue, de_queue
    cdef public bint use_quota, _ticking
    cdef public list pe_groups, de_groups, de_private, de_group_tok, _gheap, _pe_full
    cdef public long _n_private, fetches
    cdef public set _busy_groups

    cpdef long waiting(self)

    @cython.locals(now=double, nxt=double)
    cpdef submit(self, req)

    @cython.locals(k=long, npg=long, ndg=long, j=long, gi=long, g=long, order=list, full=list)
    cpdef _tick(self, _ev=*)

    @cython.locals(engs=list, beta=double, alpha=double, ledger=LoadLedger, req=Request,
                   e=PrefillEngine, best_s=PrefillEngine, best_l=PrefillEngine, best=PrefillEngine,
                   g=GPU)
    cpdef _pe_fetch(self, long gi)

    cpdef _pe_tok(self, PrefillEngine pe)

    cpdef _de_fetch(self, long gi)

    @cython.locals(req=Request, j=long)
    cpdef _de_level1(self)

    @cython.locals(kvb=double, engs=list, total_free=double, tok_sum=double, f=double, acc=double,
                   lens=long, r=Request, need=double, Z=double, ledger=LoadLedger, req=Request,
                   ln=long, e=DecodeEngine, best_u=DecodeEngine, best_f=DecodeEngine,
                   de=DecodeEngine, g=GPU)
    cpdef _de_level2(self, long gi)

    @cython.locals(h=list, tok=list, j=long)
    cpdef long _least_loaded_group(self)

    @cython.locals(tok=list, h=list)
    cpdef _group_add(self, long j, long tokens)

    @cython.locals(de=DecodeEngine)
    cpdef on_request_done(self, Request req)

    cpdef _maybe_assign(self, Request req)

    @cython.locals(budget=long, quota=double, used=long, work=double, hbm=double, hbm_div=double,
                   kv_used=double, kvb=double, req=Request, rem=long, cached=long, room=long,
                   bsz=long, left=double, w=double, lo=long, hi=long, mid=long, items=list)
    cpdef list form_batch(self, pe, queue)
