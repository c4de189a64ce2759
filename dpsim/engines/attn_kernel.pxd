# Augmenting declarations: the table-mode prefill-attention kernel as an extension type (see
# dpsim/_core.py, setup.py); the .py beside this is the reference.
cimport cython
cimport libc.math as math  # the .py's math.log1p/log/exp as C calls (same libm, same bits)


@cython.locals(lo=long, hi=long, mid=long)
cdef long last_le(double[::1] xs, long n, double x)


cdef class AttnKernel:
    cdef public double L, a_min, a_max, b_min, b_max, topk, kappa
    cdef public double[::1] ua, ub, lr, dua, dub
    cdef public long nua, nb
    cdef public bint has_topk

    @cython.locals(a=double, b=double, nb=long, i=long, j=long, k=long, x=double, y=double,
                   wa=double, wb=double, r00=double, r10=double, low=double, d=double, basis=double,
                   xx=double)
    cpdef double work(self, double cached, double new)


cdef class LogLogLine:
    cdef public double[::1] lx, ly
    cdef public long n
    cdef public double x0, y0, xn, yn_per_x

    @cython.locals(u=double, i=long, w=double)
    cpdef double at(self, double x)


cdef class PrefillKernel:
    cdef public double lp, p, inv_p, floor_p, p_fixed, p_req, la, ep_tok
    cdef public LogLogLine lin, head
    cdef public double[::1] heads
    cdef public long n_heads

    cpdef double attention_forward(self, double new_tokens_sum, double attn_work, long n_reqs)

    @cython.locals(g=double, gemm=double, h=double)
    cpdef double time(self, double new_tokens_sum, double attn_work, long n_reqs)
