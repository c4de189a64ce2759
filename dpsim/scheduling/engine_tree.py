"""Engine choice in O(log n): a tournament tree over the engines of one side.

Like a knockout tournament bracket: each match keeps the smaller of two players, so the champion
at the top is the least of all, and when one player's score changes only the matches on its way
up are replayed (log2 n of them), not the whole tournament.

:class:`MinTree` keeps, for engines ``0..n-1``, the least ``(tok, idx)`` -- the "least tok_e, ties
to the lowest index" choice of §S6 and of Basic -- and, per subtree, the least of two more keys
``a`` and ``b``, so that a search for "the least tok_e among the engines that can take this
request" (Basic: enough prefetch room in new tokens *and* in HBM tokens) skips every subtree in
which no engine has room in both.  Scans of every engine per assignment (issue #10 item 5) become
one walk down the tree; the caller's own exact test (``ok``) still decides at each leaf, so the
tree only prunes and never changes a choice.

The keys are plain numbers the caller sets with :meth:`set`; ``tok`` is an int (tokens).
"""
from __future__ import annotations

_INF = float("inf")


class MinTree:
    __slots__ = ("n", "size", "tok", "a", "b")

    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"MinTree needs at least one engine (got {n})")
        size = 1
        while size < n:
            size *= 2
        self.n = n
        self.size = size
        # node k's children are 2k and 2k+1; leaves are size..size+n-1; padding leaves never win
        self.tok = [_INF] * (2 * size)
        self.a = [_INF] * (2 * size)
        self.b = [_INF] * (2 * size)
        for i in range(n):
            self.set(i, 0, -_INF, -_INF)

    def set(self, i: int, tok, a, b) -> None:
        """Engine ``i`` now has load ``tok`` and room keys ``a``, ``b`` (smaller: more room)."""
        k = i + self.size
        n = self.n
        T, A, B = self.tok, self.a, self.b
        T[k] = tok * n + i  # (tok, idx) as one number: exact for tok < 2**53 / n
        A[k] = a
        B[k] = b
        k >>= 1
        while k:
            l = 2 * k
            r = l + 1
            t = T[l] if T[l] <= T[r] else T[r]
            x = A[l] if A[l] <= A[r] else A[r]
            y = B[l] if B[l] <= B[r] else B[r]
            if T[k] == t and A[k] == x and B[k] == y:
                return  # nothing above changes
            T[k] = t
            A[k] = x
            B[k] = y
            k >>= 1

    def set_tok(self, i: int, tok) -> None:
        """Only engine ``i``'s load changed (its room keys stay)."""
        k = i + self.size
        T = self.tok
        T[k] = tok * self.n + i
        k >>= 1
        while k:
            l = 2 * k
            t = T[l] if T[l] <= T[l + 1] else T[l + 1]
            if T[k] == t:
                return
            T[k] = t
            k >>= 1

    def least(self) -> int:
        """The engine with the least ``(tok, idx)``."""
        return int(self.tok[1]) % self.n

    def least_with_room(self, amax, bmax, ok) -> int:
        """The engine with the least ``(tok, idx)`` among those with ``a <= amax``, ``b <= bmax``
        and ``ok(i)`` true; -1 if none.  ``ok`` is the exact test; ``a``/``b`` only prune (set
        them so that ``ok(i)`` implies ``a <= amax and b <= bmax``)."""
        T, A, B = self.tok, self.a, self.b
        size = self.size
        best = _INF
        best_i = -1
        stack = [1]
        while stack:
            k = stack.pop()
            if T[k] >= best or A[k] > amax or B[k] > bmax:
                continue
            if k >= size:
                i = k - size
                if ok(i):
                    best = T[k]
                    best_i = i
                continue
            l = 2 * k
            # visit the child with the smaller load first (pushed last)
            if T[l] <= T[l + 1]:
                stack.append(l + 1)
                stack.append(l)
            else:
                stack.append(l)
                stack.append(l + 1)
        return best_i

    def first_with_room(self, start: int, amax, bmax, ok) -> int:
        """The first engine in the cyclic order ``start, start+1, ..., n-1, 0, ..., start-1`` with
        ``a <= amax``, ``b <= bmax`` and ``ok(i)``; -1 if none (round-robin choice)."""
        i = self._first(start, self.n, amax, bmax, ok)
        if i < 0 and start > 0:
            i = self._first(0, start, amax, bmax, ok)
        return i

    def _first(self, lo: int, hi: int, amax, bmax, ok) -> int:
        """Leftmost engine in ``[lo, hi)`` passing the tests; -1 if none."""
        A, B = self.a, self.b
        size = self.size
        stack = [(1, 0, size)]  # node, and the engine range [l, r) it covers
        while stack:
            k, l, r = stack.pop()
            if r <= lo or l >= hi or A[k] > amax or B[k] > bmax:
                continue
            if k >= size:
                if ok(l):
                    return l
                continue
            m = (l + r) >> 1
            stack.append((2 * k + 1, m, r))
            stack.append((2 * k, l, m))
        return -1
