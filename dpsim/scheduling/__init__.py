"""Scheduling: policies over the same lifecycle mechanism, each a small registered object.

* policies (``system.scheduler``): ``simple`` (dpsim/scheduling/simple.py, assignment at
  arrival), ``basic`` (basic.py, Basic's global FIFO queue, §S9), ``dualpath`` (dualpath.py,
  §S6) -- registry in base.py; every module of this package is imported here, so a new policy
  is one new file with ``@register("name")`` (a compiled one registers below its class:
  docs/extending.md §8);
* read-path rules (``system.read_path``): one file each in read_paths/;
* the load ledger (ledger.py): the only writer of seq_e / tok_e / read_q.
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import POLICIES, Policy, SchedContext, make_policy, register  # noqa: F401
from .ledger import LoadLedger  # noqa: F401
from .read_paths import READ_PATHS, ReadPlan  # noqa: F401

for _m in pkgutil.iter_modules(__path__):  # register every policy module
    importlib.import_module(f"{__name__}.{_m.name}")
