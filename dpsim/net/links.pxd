cimport cython
# Augmenting declarations: compile links.py into extension types (see setup.py).
cdef class Link:
    cdef public object name, kind, node, index
    cdef public double capacity, sat_cap, rate_sum, acc_bytes, acc_t, high_rate
    cdef public list flows
    cdef public long n_low, n_flows
    cdef long long[::1] _ids
    cdef public long _mark, _cmark, _cnt
    cdef public double _bgh, _bgl, _load, _hload, _avail

    cpdef double delivered(self, double now)
    cpdef list live_flows(self)


@cython.freelist(256)  # a few per request, short-lived: reuse the memory
cdef class Transfer:
    cdef public long id
    cdef public object route, on_done, tag
    cdef public tuple links
    cdef public double size, remaining, rate, max_rate, last_t, t_submit, t_start, t_end
    cdef public double delivered_check, fixed_end, _old
    cdef public long prio, version, _mark, _hslot

    cpdef _init(self, long tid, route, double size, long prio, double max_rate, on_done, tag)


@cython.locals(tr=Transfer)
cpdef Transfer new_transfer(long tid, route, double size, long prio, double max_rate, on_done, tag)


@cython.locals(i=Py_ssize_t, s=double, l=Link, ls=list)
cpdef sum_bytes(list groups, double now, double[::1] out)
