# Augmenting declarations: compile maxmin.py with typed hot loops (see setup.py).
cimport cython
from .links cimport Link, Transfer

cdef double INF, _EPS
cdef long HIGH


@cython.locals(f=Transfer, l=Link, share=double, mcap=double, thr=double, r=double, n=long,
               s=double, hit=bint, active=list, keep=list, frozen=list)
cpdef fill_scratch(list flows, list links)


@cython.locals(f=Transfer, l=Link, r=double, a=double, high=list, low=list)
cpdef allocate_scratch(list flows, list links, double high_share)
