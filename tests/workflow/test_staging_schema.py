"""The ``staging`` section of the config schema: a misspelt key anywhere in it is an error that
names the key, and the defaults the code relies on are filled in by validation."""

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[2]
SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")
DEMO = yaml.safe_load((REPO / "config/config.yaml").read_text())


def object_paths(schema: dict, path=()) -> list[tuple[str, ...]]:
    """Every fixed-key object of a schema (those with ``properties``), as key paths."""
    out = [path] if "properties" in schema else []
    for k, sub in schema.get("properties", {}).items():
        out += object_paths(sub, path + (k,))
    return out


STAGING = yaml.safe_load(Path(SCHEMA).read_text())["properties"]["staging"]
PATHS = object_paths(STAGING)


def test_every_staging_object_is_closed():
    assert len(PATHS) >= 12  # staging, cohort, synthetic, split, patches, clahe, train, its schedule/augment, ...
    open_ = [".".join(("staging",) + p) for p in PATHS if _at(STAGING, p).get("additionalProperties") is not False]
    assert not open_, f"schema objects that accept unknown keys: {open_}"


def _at(schema, path):
    for k in path:
        schema = schema["properties"][k]
    return schema


@pytest.mark.parametrize("path", PATHS, ids=[".".join(("staging",) + p) for p in PATHS])
def test_a_misspelt_key_is_rejected_by_name(path):
    cfg = copy.deepcopy(DEMO)
    node = cfg["staging"]
    for k in path:
        node = node.setdefault(k, {})
    node["epochz"] = 1
    with pytest.raises(WorkflowError, match=r"'epochz' was unexpected"):
        validate(cfg, SCHEMA)


def test_validation_fills_in_the_defaults_the_code_reads():
    cfg = copy.deepcopy(DEMO)
    for k in ("radiomics", "cam", "basic_cnn"):
        del cfg["staging"][k]
    for k in ("hidden", "dropout", "schedule", "preload_mb", "normalize", "augment", "pretrained", "freeze_backbone"):
        cfg["staging"]["train"].pop(k, None)
    del cfg["staging"]["patches"]["intensity_percentiles"]
    validate(cfg, SCHEMA)
    s = cfg["staging"]
    assert s["radiomics"]["classifier"] == "logistic" and s["radiomics"]["cv_folds"] == 5 and s["cam"]["threshold"] == 0.5
    assert s["basic_cnn"] == {"enabled": True, "channels": [32, 64, 128], "hidden": 128, "dropout": 0.5}
    assert s["train"]["schedule"] == {"type": "none"} and s["train"]["augment"] == {} and not s["train"]["pretrained"]
    assert s["patches"]["intensity_percentiles"] == [0.5, 99.5]


def test_schema_names_are_the_registries():
    """The enums the schema checks are the registries' names: a new optimiser, schedule or
    radiomics classifier is usable from the config once it is registered and listed."""
    from anapart.learn.training import OPTIMIZERS, SCHEDULERS
    from anapart.staging.radiomics import CLASSIFIERS

    train = STAGING["properties"]["train"]["properties"]
    assert set(train["optimizer"]["enum"]) == set(OPTIMIZERS)
    for section in ("train", "basic_cnn"):
        assert set(STAGING["properties"][section]["properties"]["schedule"]["properties"]["type"]["enum"]) == set(SCHEDULERS)
    assert set(STAGING["properties"]["radiomics"]["properties"]["classifier"]["enum"]) == set(CLASSIFIERS)


def test_staging_synthetic_fields_are_the_schemas():
    """Every generator setting can be written in the config and nothing else can."""
    import dataclasses

    from anapart.synthetic.staging import StagingSyntheticConfig

    fields = {f.name for f in dataclasses.fields(StagingSyntheticConfig)}
    assert set(STAGING["properties"]["synthetic"]["properties"]) == fields
    with pytest.raises(ValueError, match=r"staging.synthetic: unknown key\(s\) \['seeds'\]"):
        StagingSyntheticConfig.from_dict({"seeds": 3})
