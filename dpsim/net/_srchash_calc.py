"""Hash of the sources the compiled network is generated from (used by setup.py at build time
and by dpsim.net at import, to refuse a stale compiled build)."""
from __future__ import annotations

import hashlib
import os

# The .py files (what a wheel installs next to the extension; the .pxd typing is covered by the
# tests that compare both builds) and the hand-written heap.pyx/.pxd (no .py of it is compiled).
SOURCES = ("links.py", "maxmin.py", "loop.py", "network.py", "heap.py", "heap.pyx", "heap.pxd")


def source_hash(directory: str) -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        with open(os.path.join(directory, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()
