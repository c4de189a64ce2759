# Augmenting declarations: compile loop.py's EventLoop into an extension type (see setup.py).
# SimpyClock stays an ordinary Python class in both builds.
cimport cython

cdef double INF


cdef class EventLoop:
    cdef public double now
    cdef public long events
    cdef public list _heap
    cdef public long _seq
    cdef public bint _stopped

    @cython.locals(t=double)
    cpdef timer(self, double dt, fn, arg=*)

    cpdef double peek(self)

    cpdef long pending(self)

    @cython.locals(e=tuple)
    cpdef step(self)

    cpdef stop(self)

    @cython.locals(heap=list, e=tuple, n=long)
    cpdef bint run(self)
