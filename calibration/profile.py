"""Hardware profiles: load, validate, and evaluate -- re-exported from the simulator.

Reading a profile is the simulator's job (``dpsim.cluster.hwprofile``; dpsim never imports
``calibration``), so this module only re-exports those names for the calibration scripts::

    from dpsim.calibration.profile import load_profile, transfer_time   # = dpsim.cluster.hwprofile

The schema is in calibration/PROFILE.md; the transfer-time model in
:mod:`dpsim.cluster.hwprofile`.
"""
from __future__ import annotations

from dpsim.cluster.hwprofile import (  # noqa: F401  (re-exports)
    COMPUTE_KEYS,
    LINK_KEYS,
    PIECE_KEYS,
    SHARING_KEYS,
    TOP_KEYS,
    ProfileError,
    __all__,
    _link,
    _num,
    _plain,
    attention_time,
    dump_profile,
    gemm_time,
    link_names,
    load_profile,
    sharing_total,
    single_time,
    transfer_time,
    validate_profile,
)
