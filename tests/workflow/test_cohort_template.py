"""A researcher's own cohort (config/cohort-template.yaml) plans study A's single split only: no
phantom study B beside real data unless asked for by name, no replicates, no weight download."""

from pathlib import Path

import pytest
import yaml

from support.common import REPO, run_offline
from support.workflow import snakemake_cmd, workflow_copy


def _own_cohort(tmp_path: Path, **staging) -> Path:
    cfg = yaml.safe_load((REPO / "config/cohort-template.yaml").read_text())
    (tmp_path / "dicom").mkdir()
    (tmp_path / "labels.csv").write_text("patient_id,label,instance\n")
    cfg["cohort"].update(dicom_dir=str(tmp_path / "dicom"), labels=str(tmp_path / "labels.csv"),
                         pseudonym_salt="a-site-salt")
    cfg["classes"] = ["NPC", "LH", "lymphoma", "chordoma", "craniopharyngioma", "normal"]
    cfg["staging"].update(staging)
    path = tmp_path / "my-cohort.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _planned(tmp_path: Path, cfg: Path) -> str:
    wd = workflow_copy(tmp_path / "wf")
    proc = run_offline(snakemake_cmd("-n", extra_config=cfg), cwd=wd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_own_cohort_plans_no_synthetic_study_b_no_replicates(tmp_path):
    plan = _planned(tmp_path, _own_cohort(tmp_path))
    assert "rule ingest" in plan or "ingest " in plan  # study A on the user's folder is planned
    for rule in ("staging_synthetic", "synthetic_cohort", "staging_train", "replicate_"):
        assert rule not in plan, rule


def test_study_b_phantom_runs_beside_real_data_only_when_asked_by_name(tmp_path):
    plan = _planned(tmp_path, _own_cohort(tmp_path, enabled=True))
    assert "staging_synthetic" in plan


@pytest.mark.parametrize("enabled", ["auto", True])
def test_schema_takes_auto_and_booleans(enabled):
    import jsonschema

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    prop = schema["properties"]["staging"]["properties"]["enabled"]
    jsonschema.validate(enabled, prop)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("yes", prop)
