"""The typed TimeHeap (dpsim/net/heap.pyx, used by the compiled loop and network) against its
pure-Python reference (dpsim/net/heap.py): the same entries out in the same order, whatever
the pushes, pops and ties; the network's compaction (drop_stale) and in-place re-keying (update)."""
import random

import pytest

from dpsim.net import heap as py_heap

try:
    from dpsim.net._c import heap as c_heap
except ImportError:  # pragma: no cover - a build without the extension
    c_heap = None

IMPLS = [py_heap] + ([c_heap] if c_heap is not None else [])


def _drain(h):
    out = []
    while h.size() > 0:
        out.append((h.top_t(), h.top_seq(), h.top_a(), h.top_b()))
        h.pop()
    return out


@pytest.mark.parametrize("mod", IMPLS, ids=lambda m: m.__name__)
def test_pops_in_key_order_with_ties_by_seq(mod):
    h = mod.TimeHeap()
    assert h.size() == 0 and len(h) == 0 and h.top_t() == float("inf")
    for seq, t in enumerate([3.0, 1.0, 3.0, 0.0, 1.0, 2.5]):
        h.push(t, seq, f"a{seq}", seq * 10)
    got = _drain(h)
    assert [(t, s) for t, s, _a, _b in got] == [(0.0, 3), (1.0, 1), (1.0, 4), (2.5, 5), (3.0, 0), (3.0, 2)]
    assert [a for _t, _s, a, _b in got] == ["a3", "a1", "a4", "a5", "a0", "a2"]
    assert [b for *_x, b in got] == [30, 10, 40, 50, 0, 20]


@pytest.mark.parametrize("mod", IMPLS, ids=lambda m: m.__name__)
def test_empty_heap_raises(mod):
    h = mod.TimeHeap()
    with pytest.raises(IndexError):
        h.pop()
    with pytest.raises(IndexError):
        h.top_a()


@pytest.mark.skipif(c_heap is None, reason="compiled dpsim.net not built (pip install -e .)")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_matches_reference_under_random_operations(seed):
    rng = random.Random(seed)
    hs = [py_heap.TimeHeap(), c_heap.TimeHeap()]
    seq = 0
    log = [[], []]
    for step in range(20000):
        op = rng.random()
        if op < 0.55:
            seq += 1
            t = float(rng.randint(0, 50)) if rng.random() < 0.5 else rng.random() * 50.0  # many ties
            payload = (seq, step)
            for h in hs:
                h.push(t, seq, payload, None if seq % 3 else step)
        else:
            for k, h in enumerate(hs):
                if h.size():
                    log[k].append((h.top_t(), h.top_seq(), h.top_a(), h.top_b()))
                    h.pop()
        assert hs[0].size() == hs[1].size()
        assert hs[0].top_t() == hs[1].top_t()
    assert log[0] == log[1] and len(log[0]) > 5000
    assert _drain(hs[0]) == _drain(hs[1])
    assert sorted(hs[1].entries()) == []


@pytest.mark.parametrize("seed", [0, 1])
def test_drop_stale_keeps_exactly_the_live_entries_in_order(seed):
    """The network's compaction: entries (t, seq, version, transfer) are live when their version
    is the start marker, or the transfer's current version and the transfer has not ended; both
    heaps keep exactly those and hand them out in the same order as before the drop."""
    from dpsim.net import links as py_links
    mods = [(py_heap, py_links)]
    if c_heap is not None:
        from dpsim.net._c import links as c_links
        mods.append((c_heap, c_links))
    rng = random.Random(seed)
    spec = []  # (t, seq, version, transfer index)
    for seq in range(3000):
        spec.append((float(rng.randint(0, 40)), seq, rng.choice([-1, 0, 1, 2]), rng.randrange(200)))
    versions = [rng.choice([0, 1, 2]) for _ in range(200)]
    ended = [rng.random() < 0.2 for _ in range(200)]
    outs = []
    for hmod, lmod in mods:
        trs = []
        for i in range(200):
            tr = lmod.Transfer(i, (), 1.0, 0, 1.0, None, None)
            tr.version = versions[i]
            tr.t_end = 5.0 if ended[i] else -1.0
            trs.append(tr)
        h = hmod.TimeHeap()
        for t, seq, ver, k in spec:
            h.push(t, seq, ver, trs[k])
        for _ in range(500):  # some popped first, as in a running network
            h.pop()
        want = sorted((t, s) for t, s, ver, tr in h.entries()
                      if ver == -1 or (ver == tr.version and tr.t_end < 0.0))
        h.drop_stale(-1)
        got = [(t, s) for t, s, _a, _b in _drain(h)]
        assert got == want and 0 < len(got) < 2500
        outs.append(got)
        h.push(1.0, 99999, -1, trs[0])  # slots freed by the drop are reused
        assert h.size() == 1 and h.top_seq() == 99999
    assert all(o == outs[0] for o in outs)


@pytest.mark.skipif(c_heap is None, reason="compiled dpsim.net not built (pip install -e .)")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_update_in_place_equals_pushing_anew(seed):
    """The compiled heap's handles: re-keying an entry in place (``update``) leaves the heap
    handing out exactly what the reference does when the new key is pushed and the old entry
    is skipped as superseded (the network's two ways of moving a completion)."""
    rng = random.Random(seed)
    ch, ph = c_heap.TimeHeap(), py_heap.TimeHeap()
    live = {}  # name -> (handle in ch, current seq)
    seq = 0
    got, want = [], []

    def pop_ref():
        while ph.size():  # skip superseded entries
            t, s, name = ph.top_t(), ph.top_seq(), ph.top_a()
            ph.pop()
            if name in live and live[name][1] == s:
                return t, s, name
            if name not in live and name in done and done[name] == s:
                return t, s, name
        return None

    done = {}
    for step in range(6000):
        op = rng.random()
        seq += 1
        t = float(rng.randint(0, 30)) + (0.0 if rng.random() < 0.5 else rng.random())
        if op < 0.45 or not live:
            name = f"e{seq}"
            live[name] = (ch.push(t, seq, name, None), seq)
            ph.push(t, seq, name, None)
        elif op < 0.75:
            name = rng.choice(sorted(live))
            ch.update(live[name][0], t, seq, name, None)
            live[name] = (live[name][0], seq)
            ph.push(t, seq, name, None)
        else:
            t_, s_, name = ch.top_t(), ch.top_seq(), ch.top_a()
            ch.pop()
            got.append((t_, s_, name))
            done[name] = live.pop(name)[1]
            want.append(pop_ref())
        assert ch.size() == len(live)
    assert got == want and len(got) > 1000


@pytest.mark.skipif(c_heap is None, reason="no compiled heap in this build")
def test_compiled_heap_payloads_owned_and_seq_range_checked():
    """The compiled heap's entries carry borrowed payload pointers while its slot lists own
    the payloads: a payload pushed and then dropped by the caller stays alive until popped
    (and is released then); large seqs order correctly up to the packed key's limit, and a seq
    outside 0..2**40-1 is refused with OverflowError, leaving the heap as it was."""
    import sys
    import weakref

    class P:  # a payload that can be watched
        pass

    h = c_heap.TimeHeap()
    p = P()
    ref = weakref.ref(p)
    base = sys.getrefcount(p)
    h.push(1.0, 7, p, None)
    assert sys.getrefcount(p) == base + 1  # one reference: the slot list's
    del p
    assert ref() is not None and h.top_a() is ref()
    h.pop()
    assert ref() is None  # released with the entry
    top = (1 << 40) - 1
    h.push(5.0, top, "last", None)
    h.push(5.0, top - 1, "first", None)
    for bad in (-1, 1 << 40):
        with pytest.raises(OverflowError, match="seq"):
            h.push(0.0, bad, "x", None)
    assert h.size() == 2
    assert _drain(h) == [(5.0, top - 1, "first", None), (5.0, top, "last", None)]


@pytest.mark.skipif(c_heap is None, reason="no compiled heap in this build")
def test_compiled_update_refuses_a_handle_not_in_the_heap():
    """A pop does not clear its slot's position (a cold write at scale): ``update`` tells a
    handle whose entry has left (popped, or never handed out) by the entry it points at, and
    refuses it with ValueError, leaving the heap as it was."""
    h = c_heap.TimeHeap()
    a = h.push(1.0, 1, "a", None)
    b = h.push(2.0, 2, "b", None)
    c = h.push(3.0, 3, "c", None)
    h.pop()  # "a" leaves; its slot keeps a stale position
    for bad in (a, -1, 7):
        with pytest.raises(ValueError, match="handle"):
            h.update(bad, 0.5, 9, "x", None)
    assert h.size() == 2 and (h.top_t(), h.top_a()) == (2.0, "b")
    h.update(c, 0.25, 10, "c", None)  # a live handle still re-keys in place
    assert (h.top_t(), h.top_seq(), h.top_a()) == (0.25, 10, "c")
    d = h.push(5.0, 11, "d", None)  # reuses a's slot: that handle is live again, as "d"
    assert d == a
    h.update(d, 0.1, 12, "d", None)
    assert [e[2] for e in sorted(h.entries())] == ["d", "c", "b"]


@pytest.mark.parametrize("seed", [3, 4])
def test_heap_without_handles_pops_the_same_and_refuses_update(seed):
    """``handles=False`` (the event loop's and the decode engines' heaps: no position kept per
    sift) hands out exactly what a heap with handles and the reference do, and ``update`` on
    it is refused with ValueError."""
    rng = random.Random(seed)
    heaps = [py_heap.TimeHeap(handles=False)] + ([c_heap.TimeHeap(handles=False), c_heap.TimeHeap()]
                                                 if c_heap is not None else [])
    outs = [[] for _ in heaps]
    for seq in range(5000):
        if rng.random() < 0.55 or heaps[0].size() == 0:
            t = float(rng.randint(0, 50))
            for h in heaps:
                h.push(t, seq, seq, None)
        else:
            for h, out in zip(heaps, outs):
                out.append((h.top_t(), h.top_seq(), h.top_a()))
                h.pop()
    assert all(out == outs[0] for out in outs) and len(outs[0]) > 1000
    if c_heap is not None:
        h = c_heap.TimeHeap(handles=False)
        s = h.push(1.0, 1, "a", None)
        with pytest.raises(ValueError, match="no handles"):
            h.update(s, 0.5, 2, "a", None)
        assert (h.top_t(), h.top_seq()) == (1.0, 1)
