cimport cython
# Augmenting declarations: compile links.py into extension types (see setup.py).
cdef class Link:
    # Field order is memory layout: what the re-rating and a flow's join/leave read comes first,
    # together (two cache lines), the names after (a cluster of thousands of links does not
    # fit in cache; each line a re-rating touches is a miss).
    cdef public long _mark, _cmark, n_flows, n_low
    cdef public double rate_sum, sat_cap, high_rate, acc_bytes, acc_t, capacity
    cdef public list flows
    cdef public long _cnt
    cdef public double _avail, _bgh, _bgl, _load, _hload
    cdef public object name, kind, node, index

    cpdef double delivered(self, double now)
    cpdef list live_flows(self)


@cython.freelist(256)  # a few per request, short-lived: reuse the memory
cdef class Transfer:
    # Field order is memory layout: what the re-rating reads of each flow first (one or two
    # cache lines), the bookkeeping read once per transfer after.
    cdef public tuple links
    cdef public long _mark, prio, version, _hslot
    cdef public double rate, _old, max_rate, t_end, remaining, last_t
    cdef public double size, t_submit, t_start, delivered_check, fixed_end
    cdef public long id, _rid
    cdef public object route, on_done, _tag

    cpdef _init(self, long tid, route, double size, long prio, double max_rate, on_done, tag, long rid)


@cython.locals(tr=Transfer)
cpdef Transfer new_transfer(long tid, route, double size, long prio, double max_rate, on_done, tag,
                            long rid)


@cython.locals(i=Py_ssize_t, s=double, l=Link, ls=list)
cpdef sum_bytes(list groups, double now, double[::1] out)
