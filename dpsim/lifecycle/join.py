"""A join: call ``then`` once ``n`` parallel parts have finished.

Like a relay baton that is passed on only when every runner of a leg has arrived: a split
read finishes when both of its halves are in; a first token's DE buffer is freed when both
the H2D copy and the persist of the prompt KV are done.  Replaces hand-kept ``pend``
counters.
"""
from __future__ import annotations


class Call:
    """``fn(*args)`` as a callback that ignores what it is called with (a finished transfer, a
    timer's value, nothing): a callback with its arguments bound, without a closure.

    Like a pre-addressed envelope: whoever finishes the job only has to drop it in the box.
    One small object per use, where a ``lambda r=req: ...`` cost a function object, its
    defaults and (in the compiled core) a closure scope."""

    __slots__ = ("fn", "args")

    def __init__(self, fn, *args) -> None:
        self.fn = fn
        self.args = args

    def __call__(self, *_ignored):
        return self.fn(*self.args)


def call(fn, args: tuple) -> Call:
    """``Call(fn, *args)`` from a ready tuple of arguments: how the lifecycle makes one per
    request stage.  The same object; in the compiled core a C call that sets the two fields,
    where ``Call(...)`` packs its arguments into a tuple, parses them and slices off ``args``."""
    c = Call.__new__(Call)
    c.fn = fn
    c.args = args
    return c


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
