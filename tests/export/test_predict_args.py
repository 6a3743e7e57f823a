"""``anapart predict`` refuses, before reading a package or a cohort, what would put an identifier or
a secret where it must not be: a private folder inside the shareable one, a salt on the command line,
an output folder that already holds files."""

import pytest

from anapart.export.predict import Cohort, main, predict_cohort, read_cohort
from anapart.io.errors import IngestError


def test_the_private_folder_must_lie_outside_the_shareable_output(tmp_path):
    with pytest.raises(IngestError, match="must lie outside the shareable output"):
        predict_cohort(None, Cohort("dicom", tmp_path), tmp_path / "out", salt="env:S",
                       private_dir=tmp_path / "out" / "private")
    assert not (tmp_path / "out").exists()


def test_an_output_folder_with_files_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.csv").write_text("x")
    with pytest.raises(IngestError, match="exists and is not empty"):
        predict_cohort(None, Cohort("dicom", tmp_path), tmp_path / "out", salt="env:S")


def test_a_salt_typed_on_the_command_line_is_refused_in_one_line(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "model.zip"), "--dicom", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--salt", "my-secret"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("anapart: error: --salt takes env:VAR or file:PATH") and "\n" not in err
    assert "my-secret" not in err and not (tmp_path / "o").exists()


def test_a_cohort_file_resolves_paths_beside_itself_and_rejects_unknown_keys(tmp_path):
    (tmp_path / "c.yaml").write_text("source: nifti\nnifti_dir: imgs\nlabels: l.csv\nseries: {description: T2, "
                                     "orientation: axial, min_slices: 3}\n")
    c = read_cohort(tmp_path / "c.yaml")
    assert (c.source, c.folder, c.labels) == ("nifti", tmp_path / "imgs", tmp_path / "l.csv")
    assert c.overrides == {"series": {"description": "T2", "orientation": "axial", "min_slices": 3}}
    (tmp_path / "d.yaml").write_text("dicom_dir: x\nfield: 512\n")
    with pytest.raises(IngestError, match=r"unknown key\(s\) \['field'\]"):
        read_cohort(tmp_path / "d.yaml")
