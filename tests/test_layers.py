"""The package's layering (tests/support/layers.py): imports only go down, the two studies never
import each other, no cycle, no private name of another module, no hidden function-level import,
no module past 400 lines. Checked on the real package, and shown to fail on a copy with one
planted violation of each kind."""

import shutil

import pytest

from support.common import REPO
from support.layers import LAYERS, imports, longest_chain, violations

PACKAGE = REPO / "src" / "anapart"


def test_the_package_keeps_its_layers():
    assert violations(PACKAGE) == []


def test_every_subpackage_is_a_layer_and_every_layer_exists():
    subs = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert subs == {k for k in LAYERS if k}


def test_the_reader_sees_nested_and_relative_imports():
    found = imports(PACKAGE)
    assert len(found) > 80
    assert any(i.source == "anapart.runtime.server" and i.target == "anapart.runtime.server" for i in found)
    assert all(not i.nested for i in found)  # the package has no function-level import of itself


@pytest.fixture
def planted(tmp_path):
    """A copy of the package to plant one violation in."""
    root = tmp_path / "anapart"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    assert violations(root) == []

    def plant(module: str, line: str, *, at_top: bool = True) -> list[str]:
        path = root / (module.replace(".", "/") + ".py")
        text = path.read_text()
        if at_top:  # after the module docstring and `from __future__`, as a real import would sit
            marker = "from __future__ import annotations\n"
            text = text.replace(marker, marker + line + "\n", 1) if marker in text else line + "\n" + text
        else:
            text += "\n\n" + line + "\n"
        path.write_text(text)
        return violations(root)

    return plant


def test_an_upward_import_fails(planted):
    found = planted("io.store", "from anapart.cohort.split import split_patients")
    assert len(found) == 1 and "imports only go down" in found[0] and "anapart.io.store" in found[0], found


def test_a_sideways_import_between_equal_layers_fails(planted):
    found = planted("metrics.evaluate", "from anapart.learn import training")
    assert any("imports only go down" in f for f in found), found


def test_a_cross_study_import_fails(planted):
    found = planted("staging.ensemble", "from anapart.partition.crop import centroid")
    assert any("study staging imports study partition" in f for f in found), found


def test_a_cycle_fails(planted):
    found = planted("io.files", "from anapart.io import store")
    assert any(f.startswith("import cycle:") and "anapart.io.files" in f and "anapart.io.store" in f
               for f in found), found


def test_a_private_name_of_another_module_fails(planted):
    found = planted("synthetic.staging", "from anapart.synthetic.common import _private_helper")
    assert any("private name" in f and "_private_helper" in f for f in found), found


def test_a_function_level_import_fails_unless_it_says_why(planted):
    found = planted("metrics.stats", "def f():\n    from anapart.metrics import evaluate\n    return evaluate",
                    at_top=False)
    assert any("import inside a function" in f for f in found), found


def test_a_justified_function_level_import_passes(planted):
    found = planted("partition.cam", "def f():\n    from anapart.learn import gradcam  # nested import: test\n"
                    "    return gradcam", at_top=False)
    assert found == []


def test_a_long_module_fails(planted):
    found = planted("io.windows", "\n".join(f"X{i} = {i}" for i in range(400)), at_top=False)
    assert any("anapart.io.windows" in f and "lines" in f for f in found), found


def test_a_module_outside_the_layers_fails(planted, tmp_path):
    (tmp_path / "anapart" / "loose.py").write_text('"""A module at the top level."""\n')
    found = violations(tmp_path / "anapart")
    assert any("anapart.loose: not in a layer" in f for f in found), found


def test_the_longest_import_chain_is_reported():
    chain = longest_chain(PACKAGE)
    assert chain[-1].startswith("anapart.io.")  # it ends at the bottom layer
    assert len(chain) <= 8  # was 9 (radiomics -> ... -> dicom_io) before the layering; 7 after, 8 with NIfTI
