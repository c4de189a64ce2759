"""Hardware calibration of dpsim: microbenchmark suites, profile fits, compute timing, HIL replays.

Installed as ``dpsim.calibration`` (the folder ``calibration/`` of the checkout; setup.py maps it):
``python -m dpsim.calibration --help``.  The simulator core never imports it.
"""
if __name__ != "dpsim.calibration":  # the checkout folder imported by its pre-#14 top-level name
    import sys as _sys

    _msg = (f"`{__name__}` is now `dpsim.calibration` (issue #14): run "
            "`python -m dpsim.calibration ...` / `import dpsim.calibration` "
            "(from a checkout after `pip install -e .`)")
    if _sys.argv[:1] == ["-m"]:  # `python -m calibration...`: the one line, no traceback
        raise SystemExit(_msg)
    raise ImportError(_msg)
