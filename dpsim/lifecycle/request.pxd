cimport cython
# Augmenting declarations: Request and Agent as extension types with typed fields (see
# dpsim/_core.py and setup.py); the .py beside this is the reference.
cdef double NAN
cdef object _ARRIVED


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class Request:
    cdef public long rid, round, prompt, hit, gen, new, de_hit, computed, n_chunks
    cdef public long pe_charged, de_charged
    cdef public double arrival, t_sched, t_alloc, t_read0, t_read1, t_pf0, t_first, t_h2d
    cdef public double t_second, t_end, pe_buf, de_buf
    cdef public object agent, pe, de, path, stage, fail, _lslot

    cdef _init(self, long rid, agent, long rnd, long prompt, long hit, long gen, double arrival)


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class Agent:
    cdef public long aid, n_rounds, next_round, stored, persist_pending, n_done
    cdef public object traj
    cdef public const long long[::1] _prompt, _hit, _gen
    cdef public const double[::1] _think
    cdef public list persist_waiters
    cdef public double t_start, t_end
    cdef public bint failed


@cython.locals(r=Request)
cpdef Request new_request(long rid, agent, long rnd, long prompt, long hit, long gen, double arrival)
