cimport cython
# Augmenting declarations: compile links.py into extension types (see setup.py).
#
# Line-aligned sizes.  CPython's small-object allocator carves 16 KiB pools, aligned, into
# blocks of one size after a 48-byte pool header, and a tracked object's 16-byte GC header comes
# first in its block: when the block size (the object's size + 16) is a multiple of 64, every
# object starts on a cache-line boundary, so its first fields fill whole lines.  Other sizes
# shift objects by 16, 32 or 48 bytes, and the same hot fields then often span one line more --
# at scale each extra line is one more cache miss.  The hot objects here (and Request, Agent in
# dpsim/lifecycle/request.pxd, Route in dpsim/cluster/routes.pxd) are sized so: trimmed, or
# padded at the end (``_pad``: never read).  tests/test_layout.py checks the sizes.
cdef class Link:
    # Field order is memory layout, by cache line (a cluster of thousands of links does not fit
    # in cache; each line touched is a miss).  Line 0, with the object's header (which every
    # visit touches): the byte counter and the flow list -- all that the metrics sampler and a
    # flow's join or leave read.  Line 1: saturation and the re-rating's marks and loads.  Line
    # 2: the rest.  No method table (its two methods are plain Python ones: nothing calls them
    # from C), so line 0 holds six fields; 184 bytes + 56 of padding.
    cdef public double rate_sum, acc_bytes, acc_t
    cdef public list flows
    cdef public long n_flows
    cdef public double sat_cap
    cdef public double high_rate, capacity
    cdef public long n_low, _mark, _cmark
    cdef public double _bgh, _bgl, _load
    cdef public double _hload, _avail
    cdef public long _cnt
    cdef public object name, kind, node, index
    cdef char _pad[56]


@cython.freelist(256)  # a few per request, short-lived: reuse the memory
cdef class Transfer:
    # Field order is memory layout: what the re-rating reads of each flow first (line 0 with
    # the header: its links, marks and rate; line 1: what a rate change updates), the
    # bookkeeping read once per transfer after.  176 bytes, no method table (its constructor's
    # body is the function _fill): a line-aligned 192-byte block.
    cdef public tuple links
    cdef public long _mark, prio, version, _hslot
    cdef public double rate, _old, max_rate, t_end, remaining, last_t, delivered_check
    cdef public double size, t_start, t_submit
    cdef public long id, _rid
    cdef public object route, on_done, _tag


@cython.locals(tr=Transfer)
cpdef Transfer new_transfer(long tid, route, double size, long prio, double max_rate, on_done, tag,
                            long rid)


cdef _fill(Transfer tr, long tid, route, double size, long prio, double max_rate, on_done, tag,
           long rid)


@cython.locals(i=Py_ssize_t, s=double, l=Link, ls=list)
cpdef sum_bytes(list groups, double now, double[::1] out)
