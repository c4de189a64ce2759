"""Max-min fair rate allocation (progressive filling) with two priority classes (§S5).

The high class (model-execution traffic) is filled first against ``high_share`` x capacity on
links that also carry low-class flows (the full capacity where it is alone); the low class (KV
traffic) is then filled against what the high class left: at least ``1 - high_share`` of every
link and all capacity the high class does not use.  Each flow's optional ``max_rate`` acts as a
private link (a submission-bound or compute-paced transfer).
"""
from __future__ import annotations

from .links import HIGH, INF

_EPS = 1e-12


def fill(flows: list, avail: dict) -> None:
    """Progressive filling of ``flows`` (each with ``.route`` and ``.max_rate``) over links whose
    available capacity is ``avail[link]``: sets every ``flow.rate`` and subtracts the capacity
    used from ``avail`` in place."""
    if not flows:
        return
    cnt: dict = {}
    for f in flows:
        for l in f.links:
            cnt[l] = cnt.get(l, 0) + 1
    active = flows
    # Fast path: a single flow.
    if len(flows) == 1:
        f = flows[0]
        r = f.max_rate
        for l in f.links:
            a = avail[l]
            if a < r:
                r = a
        if r < 0.0:
            r = 0.0
        f.rate = r
        for l in f.links:
            avail[l] -= r
        return
    while active:
        share = INF
        for l, n in cnt.items():
            if n:
                s = avail[l] / n
                if s < share:
                    share = s
        if share < 0.0:
            share = 0.0
        mcap = INF
        for f in active:
            if f.max_rate < mcap:
                mcap = f.max_rate
        frozen_links = None
        if mcap <= share:
            # Every flow capped below the level at which the first link saturates stops at its
            # own cap first: freeze them all at once (freeing capacity only raises the level).
            thr = share
            keep = []
            for f in active:
                if f.max_rate <= thr:
                    r = f.max_rate
                    f.rate = r
                    for l in f.links:
                        avail[l] -= r
                        cnt[l] -= 1
                else:
                    keep.append(f)
            active = keep
            continue
        thr = share * (1.0 + 1e-9) + _EPS
        frozen_links = set()
        for l, n in cnt.items():
            if n and avail[l] <= thr * n:
                frozen_links.add(l)
        keep = []
        for f in active:
            hit = False
            for l in f.links:
                if l in frozen_links:
                    hit = True
                    break
            if hit:
                f.rate = share
                for l in f.links:
                    avail[l] -= share
                    cnt[l] -= 1
            else:
                keep.append(f)
        if len(keep) == len(active):  # numerical safety: freeze everything at share
            for f in keep:
                f.rate = share
                for l in f.links:
                    avail[l] -= share
                    cnt[l] -= 1
            keep = []
        active = keep
    for l in avail:
        if avail[l] < 0.0:
            avail[l] = 0.0


def allocate(flows: list, links: list, high_share: float, bg_high: dict | None = None,
             bg_low: dict | None = None, has_low: dict | None = None) -> None:
    """Set ``rate`` of every flow in ``flows`` over ``links`` (every link of every flow).

    ``bg_high`` / ``bg_low``: per-link load of flows outside ``flows`` that stays fixed (the
    incremental re-rating passes it; a full recomputation passes nothing).  ``has_low``: per
    link, whether any low-class flow (inside or outside) crosses it -- it decides whether the
    high class is held to ``high_share``."""
    high = None
    for f in flows:
        if f.prio == HIGH:
            high = [f for f in flows if f.prio == HIGH]
            low = [f for f in flows if f.prio != HIGH]
            break
    if high is None:  # the common case: KV traffic only
        if bg_low is None:
            avail = {l: l.capacity for l in links}
        elif bg_high is None:
            avail = {l: l.capacity - bg_low[l] for l in links}
        else:
            avail = {l: l.capacity - bg_high[l] - bg_low[l] for l in links}
        for l, a in avail.items():
            if a < 0.0:
                avail[l] = 0.0
        fill(flows, avail)
        return
    if has_low is None:
        hl = set()
        for f in low:
            for l in f.links:
                hl.add(l)
        has_low = {l: (l in hl) for l in links}
    bgh = bg_high or {}
    bgl = bg_low or {}
    avail = {}
    for l in links:
        cap_h = l.capacity * high_share if has_low[l] else l.capacity
        avail[l] = cap_h - bgh.get(l, 0.0)
    fill(high, avail)
    if low:
        avail = {}
        for l in links:
            avail[l] = l.capacity - bgh.get(l, 0.0) - bgl.get(l, 0.0)
        for f in high:
            r = f.rate
            for l in f.links:
                avail[l] -= r
        for l in links:
            if avail[l] < 0.0:
                avail[l] = 0.0
        fill(low, avail)


def fill_scratch(flows: list, links: list) -> None:
    """:func:`fill` with each link's available capacity in ``link._avail`` (consumed in place)
    and its counter in ``link._cnt``: the re-rating's hot path, without dictionaries."""
    for l in links:
        l._cnt = 0
    for f in flows:
        for l in f.links:
            l._cnt += 1
    active = flows
    while active:
        share = INF
        for l in links:
            n = l._cnt
            if n:
                s = l._avail / n
                if s < share:
                    share = s
        if share < 0.0:
            share = 0.0
        mcap = INF
        for f in active:
            if f.max_rate < mcap:
                mcap = f.max_rate
        keep = []
        if mcap <= share:
            for f in active:
                r = f.max_rate
                if r <= share:
                    f.rate = r
                    for l in f.links:
                        l._avail -= r
                        l._cnt -= 1
                else:
                    keep.append(f)
            active = keep
            continue
        thr = share * (1.0 + 1e-9) + _EPS
        frozen = []
        for f in active:
            hit = False
            for l in f.links:
                n = l._cnt
                if n and l._avail <= thr * n:
                    hit = True
                    break
            if hit:
                frozen.append(f)
            else:
                keep.append(f)
        if not frozen:  # numerical safety: freeze everything at share
            frozen = active
            keep = []
        for f in frozen:
            f.rate = share
            for l in f.links:
                l._avail -= share
                l._cnt -= 1
        active = keep


def allocate_scratch(flows: list, links: list, high_share: float) -> None:
    """:func:`allocate` reading the fixed background loads from ``link._bgh`` / ``link._bgl``
    and whether low-class flows cross a link from ``link.n_low``."""
    high = None
    for f in flows:
        if f.prio == HIGH:
            high = [f for f in flows if f.prio == HIGH]
            low = [f for f in flows if f.prio != HIGH]
            break
    if high is None:
        for l in links:
            a = l.capacity - l._bgh - l._bgl
            l._avail = a if a > 0.0 else 0.0
        fill_scratch(flows, links)
        return
    for l in links:
        l._avail = (l.capacity * high_share if l.n_low > 0 else l.capacity) - l._bgh
    fill_scratch(high, links)
    if low:
        for l in links:
            l._avail = l.capacity - l._bgh - l._bgl
        for f in high:
            r = f.rate
            for l in f.links:
                l._avail -= r
        for l in links:
            if l._avail < 0.0:
                l._avail = 0.0
        fill_scratch(low, links)
