# Augmenting declarations: Join as an extension type (see dpsim/_core.py and setup.py).
cdef class Join:
    cdef public long left
    cdef public object then

    cpdef add(self, long k=*)


cdef class Call:
    cdef public object fn
    cdef public tuple args
