# Augmenting declarations: the DualPath read-path rule as an extension type (see dpsim/_core.py,
# setup.py): its engines' nodes are read as C fields.
cimport cython
from dpsim.engines.prefill cimport PrefillEngine
from dpsim.engines.decode cimport DecodeEngine


@cython.final
cdef class ShorterQueue:
    cpdef bint pe_reads(self, PrefillEngine pe, DecodeEngine de)
