"""Moved to :mod:`dpsim.lifecycle.request` (core v2); kept as an alias."""
from ..lifecycle.request import Agent, Request  # noqa: F401
from ..lifecycle.stage import STAGES  # noqa: F401
