"""The configuration contract: every schema section rejects unknown keys, and every key the shipped
configs set is read by the code (a key nothing reads is a setting a user changes in vain)."""

import ast
import copy
import re

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from support.common import REPO

SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
CONFIGS = ("config/config.yaml", "config/paper.yaml")


def load(*names) -> dict:
    """The configs merged as Snakemake merges --configfile options (nested keys)."""
    cfg: dict = {}
    for name in names:
        update_config(cfg, yaml.safe_load((REPO / name).read_text()))
    return cfg


def resolve(node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].split("/")[-1]]
    return node


def sections(cfg: dict, node: dict, path=()):
    """Every (path, value) of ``cfg`` whose schema node is an object with named properties (a section,
    as opposed to a map such as classify.target_layers or synthetic.patients)."""
    node = resolve(node)
    yield path, cfg
    for key, value in cfg.items():
        sub = resolve((node.get("properties") or {}).get(key, {}))
        if isinstance(value, dict) and "properties" in sub:
            yield from sections(value, sub, path + (key,))


def leaf_keys(cfg: dict, node: dict, path=()):
    """Dotted paths of the values ``cfg`` sets: keys whose schema node is not a section."""
    node = resolve(node)
    for key, value in cfg.items():
        sub = resolve((node.get("properties") or {}).get(key, {}))
        if isinstance(value, dict) and "properties" in sub:
            yield from leaf_keys(value, sub, path + (key,))
        else:
            yield path + (key,)


def demo_sections():
    cfg = load(CONFIGS[0])
    return [p for p, _ in sections(cfg, SCHEMA)]


@pytest.mark.parametrize("path", demo_sections(), ids=lambda p: ".".join(p) or "<top level>")
def test_a_misspelt_key_in_any_section_fails_validation_naming_the_key(path):
    cfg = load(CONFIGS[0])
    validate(copy.deepcopy(cfg), str(SCHEMA_PATH))  # the demo config itself is valid
    section = cfg
    for key in path:
        section = section[key]
    typo = next(iter(section)) + "_typo"  # e.g. "seed_typo", "n_boot_typo"
    section[typo] = 1
    with pytest.raises(WorkflowError, match=re.escape(f"'{typo}' was unexpected")):
        validate(cfg, str(SCHEMA_PATH))


def test_every_section_of_the_schema_rejects_unknown_keys():
    """Each object with named properties says additionalProperties: false (checked in the schema, so
    a section the demo config does not set, e.g. an external cohort's, is covered too)."""
    loose = []

    def walk(node, where):
        node = resolve(node)
        if not isinstance(node, dict):
            return
        if "properties" in node and node.get("additionalProperties") is not False:
            loose.append(where or "<top level>")
        for key, sub in (node.get("properties") or {}).items():
            walk(sub, f"{where}.{key}".lstrip("."))
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{where}.*")

    walk(SCHEMA, "")
    assert loose == []


def _code_strings() -> set[str]:
    """Every string literal of the package, the scripts and the rule files (comments excluded)."""
    found: set[str] = set()
    for path in [*(REPO / "src" / "anapart").rglob("*.py"), *(REPO / "workflow" / "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    for path in [REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]:
        for line in path.read_text().splitlines():
            code = line.split("#", 1)[0]
            found |= set(re.findall(r"""["']([A-Za-z_][A-Za-z0-9_]*)["']""", code))
    return found


def _config_dataclass_fields() -> set[str]:
    """Fields of the package's dataclasses that are built from a config section (``from_dict`` /
    ``from_config``, e.g. the synthetic cohort's): such a section's keys are read as fields."""
    fields: set[str] = set()
    for path in (REPO / "src" / "anapart").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            methods = {m.name for m in node.body if isinstance(m, ast.FunctionDef)}
            if methods & {"from_dict", "from_config"}:
                fields |= {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)
                           and isinstance(s.target, ast.Name)}
    return fields


def unread_keys(cfg: dict) -> list[str]:
    """Leaf keys of ``cfg`` that no code reads: neither a string literal in the code (cfg["key"],
    a key list, a rule's config lookup) nor a field of a dataclass built from config."""
    read = _code_strings() | _config_dataclass_fields()
    return [".".join(p) for p in leaf_keys(cfg, SCHEMA) if p[-1] not in read]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_key_of_the_shipped_configs_is_read_by_the_code(name):
    cfg = yaml.safe_load((REPO / name).read_text())
    assert unread_keys(cfg) == []


def test_an_unread_key_is_found():
    cfg = load(CONFIGS[0])
    cfg["classify"]["momentum_of_nothing"] = 0.9
    cfg["synthetic"]["not_a_field"] = 1
    assert unread_keys(cfg) == ["synthetic.not_a_field", "classify.momentum_of_nothing"]
