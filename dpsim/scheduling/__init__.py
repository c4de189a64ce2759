"""Scheduling: policies over the same lifecycle mechanism, each a small registered object.

* policies (``system.scheduler``): ``simple`` (dpsim/scheduling/simple.py), ``dualpath``
  (dualpath.py, §S6) -- registry in base.py;
* read-path rules (``system.read_path``): one file each in read_paths/;
* the load ledger (ledger.py): the only writer of seq_e / tok_e / read_q.
"""
from __future__ import annotations

from .base import POLICIES, Policy, SchedContext, make_policy, register  # noqa: F401
from .ledger import LoadLedger  # noqa: F401
from .read_paths import READ_PATHS, ReadPlan  # noqa: F401
from . import dualpath, simple  # noqa: F401  (register the policies)
