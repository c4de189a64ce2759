"""Hash of the sources the compiled network is generated from (used by setup.py at build time
and by dpsim.net at import, to refuse a stale compiled build)."""
from __future__ import annotations

import hashlib
import os

# The .py files with the .pxd files that type them (an edit to either changes what is compiled;
# both ship with the package) and the hand-written heap.pyx/.pxd.
SOURCES = ("links.py", "maxmin.py", "loop.py", "network.py", "heap.py", "heap.pyx", "heap.pxd",
           "links.pxd", "maxmin.pxd", "loop.pxd", "network.pxd")


def source_hash(directory: str) -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        with open(os.path.join(directory, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()
