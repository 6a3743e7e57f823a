import hashlib

import numpy as np
import pandas as pd
import pydicom
import pytest

from anapart.synthetic.partition import LESION_CLASSES, SyntheticConfig, generate, plan_cohort
from support.common import TINY


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_cohort_is_real_dicom_with_expected_headers(tiny_cohort_master):
    files = sorted((tiny_cohort_master / "dicom").rglob("*.dcm"))
    assert len(files) == 8 * 6
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"  # MR Image Storage
    assert ds.BitsAllocated == 16 and ds.pixel_array.dtype == np.uint16
    for key in ("PixelSpacing", "SliceThickness", "RescaleSlope", "RescaleIntercept", "PatientName",
                "PatientBirthDate", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                "ImagePositionPatient", "ImageOrientationPatient"):
        assert key in ds, key
    assert (tiny_cohort_master / "masks").is_dir()
    assert len(list((tiny_cohort_master / "masks").rglob("region.nii.gz"))) == 8


def test_generation_is_deterministic(tiny_cohort_master, tmp_path):
    generate(tmp_path / "again", SyntheticConfig.from_dict(TINY))
    assert _digest(tmp_path / "again") == _digest(tiny_cohort_master)


def test_labels_cover_every_class_with_normal_slices_from_patients(tiny_cohort_master):
    labels = pd.read_csv(tiny_cohort_master / "labels.csv")
    assert set(labels["label"]) == set(LESION_CLASSES) | {"normal"}
    # tumour-free slices of lesion patients are labelled normal, as in the paper
    lesion_patients = labels.loc[labels["label"] != "normal", "patient_id"].unique()
    assert (labels[labels["patient_id"].isin(lesion_patients)]["label"] == "normal").any()


def test_classes_differ_in_lesion_features_but_overlap():
    cfg = SyntheticConfig(seed=1, patients={c: 60 for c in LESION_CLASSES})
    plans = [p for p in plan_cohort(cfg)]
    feats = pd.DataFrame([(p.cls, p.lesion["intensity"], p.lesion["r"], abs(p.lesion["cx"]), p.lesion["cy"])
                          for p in plans], columns=["cls", "intensity", "r", "lateral", "cy"])
    means = feats.groupby("cls").mean()
    assert means.loc["chordoma", "intensity"] > means.loc["lymphoma", "intensity"] + 0.2
    assert means.loc["NPC", "lateral"] > means.loc["LH", "lateral"] + 0.05
    assert means.loc["lymphoma", "r"] > means.loc["craniopharyngioma", "r"]
    # ...yet neighbouring classes overlap in intensity
    lo = feats.groupby("cls")["intensity"].agg(["min", "max"])
    assert lo.loc["NPC", "max"] > lo.loc["LH", "min"]
    assert lo.loc["LH", "max"] > lo.loc["NPC", "min"]


def test_distractors_are_label_independent():
    cfg = SyntheticConfig(seed=2, patients={"NPC": 150, "normal": 150})
    plans = plan_cohort(cfg)
    rate = {c: np.mean([len(p.distractors) for p in plans if p.cls == c]) for c in ("NPC", "normal")}
    assert abs(rate["NPC"] - rate["normal"]) < 0.35


def test_every_lesion_type_has_a_registered_texture():
    from anapart.synthetic.common import LESIONS, TEXTURES

    assert set(LESIONS) == set(LESION_CLASSES)
    assert {spec["texture"] for spec in LESIONS.values()} <= set(TEXTURES)


def test_slab_geometry_by_hand():
    """A 256-pixel matrix over 240 mm, 5 mm slices with 0.5 mm gaps: the masks' reference image
    starts at the lowest slice, its first pixel's centre half a pixel inside the field of view."""
    from anapart.synthetic.common import Slab

    s = Slab(256, 240.0, 5.0, 0.5, 10)
    assert s.spacing == 0.9375 and s.step == 5.5 and s.origin_xy == (-119.53125, -119.53125)
    ref = s.reference(z_top=12.0)
    assert ref.GetSize() == (256, 256, 10) and ref.GetSpacing() == (0.9375, 0.9375, 5.5)
    assert ref.GetOrigin() == pytest.approx((-119.53125, -119.53125, 12.0 - 9 * 5.5))


def test_the_demo_tnm_stage_is_a_noisy_reading_of_the_phantoms_extent():
    """A perfect reader gives the rule (IVa iff T4- or N3-like); a real one misses or over-calls each
    feature at its rates: P(IVa | T4 only) = 1 - (1 - 0.85)(1 - 0.1) = 0.865, P(IVa | neither) =
    1 - 0.9^2 = 0.19, by hand."""
    import numpy as np

    from anapart.synthetic.staging import tnm_reading

    perfect = {"sensitivity": 1.0, "false_positive_rate": 0.0}
    rng = np.random.default_rng(0)
    assert [tnm_reading(t4, n3, rng, perfect) for t4, n3 in ((0, 0), (1, 0), (0, 1), (1, 1))] == \
        ["III", "IVa", "IVa", "IVa"]
    reader = {"sensitivity": 0.85, "false_positive_rate": 0.1}
    rng = np.random.default_rng(1)
    t4_only = np.mean([tnm_reading(True, False, rng, reader) == "IVa" for _ in range(20000)])
    neither = np.mean([tnm_reading(False, False, rng, reader) == "IVa" for _ in range(20000)])
    assert abs(t4_only - 0.865) < 0.01 and abs(neither - 0.19) < 0.01
