cimport cython
from dpsim.lifecycle.request cimport Request
from dpsim.cluster.topology cimport GPU
from dpsim.net._c.loop cimport EventLoop
from dpsim.net._c.heap cimport TimeHeap

cdef double INF


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class DecodeEngine:
    # Field order is memory layout: what a DE group's fetch reads of each of its engines (the
    # GPU, seq_e, tok_e) comes first, after the header, the method table and __dict__ (56
    # bytes together: one line, or two when the object starts mid-line -- an engine is larger
    # than pymalloc's blocks, so malloc places it, 16-byte aligned).
    cdef dict __dict__
    cdef public GPU gpu
    cdef public long seq, tok
    cdef public EventLoop clock  # the compiled event loop, or a subclass (SimpyClock)
    cdef public object deps, cap, ep_stream, group, alloc_q
    cdef object _finish_cb, _done_cb, _boundary_cb
    cdef public long idx, base, fresh_step, steps, version, btoken, _fin_k, _bnd_k, _fin_seq
    cdef public list fresh, joiners, size_log
    cdef double[::1] _armed
    cdef public long _n_armed
    cdef public TimeHeap heap
    cdef public double t_int, a, c, busy_time, t0, ts, tt, ep_tok, slowdown, _fin_t
    cdef public bint boundary_pending, _fin_deferred

    @cython.locals(n=long, S=long, n_grow=long, steps=long, r=Request, c=long)
    cpdef tuple _iter_params(self)

    @cython.locals(slow=double, demand=double)
    cpdef _model_traffic(self)

    cpdef double _time_for(self, double k)

    @cython.locals(a=double, c=double, b=double, k=long)
    cpdef long _steps_by(self, double dt)

    @cython.locals(k=long, dt=double, n=long, now=double, t=double)
    cpdef _reschedule(self)

    @cython.locals(armed="double[::1]", i=long)
    cpdef bint _covered(self, double t)

    @cython.locals(n=long)
    cpdef _set_finish(self)

    @cython.locals(now=double, j=long, tb=double)
    cpdef join(self, Request req)

    @cython.locals(steps_needed=long, steps=long, a=double, req=Request)
    cpdef _admit(self, list reqs, double t)

    @cython.locals(done=list, heap=TimeHeap, req=Request)
    cpdef _advance(self, long k, double now)

    cpdef _done_now(self, req)
    cpdef _boundary_due(self, long bt)
    @cython.locals(armed="double[::1]", i=long, n=long)
    cpdef _finish_due(self, long seq)

    @cython.locals(now=double)
    cpdef _on_boundary(self, long k, long bt)

    @cython.locals(now=double)
    cpdef _on_finish(self, long v, long k)
