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
        for l in f.route:
            cnt[l] = cnt.get(l, 0) + 1
    active = flows
    # Fast path: a single flow.
    if len(flows) == 1:
        f = flows[0]
        r = f.max_rate
        for l in f.route:
            a = avail[l]
            if a < r:
                r = a
        if r < 0.0:
            r = 0.0
        f.rate = r
        for l in f.route:
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
            thr = mcap * (1.0 + 1e-12)
            keep = []
            for f in active:
                if f.max_rate <= thr:
                    r = f.max_rate
                    f.rate = r
                    for l in f.route:
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
            for l in f.route:
                if l in frozen_links:
                    hit = True
                    break
            if hit:
                f.rate = share
                for l in f.route:
                    avail[l] -= share
                    cnt[l] -= 1
            else:
                keep.append(f)
        if len(keep) == len(active):  # numerical safety: freeze everything at share
            for f in keep:
                f.rate = share
                for l in f.route:
                    avail[l] -= share
                    cnt[l] -= 1
            keep = []
        active = keep
    for l in avail:
        if avail[l] < 0.0:
            avail[l] = 0.0


def allocate(flows: list, links: list, high_share: float) -> None:
    """Set ``rate`` of every flow in a connected component (``flows`` over ``links``)."""
    high = []
    low = []
    for f in flows:
        (high if f.prio == HIGH else low).append(f)
    if not high:
        avail = {l: l.capacity for l in links}
        fill(low, avail)
        for l in links:
            l.high_rate = 0.0
        return
    has_low = set()
    for f in low:
        for l in f.route:
            has_low.add(l)
    avail = {l: (l.capacity * high_share if l in has_low else l.capacity) for l in links}
    fill(high, avail)
    used_high = {}
    for l in links:
        cap_h = l.capacity * high_share if l in has_low else l.capacity
        used_high[l] = cap_h - avail[l]
        l.high_rate = used_high[l]
    if low:
        avail = {l: max(0.0, l.capacity - used_high[l]) for l in links}
        fill(low, avail)
