"""python -m dpsim ... == dpsim ..."""
import sys

from .cli import entry

sys.exit(entry())
