"""The external test cohort: the synthetic second site, its pseudonyms, the overlap check, its crops."""

import numpy as np
import pandas as pd
import pydicom
import pytest
import yaml

from anapart import CLASSES
from anapart.cohort.preflight import check_cohort
from anapart.cohort.pseudonyms import EXTERNAL_PREFIX, pseudonym
from anapart.cohort.split import split_patients
from anapart.io.store import load_store
from anapart.partition.crop import crop_size, make_crops, prior_center, window
from anapart.synthetic.partition import SyntheticConfig, generate, plan_cohort
from support.common import REPO, TINY, percentiles, series_rule, store_paths

SIZES = {"seg112": 112, "seg224": 224}


def _site(**kw) -> SyntheticConfig:
    return SyntheticConfig.from_dict({**TINY, **kw})


def test_external_site_is_another_scanner_with_the_same_diseases(tmp_path):
    """The demo's configured external site merged over the main settings, as common_partition.smk does."""
    demo = yaml.safe_load((REPO / "config/config.yaml").read_text())
    main_cfg = SyntheticConfig.from_dict(demo["synthetic"])
    ext_cfg = SyntheticConfig.from_dict({**demo["synthetic"], **demo["synthetic_external"]})
    assert set(ext_cfg.patients) == set(main_cfg.patients)  # same diseases
    share = {c: ext_cfg.patients[c] / sum(ext_cfg.patients.values()) for c in ext_cfg.patients}
    main_share = {c: main_cfg.patients[c] / sum(main_cfg.patients.values()) for c in main_cfg.patients}
    assert all(abs(share[c] - main_share[c]) < 0.05 for c in share)  # same class mix
    assert 0.25 < sum(ext_cfg.patients.values()) / sum(main_cfg.patients.values()) < 0.4  # about a third
    for key in ("bias_strength", "noise_sigma", "contrast_gamma", "matrix", "slice_thickness_mm", "scanner",
                "study_dates", "id_prefix"):
        assert getattr(ext_cfg, key) != getattr(main_cfg, key), key
    # written as DICOM: the scanner, date and geometry of the external site
    small = SyntheticConfig.from_dict({**demo["synthetic"], **demo["synthetic_external"],
                                       "patients": {"NPC": 1, "normal": 1}, "slices_per_patient": 3, "matrix": 48})
    generate(tmp_path / "ext", small)
    files = sorted((tmp_path / "ext/dicom").rglob("*.dcm"))
    ds = pydicom.dcmread(files[0])
    assert ds.PatientID.startswith("EXT") and ds.Manufacturer == small.scanner["manufacturer"]
    assert float(ds.MagneticFieldStrength) == small.scanner["field_strength"]
    assert float(ds.SliceThickness) == small.slice_thickness_mm and ds.Rows == 48
    assert small.study_dates[0].replace("-", "") <= ds.StudyDate <= small.study_dates[1].replace("-", "")
    assert not {p.pid for p in plan_cohort(small)} & {p.pid for p in plan_cohort(main_cfg)}


def test_contrast_gamma_changes_the_images_not_the_anatomy(tmp_path):
    generate(tmp_path / "a", _site())
    generate(tmp_path / "b", _site(contrast_gamma=0.7))
    la, lb = (pd.read_csv(tmp_path / d / "labels.csv") for d in ("a", "b"))
    pd.testing.assert_frame_equal(la, lb)  # same patients, slices and labels
    fa = sorted((tmp_path / "a/dicom").rglob("*.dcm"))
    fb = sorted((tmp_path / "b/dicom").rglob("*.dcm"))
    a = np.stack([pydicom.dcmread(f).pixel_array.astype(float) for f in fa])
    b = np.stack([pydicom.dcmread(f).pixel_array.astype(float) for f in fb])
    # intensity ** 0.7 brightens mid-grey tissue (values in (0, 1)): the stored values rise
    assert b.mean() > a.mean() * 1.05


def test_study_dates_lie_in_the_period_and_need_an_ordered_period(tmp_path):
    generate(tmp_path / "c", _site(study_dates=["2018-03-01", "2018-04-30"]))
    dates = {pydicom.dcmread(f).StudyDate for f in (tmp_path / "c/dicom").rglob("*.dcm")}
    assert dates and all("20180301" <= d <= "20180430" for d in dates) and len(dates) > 1
    with pytest.raises(ValueError, match="before"):
        generate(tmp_path / "d", _site(study_dates=["2019-01-01", "2018-01-01"]))
    assert not (tmp_path / "d").exists()


def test_external_pseudonyms_never_equal_the_main_ones_and_overlap_is_a_problem(cohort):
    labels = cohort / "labels.csv"
    main = check_cohort(cohort / "dicom", labels, cohort / "masks", classes=CLASSES, salt="s", series=series_rule())
    ext = check_cohort(cohort / "dicom", labels, cohort / "masks", classes=CLASSES, salt="s", series=series_rule(),
                       prefix=EXTERNAL_PREFIX)
    assert all(p.startswith("P") for p in main.table["patient"])
    assert all(p.startswith("E") for p in ext.table["patient"])
    assert not set(main.table["patient"]) & set(ext.table["patient"])
    assert pseudonym("X", "s", EXTERNAL_PREFIX)[1:] == pseudonym("X", "s")[1:]  # only the prefix differs
    assert main.summary["study_period"] == ["2020-01", "2020-01"]  # the generator's default date
    assert main.summary["scanners"] == {"anapart synthetic MR 3 T": len(main.plans)}
    # the same patients as an "external" cohort of themselves: every one is refused, by file
    pid = main.plans[0].patient_id
    again = check_cohort(cohort / "dicom", labels, cohort / "masks", classes=CLASSES, salt="s", series=series_rule(),
                         prefix=EXTERNAL_PREFIX, exclude={pid: "PatientID is also in the main cohort"})
    hits = [p for p in again.problems if p.kind == "patient_in_other_cohort"]
    assert len(hits) == 1 and str(cohort / "dicom") in hits[0].text and "main cohort" in hits[0].text
    assert pid not in {p.patient_id for p in again.plans}
    row = again.table.set_index("patient").loc[pseudonym(pid, "s", EXTERNAL_PREFIX)]
    assert row["problems"] == 1 and row["problem_kinds"] == "patient_in_other_cohort"


def test_external_crops_fall_back_to_the_main_training_prior(cohort, tmp_path):
    from anapart.cohort.preflight import ingest

    main_dir, ext_dir = tmp_path / "main", tmp_path / "ext"
    ingest(cohort / "dicom", cohort / "labels.csv", cohort / "masks", store_paths(main_dir), classes=CLASSES,
           field=32, salt="s", series=series_rule(), percentiles=percentiles())
    ext_data = tmp_path / "extdata"
    generate(ext_data, _site(seed=12, id_prefix="EXT", matrix=40))
    ingest(ext_data / "dicom", ext_data / "labels.csv", ext_data / "masks", store_paths(ext_dir), classes=CLASSES,
           field=32, salt="s", series=series_rule(), prefix=EXTERNAL_PREFIX, percentiles=percentiles())
    manifest, _, masks = load_store(main_dir)
    patients = split_patients(manifest, 0.25, seed=0, classes=CLASSES)
    patients.to_csv(tmp_path / "patients.csv", index=False)
    ext_manifest = pd.read_csv(ext_dir / "manifest.csv")
    assert ext_manifest["slice_id"].str.startswith("E").all()
    formats = ["full", "seg112"]
    outs = {f: {"images": tmp_path / "crops" / f / "images.npy", "index": tmp_path / "crops" / f / "index.csv"}
            for f in formats}
    predicted = [(None, 0)] * len(ext_manifest)  # the segmentation model found nothing anywhere
    qc = make_crops(ext_dir, tmp_path / "patients.csv", predicted, outs, tmp_path / "qc.csv", formats=formats,
                    sizes=SIZES, training_cohort=main_dir)
    prior = prior_center(manifest, masks, patients, 32)
    assert prior != (15.5, 15.5)  # the main cohort's training regions, not the slice centre
    idx = pd.read_csv(tmp_path / "crops/seg112/index.csv")
    assert set(zip(idx["y0"], idx["x0"])) == {window(prior, crop_size("seg112", 32, SIZES))}
    assert set(qc["split"]) == {"external"} and qc["fallback"].all()
    # without the main store the external slices would have no training patient: the slice centre
    make_crops(ext_dir, tmp_path / "patients.csv", predicted, outs, tmp_path / "qc.csv", formats=formats, sizes=SIZES)
    idx2 = pd.read_csv(tmp_path / "crops/seg112/index.csv")
    assert set(zip(idx2["y0"], idx2["x0"])) == {window((15.5, 15.5), crop_size("seg112", 32, SIZES))}
