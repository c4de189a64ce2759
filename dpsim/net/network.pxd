# Augmenting declarations: compile network.py into an extension type with C-level hot paths
# (see setup.py).  Public methods stay cpdef (callable, overridable and patchable from Python
# through the Python subclass that dpsim.net exports); internal ones are cdef.
cimport cython
from .links cimport Link, Transfer, new_transfer
from .heap cimport TimeHeap
from .loop cimport EventLoop
from .maxmin cimport allocate_scratch

# Module constants as C values in the compiled build (the names stay Python globals of the pure
# modules; dpsim.net exports them from links.py).
cdef double INF
cdef long HIGH, LOW, _START
cdef bint _COMPILED  # cython.compiled: True here, False in the pure module

from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from libc.string cimport memmove

cdef extern from "Python.h":
    PyObject** PySequence_Fast_ITEMS(object seq)


cdef inline void _c_remove_at(list flows, Py_ssize_t i, Py_ssize_t n) noexcept:
    """What ``del flows[i]; flows.append(None)`` leaves in the first ``n`` entries (``i < n <=
    len(flows)``; the rest are None either way), moving only those: ``del`` moves every later
    pointer, the spare room included -- on a busy link's list a kilobyte per departure, each
    line of it a cache miss at scale.  References move with their pointers; the one leaving is
    released last (the caller still holds it)."""
    cdef PyObject** items = PySequence_Fast_ITEMS(flows)
    cdef PyObject* gone = items[i]
    memmove(&items[i], &items[i + 1], (n - 1 - i) * sizeof(PyObject*))
    Py_INCREF(None)
    items[n - 1] = <PyObject*> None
    Py_DECREF(<object> gone)


cdef inline Py_ssize_t _c_find(list flows, Transfer tr, Py_ssize_t n) noexcept:
    """The index of ``tr`` among the first ``n`` entries of ``flows`` (``n`` when absent), by
    pointer: no entry's object is touched."""
    cdef PyObject** items = PySequence_Fast_ITEMS(flows)
    cdef PyObject* p = <PyObject*> tr
    cdef Py_ssize_t i = 0
    while i < n and items[i] != p:
        i += 1
    return i


@cython.locals(flows=list, n=Py_ssize_t)
cdef int _join(Link l, Transfer tr) except -1

@cython.locals(flows=list, n=Py_ssize_t, i=Py_ssize_t)
cdef int _drop(Link l, Transfer tr) except -1


cdef class _Sharing:
    cdef public object env, backend, _wake_cb
    cdef public EventLoop _loop
    cdef public double high_share, bytes_requested, bytes_delivered, max_overload, _wake_at
    cdef public object check
    cdef public bint _flow_model, _external, _in_wake
    cdef public list links, _dirty, _new, _sub, _stack, _touched
    cdef public TimeHeap _heap
    cdef double[::1] _wakes
    cdef public dict _by_name
    cdef public long _seq, _n_wakes, _tid, _epoch, _compact_at
    cdef public long active, n_started, n_completed, rerates, wakeups

    cdef double _now(self) except? -1.0

    @cython.locals(now=double, heap=TimeHeap)
    cdef _push(self, double t, Transfer tr)

    @cython.locals(heap=TimeHeap)
    cdef _compact(self)

    @cython.locals(at=double, wakes="double[::1]", n=Py_ssize_t)
    cdef _arm(self, double now, double delay)

    @cython.locals(now=double)
    cdef _schedule_rerate(self)

    @cython.locals(now=double, dur=double, l=Link)
    cpdef complete(self, Transfer tr)

    cdef bint _saturated(self, Link l) noexcept

    @cython.locals(dirty=list, new=list, now=double, ep=long, share=double, sub=list, stack=list,
                   touched=list, f=Transfer, l=Link, l2=Link, best=Link, room=double, a=double, k=long,
                   o=double, r=double, grew=bint, cap=double, hr=double)
    cdef _rerate(self)

    @cython.locals(dt=double, d=double, r=double)
    cdef _switch(self, Transfer f, double now, double old)


    @cython.locals(now=double, l=Link)
    cpdef flush(self)



cdef class Network(_Sharing):
    cpdef bint busy(self)

    cdef public object on_transfer

    cpdef transfer(self, route, size, on_done=*, prio=*, max_rate=*, latency=*, tag=*)

    @cython.locals(tr=Transfer, now=double, t=double)
    cdef Transfer _submit(self, route, double size, on_done, long prio, double max_rate, double latency,
                          tag, long rid)

    @cython.locals(old=double)
    cpdef set_max_rate(self, Transfer tr, rate)

    @cython.locals(now=double)
    cpdef stop(self, Transfer tr)

    @cython.locals(now=double, l=Link, low=bint, r=double, ok=bint, share=double, cap=double,
                   rate=double, route=tuple)
    cdef _begin(self, Transfer tr)

    @cython.locals(now=double, tol=double, heap=TimeHeap, wakes="double[::1]", done=list, tr=Transfer,
                   t=double, ver=long, n=Py_ssize_t)
    cpdef _wake(self, _ev=*)

    @cython.locals(high=bint, r=double, flow_model=bint, share=double, dirty=list, l=Link, sat=bint)
    cdef _detach(self, Transfer tr, double now, bint settle)

    @cython.locals(err=double)
    cdef _finish(self, Transfer tr, double now)


@cython.locals(old=double, high=bint, share=double, l=Link, cap=double, bgh=double, bgl=double, hr=double,
               now=double)
cdef bint _recap(_Sharing net, Transfer tr, double r)


@cython.locals(bgh=double, bgl=double)
cdef _settle(Link l)


@cython.locals(l=Link, f=Transfer, ep=long, flows=list, links=list, stack=list, k=long)
cdef _verify(_Sharing net, list touched)


@cython.locals(n=Py_ssize_t)
cdef _grown(a, str typecode, Py_ssize_t n)
