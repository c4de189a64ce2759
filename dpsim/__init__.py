"""dpsim: discrete-event simulator of DualPath (arXiv 2602.21548)."""
__version__ = "0.1.0"
