#!/usr/bin/env bash
# Build a wheelhouse for installing dpsim on a GPU node that reaches no package index.
# Run on a connected machine, in the repository root:
#     bash calibration/wheelhouse.sh [DIR]          # default DIR: wheelhouse/ (git-ignored)
# It writes into DIR:
#   * dpsim_dualpath-<version>-py3-none-any.whl  -- this checkout (distribution dpsim-dualpath), pure Python (DPSIM_NO_EXT=1: the optional
#     Cython network is skipped, so the wheel runs on any CPython >= 3.11 and any platform);
#   * the pinned pure-Python dependencies of calibration/offline-requirements.txt (antlr4's sdist
#     is built into a wheel here, so the node needs no build tools).
# Copy DIR to the node with the checkout, then there (no index, no build isolation):
#     python3 -m pip install --no-index --find-links DIR dpsim-dualpath
#     python3 -P -m dpsim.calibration check    # -P: the installed dpsim, not the checkout's folder
# The wheel holds hw/ and calibration/ as dpsim.hw and dpsim.calibration (checked below), with the
# shipped profiles and without calibration/reports/.
# which installs into that python3 -- e.g. the image's own venv that holds its CUDA PyTorch -- and
# takes numpy/pandas/pyarrow/matplotlib/... from it.  Do NOT ask for the [torch] extra there: it
# pins a torch release the node cannot download; dpsim uses whatever CUDA torch python3 imports.
# Where the node's python3 must stay untouched:
#     python3 -m pip install --no-index --find-links DIR --no-deps --target /tmp/dpsim_site DIR/*.whl
#     export PYTHONPATH=/tmp/dpsim_site
# (a `python -m venv --system-site-packages` venv does NOT work when the node's python3 is itself
# a venv: it sees the base interpreter's site-packages, not the venv's torch).
set -euo pipefail
DIR=${1:-wheelhouse}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
mkdir -p "$DIR"
rm -f "$DIR"/dpsim-*.whl "$DIR"/dpsim_dualpath-*.whl
# the checkout itself: pure wheel, built with the build requirements already installed here
# (build/lib first emptied: bdist_wheel packs whatever an earlier build left there, e.g. the
# top-level hw/ and calibration/ copies of a build from before issue #14)
rm -rf "$HERE/build/lib"
DPSIM_NO_EXT=1 "$PY" -m pip wheel --no-deps --no-build-isolation -w "$DIR" "$HERE" >/dev/null
# pinned dependencies as wheels (pure Python: py3-none-any), sdists built here
"$PY" -m pip wheel --no-deps -w "$DIR" -r "$HERE/calibration/offline-requirements.txt" >/dev/null
# the dpsim wheel's layout (issue #14): dpsim.hw and dpsim.calibration inside dpsim, nothing top-level
"$PY" - "$DIR" <<'EOF'
import glob, sys, zipfile
whl, = glob.glob(sys.argv[1] + "/dpsim_dualpath-*.whl")
names = zipfile.ZipFile(whl).namelist()
top = sorted({n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")})
assert top == ["dpsim"], f"{whl}: top-level entries {top}, expected only dpsim"
for need in ("dpsim/hw/__init__.py", "dpsim/calibration/__main__.py", "dpsim/calibration/profiles/h100_measured.yaml"):
    assert need in names, f"{whl}: no {need}"
assert not any(n.startswith("dpsim/calibration/reports/") for n in names), f"{whl}: holds calibration/reports"
EOF
ls -1 "$DIR"
