"""Read-path rules (§S6 "read-path choice"): which node(s) read a request's hit KV.

A rule is a small named object; given a request (its hit already clamped) and its PE and DE it
returns a :class:`ReadPlan`: how many hit tokens the DE node reads (the rest the PE node
reads) and the plan's label.  The mechanism (dpsim.lifecycle) executes any plan -- storage
reads on each side, the hit KV's way into the PE GPU, what crosses PE -> DE -- and never asks
which rule made it.  A new split shape is one file here with ``@register("name")``; select
it with ``system.read_path=name``.

Rules: ``pe`` (PE read path only, Basic), ``de`` (DE read path only), ``round_robin``
(alternate, the ablation's dual-path loading), ``shorter_queue`` (the node whose SNIC has the
shorter read_q, DualPath), ``split`` (both paths, in the proportion that equalises the two
read queues: the paper's future work).
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import NamedTuple


class ReadPlan(NamedTuple):
    """``de_tokens`` of the hit are read into the DE node's buffer, ``hit - de_tokens`` into
    the PE node's.  ``label`` names the plan in outputs: ``pe`` (all on the PE side), ``de``
    (all on the DE side, and the DE buffer is taken before the read) or ``split``."""

    label: str
    de_tokens: int

    @staticmethod
    def pe() -> "ReadPlan":
        return _PE

    @staticmethod
    def de(hit: int) -> "ReadPlan":
        return _new(ReadPlan, ("de", hit))  # (tuple.__new__: no Python-level __new__ per plan)

    @staticmethod
    def split(hit: int, de_tokens: int) -> "ReadPlan":
        """Both sides; collapses to ``pe``/``de`` when one side gets nothing."""
        if de_tokens <= 0:
            return _PE
        if de_tokens >= hit:
            return _new(ReadPlan, ("de", hit))
        return _new(ReadPlan, ("split", de_tokens))


_PE = ReadPlan("pe", 0)
_new = tuple.__new__

READ_PATHS: dict = {}


def register(name: str):
    """Class decorator: ``cls(ctx)`` is a rule; ``rule(req, pe, de) -> ReadPlan``."""
    def deco(cls):
        if name in READ_PATHS:
            raise ValueError(f"read-path rule {name!r} registered twice")
        READ_PATHS[name] = cls
        if cls.__dict__.get("name") != name:
            cls.name = name  # (a compiled rule, an extension type, names itself in its body)
        return cls
    return deco


def make_read_rule(name: str, ctx):
    if name not in READ_PATHS:
        raise ValueError(f"system.read_path={name!r} is not a known read-path rule; choose one of "
                         f"{sorted(READ_PATHS)} (or add one in dpsim/scheduling/read_paths/)")
    return READ_PATHS[name](ctx)


# Every module of this package registers its rule on import.
for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")
