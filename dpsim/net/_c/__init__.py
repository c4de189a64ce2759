"""Compiled (Cython) builds of ``dpsim.net.links`` / ``maxmin`` / ``network``.

setup.py generates the extension modules here from the very same ``.py`` sources (typed by the
augmenting ``.pxd`` files next to them); this package holds no Python copy of them, so importing
``dpsim.net._c.network`` fails unless the extension was built.  ``dpsim.net`` picks one."""
