"""Scheduling policies: one registry of named policies over the same lifecycle mechanism.

A policy decides (a) which PE and DE serve a request and which read path carries its hit KV
(inter-engine), and (b) what goes into a PE's next forward pass (intra-engine).  Policies are
registered by name and chosen with ``system.scheduler``; read-path rules with
``system.read_path``.
"""
from __future__ import annotations

from .base import POLICIES, READ_PATHS, Policy, make_policy, register  # noqa: F401
from . import simple  # noqa: F401  (registers policies)

try:  # the paper's scheduler (§S6) lives in its own module
    from . import dualpath  # noqa: F401
except ImportError:  # pragma: no cover
    pass
