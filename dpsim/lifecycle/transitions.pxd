# Augmenting declarations: the Lifecycle as an extension type (see dpsim/_core.py, setup.py).
# Callbacks with bound arguments are ``_Step`` objects (below), not closures, so every
# transition is a cpdef method.
cimport cython
from dpsim.lifecycle.join cimport Join
from dpsim.lifecycle.request cimport Agent, Request, new_request
from dpsim.cluster.topology cimport GPU
from dpsim.lifecycle.log cimport RequestLog
from dpsim.scheduling.base cimport Policy
from dpsim.scheduling.ledger cimport LoadLedger
from dpsim.engines.prefill cimport PrefillEngine
from dpsim.engines.decode cimport DecodeEngine
from dpsim.net._c.loop cimport EventLoop

cdef long _RC
cdef class _Step  # (below)

cdef PrefillEngine _pe(Request req)
cdef DecodeEngine _de(Request req)
cdef _free_pe_buffer(Request req)


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class Lifecycle:
    # port stays untyped: a calibration profile may wrap it (dpsim.cluster.profile.StorageWriteCost)
    cdef public EventLoop clock  # the compiled event loop, or a subclass (SimpyClock)
    cdef public object port, progress, on_agent_done, on_change
    cdef object _dispatch_cb, _issue_cb, _alloc_pe_cb, _to_prefill_cb
    cdef public LoadLedger ledger
    cdef public RequestLog log
    cdef public Policy policy
    cdef public object awaiting_first, first_token_times, first_token_ttft
    cdef public double kvb, pre_s, alloc_s, handoff_s
    cdef public long block, n_rid, outstanding, n_done, n_failed
    cdef public bint persist, track_first

    @cython.locals(i=long, j=long, req=Request)
    cpdef issue(self, Agent agent, _ev=*)

    cpdef assign(self, Request req, pe, de, plan)
    cpdef _dispatch(self, Request req)

    @cython.locals(b=double, g=GPU)
    cpdef _alloc_de_buffer(self, Request req, then)

    cpdef _de_buffer_granted(self, Request req, double b, then)

    @cython.locals(pe_hit=long, b=double, g=GPU)
    cpdef _alloc_pe_buffer(self, Request req)

    @cython.locals(agent=Agent)
    cpdef _allocated(self, Request req)

    @cython.locals(now=double, stored=long, de_t=long, pe_t=long, parts=long, join=Join, kvb=double,
                   tokens=long, g=GPU)
    cpdef _read(self, Request req)

    cpdef _read_part(self, node, long tokens, Join join)
    cpdef _read_joined(self, Request req)
    cpdef _read_done(self, Request req)
    cpdef _to_prefill(self, Request req)

    @cython.locals(now=double, agent=Agent, blk=long, new_blocks=long, stored_after=long, free_buf=Join, g=GPU)
    cpdef first_token(self, Request req)

    @cython.locals(w=list)
    cpdef _persisted(self, Agent agent, long stored_after, join)

    @cython.locals(g=GPU)
    cpdef _free_de_buffer(self, Request req)

    @cython.locals(need=double, g=GPU, de=DecodeEngine)
    cpdef _de_request_hbm(self, Request req, Join free_buf)

    @cython.locals(g=GPU)
    cpdef _de_h2d(self, Request req, double need, Join free_buf)

    cpdef _de_h2d_done(self, Request req, Join free_buf)

    @cython.locals(kvb=double, req=Request, free_buf=Join, need=double, g=GPU)
    cpdef _de_hbm_freed(self, DecodeEngine de)

    @cython.locals(now=double, agent=Agent, blk=long, ctx=long, gen_blocks=long, stored=long, b=double,
                   go=_Step, g=GPU)
    cpdef decode_done(self, Request req, DecodeEngine de)

    cpdef _gen_d2h(self, Agent agent, g, double b, long stored, long rid)
    cpdef _gen_to_storage(self, Agent agent, node, double b, long stored)
    cpdef _gen_persisted(self, Agent agent, node, double b, long stored)

    @cython.locals(agent=Agent, think=double)
    cpdef _finished(self, Request req)

    @cython.locals(now=double, agent=Agent)
    cpdef fail(self, Request req, reason)


cdef long _S_ALLOCATED, _S_DE_BUFFER_GRANTED, _S_READ_PART, _S_READ_JOINED, _S_FREE_DE_BUFFER
cdef long _S_PERSISTED, _S_DE_REQUEST_HBM, _S_DE_H2D_DONE, _S_GEN_D2H, _S_GEN_TO_STORAGE
cdef long _S_GEN_PERSISTED


@cython.freelist(256)  # a few per request, each freed once its event came: reuse the memory
@cython.final
cdef class _Step:
    # Field order is memory layout: the call reads lc and kind, then its own fields.
    cdef Lifecycle lc
    cdef long kind
    cdef object req, o1, o2
    cdef double x
    cdef long n, m


@cython.locals(s=_Step)
cdef _Step _step(Lifecycle lc, long kind, req, o1, o2, double x, long n, long m)
