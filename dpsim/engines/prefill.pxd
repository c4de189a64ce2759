# Augmenting declarations: the prefill engine as an extension type (see dpsim/_core.py,
# setup.py).  PrefillDeps stays a plain dataclass.
cimport cython
from dpsim.lifecycle.request cimport Request


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class PrefillEngine:
    cdef dict __dict__
    cdef public object deps, gpu, queue, group
    cdef public long idx, seq, tok, batches
    cdef public bint busy
    cdef public double busy_time
    cdef public list attn_times, batch_log

    cpdef enqueue(self, Request req, bint front=*)

    @cython.locals(items=list)
    cpdef _start(self)

    @cython.locals(now=double, requeue=list, req=Request, bsz=long)
    cpdef batch_done(self, batch)
