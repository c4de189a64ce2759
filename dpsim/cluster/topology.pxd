# Augmenting declarations: the cluster's nodes, GPUs and buffers as extension types with typed
# fields (see dpsim/_core.py, setup.py).
cimport cython


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class Buffer:
    cdef public object name, waiters
    cdef public double capacity, used, peak

    cpdef bint try_alloc(self, double nbytes)
    cpdef bint alloc_or_wait(self, double nbytes, cb)

    @cython.locals(nb=double)
    cpdef free(self, double nbytes)


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class Node:
    # Field order is memory layout: ``read_q``, which a prefill group's fetch reads of every
    # engine's node, comes first, beside the header (the object is not padded to a line: the
    # two share one line, or two lines when the allocator places the node mid-line).
    cdef public double read_q
    cdef public long nid
    cdef public object role, snic_rx, snic_tx, dram
    cdef public Buffer buffer
    cdef public list gpus


@cython.final  # never subclassed: cpdef calls are direct C calls (no override lookup)
cdef class GPU:
    # Field order is memory layout: what a scheduler's fetch reads of every engine's GPU (its
    # KV room and its node) comes first, beside the header (40 bytes together: one line, or two
    # when the allocator places the GPU mid-line; it is not padded to a line).
    cdef public double hbm_kv, hbm_used
    cdef public Node node
    cdef public long gid, local
    cdef public object cnic_rd, cnic_wr, pcie_dn, pcie_up
    cdef public double hbm_peak
