"""dpsim's Hydra config (YAML groups) and their typed schemas (:mod:`dpsim.conf.schema`), which
are registered in Hydra's ConfigStore when this package is imported (Hydra imports it to read
the YAML files)."""
from .schema import register as _register

_register()
