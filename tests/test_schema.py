"""Issue #14 item 4: typed schemas (dpsim/conf/schema.py) for every config group, registered in
Hydra's ConfigStore; the YAML holds every value, the schema types and ranges only."""
import dataclasses
from pathlib import Path

import pytest
from helpers import make_cfg
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from dpsim.conf import schema as S
from dpsim.config import ConfigError, validate

CONF = Path(S.__file__).parent


def _all_fields(cls):
    for f in dataclasses.fields(cls):
        yield cls, f
        tp, _ = S._unopt(__import__("typing").get_type_hints(cls)[f.name])
        if dataclasses.is_dataclass(tp):
            yield from _all_fields(tp)


def test_every_group_has_a_registered_schema():
    repo = ConfigStore.instance().repo
    assert "dpsim_schema.yaml" in repo
    groups = {p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("hydra", "search", "__pycache__")}
    top = {"metrics", "paths", "limits", "output"}  # groups of keys set in config.yaml itself
    assert groups | top <= set(S.GROUPS) | {"figure"}
    for g in S.GROUPS:
        assert f"{g}.yaml" in repo["schema"], g


def test_schemas_hold_no_values():
    """Defaults live in the YAML: a field is MISSING (the YAML supplies it) or None (an optional key)."""
    for cls, f in _all_fields(S.DpsimSchema):
        assert f.default in (MISSING, None), (cls.__name__, f.name, f.default)


@pytest.mark.parametrize("group", ["cluster", "model", "gpu", "system", "workload", "experiment"])
def test_every_packaged_option_matches_its_schema(group):
    for p in sorted((CONF / group).glob("*.yaml")):
        if p.stem.startswith("_"):
            continue
        cfg = make_cfg(f"{group}={p.stem}", *(["workload.aps=1.0"] if group == "workload" else []))
        S.check(S.DpsimSchema, cfg)  # raises naming the key if a YAML value breaks its schema


@pytest.mark.parametrize("override,msg", [
    ("cluster.cnic_efficiency=1.5", "cluster.cnic_efficiency=1.5: must be <= 1.0"),
    ("cluster.snic_Bps=0", "cluster.snic_Bps=0: must be > 0; bandwidths are bytes/s"),
    ("system.block_size=0", "system.block_size=0: must be >= 1"),
    ("system.read_path=sideways", "system.read_path='sideways': is not one of"),
    ("model.n_layers=0", "model.n_layers=0: must be >= 1"),
    ("limits.memory_bytes=-1", "limits.memory_bytes=-1: must be > 0; bytes, or null"),
    ("+cluster.nokey=1", "cluster.nokey=1: unknown key"),
])
def test_ranges_name_the_key_and_the_fix(override, msg):
    with pytest.raises(ConfigError) as ei:
        validate(make_cfg(override))
    assert str(ei.value).startswith(msg), str(ei.value)


def test_types_are_checked_at_composition_with_the_key():
    from hydra.errors import ConfigCompositionException

    from dpsim.cli import _one_line
    for ov, line in (("output.plots=maybe", "output.plots=maybe: must be true or false"),
                     ("workload.agents=2.5", "workload.agents=2.5: must be an integer or null >= 1"),
                     ("cluster.prefill_nodes=x", "cluster.prefill_nodes=x: must be an integer >= 1; a P/D")):
        with pytest.raises(ConfigCompositionException) as ei:
            make_cfg(ov)
        assert _one_line(ei.value).startswith(line), _one_line(ei.value)


def test_numbers_keep_their_yaml_type():
    """An int stays an int (outputs echo config values: experiment.max_sim_s=1 prints 1)."""
    cfg = make_cfg("experiment.max_sim_s=1")
    assert type(cfg["experiment"]["max_sim_s"]) is int and type(cfg["cluster"]["cnic_Bps"]) is float


def test_online_needs_its_keys():
    cfg = make_cfg("experiment=online")
    cfg["experiment"]["slo_ttft_s"] = None
    with pytest.raises(ConfigError, match=r"experiment.slo_ttft_s is not set but experiment.mode=online"):
        validate(cfg)
    with pytest.raises(ConfigError, match=r"workload.aps=None must be a number; set workload.aps"):
        validate(make_cfg("experiment.mode=online", "experiment.name=on"))
