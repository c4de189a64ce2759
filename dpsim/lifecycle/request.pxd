cimport cython
# Augmenting declarations: Request and Agent as extension types with typed fields (see
# dpsim/_core.py and setup.py); the .py beside this is the reference.
cdef double NAN
cdef object _ARRIVED


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class Request:
    # Field order is memory layout, hottest first: what most stages read (stage, engines, token
    # counts) in the first two cache lines, the buffers and ledger charges next, the timestamps
    # (each written once) last.  With tens of thousands of requests in flight a request is cold
    # whenever an event reaches it, and each line it touches is a miss.
    cdef public object stage, agent, pe, de, path
    cdef public long rid, prompt, hit, gen, de_hit, new, computed, round
    cdef public double pe_buf, de_buf
    cdef public long n_chunks, pe_charged, de_charged, dec_base
    cdef public object fail, _lslot
    cdef public double arrival, t_sched, t_alloc, t_read0, t_read1, t_pf0, t_first, t_h2d
    cdef public double t_second, t_end
    cdef char _pad[32]  # 272 bytes + 32: a line-aligned block (see dpsim/net/links.pxd)

    cdef _init(self, long rid, agent, long rnd, long prompt, long hit, long gen, double arrival)


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class Agent:
    # Field order is memory layout: what each round reads first (two cache lines, the id and
    # the round table's data pointer included; the table's view is 208 bytes, of which a read
    # uses the first 24).  320 bytes + 48: a line-aligned block (see dpsim/net/links.pxd).
    cdef public long next_round, n_rounds, stored, persist_pending, n_done
    cdef public bint failed
    cdef public list persist_waiters
    cdef public long aid
    cdef public const double[::1] _rounds
    cdef public object traj
    cdef public double t_start, t_end
    cdef char _pad[48]

    cpdef wait_for_persist(self, req)


@cython.locals(r=Request)
cpdef Request new_request(long rid, agent, long rnd, long prompt, long hit, long gen, double arrival)
