# Augmenting declarations: the prefill engine as an extension type (see dpsim/_core.py,
# setup.py).
cimport cython
from dpsim.lifecycle.request cimport Request
from dpsim.lifecycle.ports cimport KVPort
from dpsim.cluster.topology cimport GPU
from dpsim.net._c.loop cimport EventLoop


@cython.final  # a batch reads these as C fields (no attribute lookup per forward)
cdef class PrefillDeps:
    cdef public EventLoop clock  # the compiled event loop, or a subclass (SimpyClock)
    cdef public object compute, batcher, strategy, first_token, fail
    cdef public KVPort port
    cdef public double kvb, ep_tok
    cdef public long n_layers
    cdef public bint timeline


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class PrefillEngine:
    # Field order is memory layout: what a PE group's fetch reads of each of its engines (tok_e,
    # the GPU) comes first, after the header, the method table and __dict__ (56 bytes
    # together: one line, or two when the object starts mid-line; it is not padded to a line).
    cdef dict __dict__
    cdef public GPU gpu
    cdef public long tok, seq
    cdef public PrefillDeps deps
    cdef public object queue, group
    cdef public long idx, batches
    cdef public bint busy
    cdef public double busy_time
    cdef public list attn_times, batch_log

    cpdef enqueue(self, Request req, bint front=*)

    @cython.locals(items=list, d=PrefillDeps)
    cpdef _start(self)

    @cython.locals(now=double, requeue=list, req=Request, bsz=long, d=PrefillDeps, items=list,
                   t0=double, new_sum=long, b=long)
    cpdef batch_done(self, batch)
