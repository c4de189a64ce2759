"""Build hook: compiles with Cython (1) the event loop and the flow-level network
(dpsim/net/{links,maxmin,loop,network}.py, and heap.pyx: the typed twin of heap.py) and (2) the hot core (the modules listed in
``dpsim/_core.py``: lifecycle, engines, scheduler, routes).

(2) is compiled *in place*: each ``dpsim/<pkg>/<mod>.py``, typed by the augmenting ``.pxd``
beside it, becomes the extension ``dpsim.<pkg>.<mod>``, which the import system prefers over the
``.py``; a stamp extension ``dpsim._corehash`` records the hash of the sources it was built
from, and ``dpsim._core`` falls back to the ``.py`` files when it is stale, missing, or when
``DPSIM_PURE_PYTHON=1``.  A failure in (2) keeps (1).  The rest of this docstring is about (1).

The pure-Python modules stay the reference and are installed unchanged.  The same ``.py`` files,
typed by their augmenting ``.pxd`` files, are copied into ``build/cython_src/dpsim/net/_c/`` and
compiled into the extension modules ``dpsim.net._c.links`` / ``maxmin`` / ``loop`` / ``network``, so one
process can import both builds (``dpsim.net`` picks the compiled one unless
``DPSIM_PURE_PYTHON=1``).

``DPSIM_NO_EXT=1`` skips the extension; a missing Cython or a failing compiler only warns (once)
and installs the pure-Python package.  No -ffast-math / -march=native, and FP contraction off:
the compiled results are bit-identical to the pure path.
"""
from __future__ import annotations

import os
import sys

from setuptools import find_namespace_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join("dpsim", "net")
MODULES = ("links", "maxmin", "loop", "network")
# Hand-written Cython (a .pyx with its .pxd) whose pure-Python twin is the .py of the same name:
# the compiled network imports these from dpsim.net._c, the pure one from dpsim.net.
PYX_MODULES = ("heap",)
ARENA = "dpsim._hugearena"  # huge-page arenas for CPython's object allocator (one .pyx)
STAMP = "_srchash"  # a 4th tiny extension: the hash of the sources the build was made from
GEN_ROOT = os.path.join("build", "cython_src")
GEN_PKG = os.path.join(GEN_ROOT, "dpsim", "net", "_c")

_warned: set = set()
_NET = "installing the pure-Python network (dpsim.net works unchanged, only slower)"
_ARENA = "dpsim runs unchanged, its objects on ordinary pages (dpsim.hugepages)"


def _warn(msg: str, then: str = _NET) -> None:
    """Say it once per consequence: pip runs this file several times (metadata, then the
    build); only the build commands speak."""
    building = any(c in sys.argv for c in ("bdist_wheel", "editable_wheel", "build_ext", "build",
                                           "develop", "install"))
    if building and then not in _warned:
        _warned.add(then)
        sys.stderr.write(f"\n*** dpsim: {msg}; {then}.\n\n")


CFLAGS = ["-O2", "-ffp-contract=off"]  # no contraction: bit-identical to the pure path


def _write_if_changed(path: str, data: bytes) -> None:
    """Write only when the content differs, so rebuilds stay incremental."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            if f.read() == data:
                return
    with open(path, "wb") as f:
        f.write(data)


def _generate() -> list[str]:
    """Copy the reference sources and their .pxd into the generated package (only when
    changed, so rebuilds stay incremental)."""
    os.makedirs(GEN_PKG, exist_ok=True)
    for d in (os.path.join(GEN_ROOT, "dpsim"), os.path.join(GEN_ROOT, "dpsim", "net"), GEN_PKG):
        init = os.path.join(d, "__init__.py")
        if not os.path.exists(init):
            open(init, "w").close()
    out = []
    for m in PYX_MODULES:
        for ext in (".pyx", ".pxd"):
            with open(os.path.join(HERE, SRC, m + ext), "rb") as f:
                _write_if_changed(os.path.join(GEN_PKG, m + ext), f.read())
        out.append(os.path.join(GEN_PKG, m + ".pyx"))
    for m in MODULES:
        for ext in (".py", ".pxd"):
            with open(os.path.join(HERE, SRC, m + ext), "rb") as f:
                _write_if_changed(os.path.join(GEN_PKG, m + ext), f.read())
        out.append(os.path.join(GEN_PKG, m + ".py"))
    # dpsim.net compares this with the sources it imports, so a stale build (an editable
    # checkout whose .py changed since) falls back to pure Python instead of diverging.
    sys.path.insert(0, os.path.join(HERE, SRC))
    try:
        from _srchash_calc import source_hash
    finally:
        sys.path.pop(0)
    stamp = os.path.join(GEN_PKG, STAMP + ".py")
    _write_if_changed(stamp, f"SOURCE_HASH = {source_hash(os.path.join(HERE, SRC))!r}\n".encode())
    out.append(stamp)
    return out


def _core_module():
    """dpsim/_core.py loaded on its own (CORE, source_hash), without importing dpsim."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_dpsim_core_build", os.path.join(HERE, "dpsim", "_core.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _core_extensions(Extension) -> list:
    core = _core_module()
    stamp = os.path.join(GEN_ROOT, "dpsim", "_corehash.py")
    os.makedirs(os.path.dirname(stamp), exist_ok=True)
    _write_if_changed(stamp, f"SOURCE_HASH = {core.source_hash(HERE)!r}\n".encode())
    exts = [Extension(name, [os.path.relpath(core.source_path(name, HERE), HERE)], extra_compile_args=CFLAGS)
            for name in core.CORE]
    exts.append(Extension("dpsim._corehash", [stamp], extra_compile_args=CFLAGS))
    return exts


CORE_NAMES: tuple = ()
_OPTS = dict(quiet=True, compiler_directives={"language_level": 3, "annotation_typing": False,
                                              "embedsignature": True})


def _extensions():
    global CORE_NAMES
    if os.environ.get("DPSIM_NO_EXT", "") not in ("", "0"):
        _warn("DPSIM_NO_EXT is set, skipping the Cython extension")
        return []
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError:
        _warn("Cython is not available, skipping the Cython extension")
        return []
    try:
        sources = _generate()
        exts = [Extension(f"dpsim.net._c.{m}", [s], extra_compile_args=CFLAGS)
                for m, s in zip(PYX_MODULES + MODULES + (STAMP,), sources)]
        out = cythonize(exts, include_path=[GEN_ROOT], **_OPTS)
    except Exception as e:  # noqa: BLE001 - any Cython failure falls back to pure Python
        _warn(f"Cython could not translate dpsim/net ({type(e).__name__}: {e})")
        return []
    try:  # the core separately: a failure there keeps the compiled network
        core = _core_extensions(Extension)
        CORE_NAMES = tuple(e.name for e in core)
        # GEN_ROOT: the core cimports the compiled network's types (dpsim.net._c.*)
        out += cythonize(core, include_path=[HERE, GEN_ROOT], **_OPTS)
    except Exception as e:  # noqa: BLE001
        _warn(f"Cython could not translate the core ({type(e).__name__}: {e}); it stays pure Python")
    try:  # huge-page arenas (Linux): optional, changes no result; without it dpsim just runs
        out += cythonize([Extension(ARENA, [os.path.join("dpsim", "_hugearena.pyx")],
                                    extra_compile_args=CFLAGS)], **_OPTS)
    except Exception as e:  # noqa: BLE001
        _warn(f"Cython could not translate {ARENA} ({type(e).__name__}: {e})", _ARENA)
    return out


class OptionalBuildExt(build_ext):
    """build_ext that falls back to the pure-Python package when compilation fails."""

    def run(self):
        try:
            super().run()
        except Exception as e:  # noqa: BLE001
            _warn(f"building the Cython extension failed ({type(e).__name__}: {e})")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001
            _warn(f"compiling {ext.name} failed ({type(e).__name__}: {e})", _ARENA if ext.name == ARENA else _NET)
            # Leave no partial set behind: dpsim.net needs all its modules or none; so does the
            # core (without its stamp, dpsim._core imports the sources).
            names = ([f"dpsim.net._c.{m}" for m in PYX_MODULES + MODULES + (STAMP,)] if ext.name.startswith("dpsim.net.")
                     else [ARENA] if ext.name == ARENA else list(CORE_NAMES))
            for name in names:
                for d in (self.build_lib, HERE):
                    p = os.path.join(d, self.get_ext_filename(name))
                    if os.path.exists(p):
                        os.remove(p)


# Packages (issue #14): the simulator ``dpsim`` (with its config and data folders, which have no
# __init__.py) and the hardware tools, installed under the dpsim namespace from the top-level
# folders where they live in the checkout: hw/ -> dpsim.hw, calibration/ -> dpsim.calibration (no
# top-level ``hw`` or ``calibration`` in site-packages).  calibration/profiles/*.yaml ship as package
# data (pyproject.toml); calibration/reports/ (measured data, ~20 MB) does not.
PACKAGE_DIR = {"dpsim.hw": "hw", "dpsim.calibration": "calibration"}
PACKAGES = find_namespace_packages(include=["dpsim", "dpsim.*"]) + list(PACKAGE_DIR)

setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt},
      packages=PACKAGES, package_dir=PACKAGE_DIR)
