# Augmenting declarations: compile loop.py's EventLoop into an extension type (see setup.py).
# SimpyClock stays an ordinary Python class in both builds.
cimport cython
from .heap cimport TimeHeap

cdef double INF


cdef class EventLoop:
    cdef public double now
    cdef public long events
    cdef public TimeHeap _heap
    cdef public long _seq
    cdef public bint _stopped

    cpdef double time(self) except? -1.0  # (a subclass may raise: SimpyClock)

    @cython.locals(t=double)
    cpdef timer(self, double dt, fn, arg=*)

    cpdef long reserve(self) except? -1

    cpdef timer_at(self, double t, long seq, fn, arg=*)

    cpdef double peek(self) except? -1.0

    cpdef long pending(self) except? -1

    @cython.locals(heap=TimeHeap)
    cpdef step(self)

    cpdef stop(self)

    @cython.locals(heap=TimeHeap, n=long)
    cpdef bint run(self)
