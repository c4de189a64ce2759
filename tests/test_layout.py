"""Line-aligned hot objects (the rule is written in dpsim/net/links.pxd).

The compiled Link, Transfer, Request, Agent and Route are sized so that each fills a small-object block
whose size is a multiple of 64 bytes: CPython's allocator then starts every one of them on a
cache line, and their hot fields span the fewest lines.  A field added to one of them, or a
method table it gains (a cdef/cpdef method), moves it off the rule: these tests fail and say by
how much, so the padding (``_pad``) can be adjusted with the change.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import dpsim
import dpsim.net as dnet
from dpsim.cluster.routes import RouteKind, new_route
from dpsim.lifecycle.request import Agent, Request, new_request

compiled = pytest.mark.skipif(
    dpsim.CORE_IMPLEMENTATION != "compiled" or dnet.IMPLEMENTATION != "compiled",
    reason="the sizes are those of the compiled build; build with `pip install -e .`")


def _gc_head(obj) -> int:
    """Bytes of the collector's header before a tracked object (16 on 64-bit CPython)."""
    return sys.getsizeof(obj) - obj.__sizeof__()


class _Traj:
    """A one-round trajectory's shape (what an Agent reads of one)."""
    id = "t"
    n_rounds = 1
    prompt, hit, gen, think_s = np.array([100]), np.array([0]), np.array([5]), np.zeros(1)


def _samples():
    net = dnet.Network(dnet.EventLoop())
    links = [net.add_link(f"l{i}", 1e9) for i in range(300)]
    transfers = [dnet.Transfer(i, tuple(links[:2]), 10.0, 1, 1e9, None, None) for i in range(300)]
    requests = [new_request(i, None, 0, 1, 0, 1, 0.0) for i in range(300)]
    agents = [Agent(i, _Traj()) for i in range(300)]
    routes = [new_route(tuple(links[:2]), RouteKind.MODEL, None, None, 0.0) for i in range(300)]
    return {"Link": links, "Transfer": transfers, "Request": requests, "Agent": agents,
            "Route": routes}


@compiled
@pytest.mark.parametrize("name", ["Link", "Transfer", "Request", "Agent", "Route"])
def test_hot_objects_fill_line_sized_blocks(name):
    objs = _samples()[name]
    cls = type(objs[0])
    assert cls.__name__ == name
    block = cls.__basicsize__ + _gc_head(objs[0])
    assert block % 64 == 0, (f"{name}: {cls.__basicsize__} bytes + a {_gc_head(objs[0])}-byte GC "
                             f"header = {block}: pad or trim it by {(-block) % 64} / {block % 64} "
                             f"bytes (see dpsim/net/links.pxd)")


@compiled
@pytest.mark.skipif(os.environ.get("PYTHONMALLOC", "pymalloc") not in ("pymalloc", "")
                    or not (3, 11) <= sys.version_info[:2] <= (3, 13),
                    reason="where each object starts is the small-object allocator's (pymalloc, "
                           "CPython 3.11-3.13: 48-byte pool headers)")
def test_hot_objects_start_on_cache_lines():
    for name, objs in _samples().items():
        off = sorted({id(o) % 64 for o in objs})
        assert off == [0], f"{name}: objects start at offsets {off} of a 64-byte line"

