# Augmenting declarations: the table-mode prefill-attention kernel as an extension type (see
# dpsim/_core.py, setup.py); the .py beside this is the reference.
cimport cython
cimport libc.math as math  # the .py's math.log1p/log/exp as C calls (same libm, same bits)


cdef class AttnKernel:
    cdef public double L, a_min, a_max, b_min, b_max, topk, kappa
    cdef public double[::1] ua, ub, lr, dua, dub
    cdef public long nua, nb
    cdef public bint has_topk

    @cython.locals(a=double, b=double, nb=long, i=long, j=long, k=long, lo=long, hi=long, mid=long, x=double, y=double,
                   wa=double, wb=double, r00=double, r10=double, low=double, d=double, basis=double,
                   xx=double)
    cpdef double work(self, double cached, double new)
