# cython: language_level=3
"""Python's small-object arenas on transparent huge pages.

Think of a library whose books (Python objects) sit on shelves of 1 MiB (obmalloc's arenas),
each shelf in a different room of 4 KiB (a page).  A reader who walks from book to book at
random spends more time finding the rooms than reading: every new room is a page-table walk,
and in a virtual machine each walk is a walk of two tables.  A simulation of a large cluster is
such a reader: each event touches a request, its agent, a transfer, links and engines scattered
over hundreds of MiB, and its cost per event grows with the cluster although its instructions
do not (benchmarks/README.md, session 17's callgrind counts: 21.7 -> 123.5 page misses of a
2,048-entry TLB per request from 12P24D to 48P96D).  This module puts the shelves in rooms of
2 MiB: it hands CPython's object allocator its arenas from 64 MiB chunks that are aligned to
2 MiB and marked ``madvise(MADV_HUGEPAGE)``, so the kernel backs them with transparent huge
pages where it can (``/sys/kernel/mm/transparent_hugepage/enabled`` set to ``always`` or
``madvise``; with ``never`` nothing changes but the addresses).

It changes where objects live, never what the simulation computes (the request tables are
byte-identical with it and without it; tests/test_hugearena.py checks).  Freed arenas are kept
for reuse rather than returned to the system, so a process keeps its peak of arena memory.
``dpsim`` installs it once at import unless ``DPSIM_HUGE_PAGES=0``; arenas that existed before
go on living on ordinary pages and are released the ordinary way.
"""
from libc.stdint cimport uintptr_t

cdef extern from "sys/mman.h" nogil:
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void *addr, size_t length)
    int madvise(void *addr, size_t length, int advice)
    int PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE, MADV_HUGEPAGE
    void *MAP_FAILED

cdef extern from "Python.h":
    ctypedef struct PyObjectArenaAllocator:
        void *ctx
        void *(*alloc)(void *ctx, size_t size) noexcept nogil
        void (*free)(void *ctx, void *ptr, size_t size) noexcept nogil
    void PyObject_GetArenaAllocator(PyObjectArenaAllocator *allocator)
    void PyObject_SetArenaAllocator(PyObjectArenaAllocator *allocator)

cdef enum:
    HUGE = 2 << 20        # a transparent huge page on x86-64 and arm64 (4 KiB base pages)
    CHUNK = 64 << 20      # mapped at a time: 64 arenas of 1 MiB
    MAX_CHUNKS = 16384    # 1 TiB of arenas

cdef PyObjectArenaAllocator _old
cdef bint _installed = False
cdef char *_cur = NULL     # bump pointer in the newest chunk
cdef char *_end = NULL
cdef void *_free_head = NULL  # freed arenas, linked through their first word
cdef size_t _arena_size = 0   # fixed by the first request (obmalloc asks one size only)
cdef char *_chunks[MAX_CHUNKS]
cdef size_t _n_chunks = 0
cdef size_t _n_alloc = 0, _n_reused = 0, _n_freed = 0, _n_advised = 0
cdef size_t _n_foreign_alloc = 0, _n_foreign_free = 0


cdef bint _ours(void *ptr) noexcept nogil:
    cdef size_t i
    cdef uintptr_t p = <uintptr_t>ptr, b
    for i in range(_n_chunks):
        b = <uintptr_t>_chunks[i]
        if b <= p < b + CHUNK:
            return True
    return False


cdef bint _new_chunk() noexcept nogil:
    """Map CHUNK bytes aligned to HUGE: map HUGE more, then unmap the unaligned ends."""
    global _cur, _end, _n_chunks, _n_advised
    if _n_chunks >= MAX_CHUNKS:
        return False
    cdef char *raw = <char *>mmap(NULL, CHUNK + HUGE, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    if <void *>raw == MAP_FAILED:
        return False
    cdef uintptr_t r = <uintptr_t>raw
    cdef char *base = <char *>((r + HUGE - 1) & ~(<uintptr_t>(HUGE - 1)))
    cdef size_t head = base - raw
    if head:
        munmap(raw, head)
    munmap(base + CHUNK, HUGE - head)
    if madvise(base, CHUNK, MADV_HUGEPAGE) == 0:
        _n_advised += 1
    _chunks[_n_chunks] = base
    _n_chunks += 1
    _cur = base
    _end = base + CHUNK
    return True


cdef void *_alloc(void *ctx, size_t size) noexcept nogil:
    global _cur, _free_head, _arena_size, _n_alloc, _n_reused, _n_foreign_alloc
    cdef void *p
    if _arena_size == 0:
        _arena_size = size
    if size == _arena_size:
        if _free_head != NULL:
            p = _free_head
            _free_head = (<void **>p)[0]
            _n_reused += 1
            return p
        if _cur + size <= _end or (size <= CHUNK and _new_chunk()):
            p = _cur
            _cur += size
            _n_alloc += 1
            return p
    _n_foreign_alloc += 1  # another size, or no chunk to be had: the allocator we replaced
    return _old.alloc(_old.ctx, size)


cdef void _free(void *ctx, void *ptr, size_t size) noexcept nogil:
    global _free_head, _n_freed, _n_foreign_free
    if ptr != NULL and size == _arena_size and _ours(ptr):
        (<void **>ptr)[0] = _free_head
        _free_head = ptr
        _n_freed += 1
        return
    _n_foreign_free += 1  # made by the allocator we replaced (before install, or a fallback)
    _old.free(_old.ctx, ptr, size)


def install() -> bool:
    """Serve obmalloc's arenas from huge-page chunks from now on (idempotent).  True if this
    call installed it."""
    global _installed
    if _installed:
        return False
    cdef PyObjectArenaAllocator mine
    PyObject_GetArenaAllocator(&_old)
    mine.ctx = NULL
    mine.alloc = _alloc
    mine.free = _free
    PyObject_SetArenaAllocator(&mine)
    _installed = True
    return True


def installed() -> bool:
    return _installed


def owns(address: int) -> bool:
    """Whether ``address`` (e.g. ``id(obj)``) lies in one of this allocator's chunks."""
    return _ours(<void *><uintptr_t>address)


def stats() -> dict:
    """Counters: chunks mapped (and how many took the huge-page advice), arenas handed out new
    and reused, arenas freed to the reuse list, and requests passed to the allocator replaced."""
    return dict(installed=_installed, arena_size=_arena_size, chunks=_n_chunks,
                chunk_bytes=CHUNK, advised=_n_advised, arenas_new=_n_alloc,
                arenas_reused=_n_reused, arenas_freed=_n_freed,
                foreign_alloc=_n_foreign_alloc, foreign_free=_n_foreign_free)
