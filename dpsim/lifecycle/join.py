"""A join: call ``then`` once ``n`` parallel parts have finished.

Like a relay baton that is passed on only when every runner of a leg has arrived: a split
read finishes when both of its halves are in; a first token's DE buffer is freed when both
the H2D copy and the persist of the prompt KV are done.  Replaces hand-kept ``pend``
counters.
"""
from __future__ import annotations


class Join:
    __slots__ = ("left", "then")

    def __init__(self, n: int, then) -> None:
        self.left = n
        self.then = then

    def add(self, k: int = 1) -> None:
        """``k`` more parts to wait for (before they can finish)."""
        self.left += k

    def part_done(self, *_ignored) -> None:
        """One part finished (usable directly as a transfer or timer callback)."""
        self.left -= 1
        if self.left == 0:
            self.then()
