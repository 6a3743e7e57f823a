"""NIfTI cohorts (anapart.io.nifti): the same store as the DICOM series they were converted from, in
either orientation a converter writes, and every problem of a cohort named at once."""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from anapart import CLASSES
from anapart.cohort.preflight import check_cohort, ingest
from anapart.io import dicom, dicom_scan
from anapart.io.errors import IngestError
from anapart.io.nifti import Layout, canonical, scan
from anapart.io.store import load_store
from support.common import percentiles, series_rule, store_paths

LAYOUT = Layout("folders", "image.nii.gz")
MASKS = {"region": "region.nii.gz", "lesion": "lesion.nii.gz"}


def to_nifti(cohort, out, flips=(False, False, False)):
    """Each patient's DICOM series and masks as NIfTI (a folder per patient), unflipped as SimpleITK
    writes a series, or with axes flipped as a RAS-minded converter (dcm2niix) stores them: same
    physical space, other index order. Returns the labels re-numbered by the file's slice index."""
    labels = pd.read_csv(cohort / "labels.csv")
    rows = []
    for s in dicom_scan.scan_series(cohort / "dicom").values():
        vol = np.stack(dicom.read_slices(s.slices))  # slices ascending along the normal
        img = sitk.GetImageFromArray(vol.astype(np.float32))
        img.CopyInformation(s.reference_image())
        (out / s.patient_id).mkdir(parents=True)
        sitk.WriteImage(sitk.Flip(img, list(flips)), str(out / s.patient_id / "image.nii.gz"))
        for name in MASKS.values():
            m = sitk.ReadImage(str(cohort / "masks" / s.patient_id / name))
            sitk.WriteImage(sitk.Flip(m, list(flips)), str(out / s.patient_id / name))
        position = {h.instance: k for k, h in enumerate(s.slices)}
        for r in labels[labels["patient_id"] == s.patient_id].itertuples():
            k = position[int(r.instance)]
            rows.append((r.patient_id, (len(s.slices) - k if flips[2] else k + 1), r.label))
    pd.DataFrame(rows, columns=["patient_id", "instance", "label"]).to_csv(out / "labels.csv", index=False)
    return out


def build(root, labels, out, **kw):
    ingest(root, labels, kw.pop("mask_dir", None), store_paths(out), classes=CLASSES, field=32, salt="s",
           series=series_rule(), percentiles=percentiles(), mask_names=MASKS, **kw)
    return load_store(out)


@pytest.mark.parametrize("flips", [(False, False, False), (True, True, False), (True, True, True)],
                         ids=["as SimpleITK writes", "RAS in-plane (dcm2niix)", "RAS, slices reversed"])
def test_a_dicom_series_and_its_nifti_conversion_give_the_same_store(cohort, tmp_path, flips):
    man_d, img_d, msk_d = build(cohort / "dicom", cohort / "labels.csv", tmp_path / "from_dicom",
                                mask_dir=cohort / "masks")
    root = to_nifti(cohort, tmp_path / "nifti", flips)
    man_n, img_n, msk_n = build(root, root / "labels.csv", tmp_path / "from_nifti", nifti_layout=LAYOUT)
    # the same slices in the same order (pseudonyms, labels, positions), the same pixels and masks
    same = ["patient", "label", "has_region_mask", "has_lesion_mask"]
    pd.testing.assert_frame_equal(man_d[same], man_n[same])
    np.testing.assert_allclose(np.asarray(img_n, np.float32), np.asarray(img_d, np.float32), atol=1e-3)
    np.testing.assert_array_equal(np.asarray(msk_n[:]), np.asarray(msk_d[:]))
    assert np.asarray(img_d, np.float32).std() > 0.05  # real images, not blanks


def test_canonical_order_undoes_flips_and_an_in_plane_transpose():
    a = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)  # (z, y, x)
    img = sitk.GetImageFromArray(a)
    img.SetSpacing((0.5, 0.7, 3.0))
    img.SetOrigin((10.0, -5.0, 2.0))
    for flips in ([True, False, False], [False, True, True], [True, True, True]):
        back, _ = canonical(sitk.Flip(img, flips))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(back), a)
        np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin())
    swapped, _ = canonical(sitk.PermuteAxes(img, [1, 0, 2]))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(swapped), a)
    np.testing.assert_allclose(swapped.GetDirection(), np.eye(3).ravel())


def _write(path, arr, direction=None, spacing=(1.0, 1.0, 4.0), dtype=np.float32):
    img = sitk.GetImageFromArray(np.asarray(arr, dtype), isVector=False)
    if img.GetDimension() == 3:
        img.SetSpacing(spacing)
        if direction is not None:
            img.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


def test_a_nifti_cohort_with_several_problems_names_each_in_one_run(tmp_path):
    """Seven patients, seven kinds of problem, one check: each named with its file."""
    rng = np.random.default_rng(0)
    vol = rng.random((6, 16, 16)).astype(np.float32)
    root = tmp_path / "nii"
    rows = []
    for pid in ("ok", "fourd", "nan", "offgrid", "noimage", "oblique", "sagittal", "missing_slice"):
        rows += [(pid, "NPC", k) for k in (1, 2)]
    rows.append(("missing_slice", "NPC", 9))
    _write(root / "ok" / "image.nii.gz", vol)
    _write(root / "fourd" / "image.nii.gz", np.stack([vol, vol], axis=-1) if False else np.zeros((2, 6, 16, 16)))
    nan = vol.copy()
    nan[3, 4, 5] = np.nan
    _write(root / "nan" / "image.nii.gz", nan)
    _write(root / "offgrid" / "image.nii.gz", vol)
    _write(root / "offgrid" / "region.nii.gz", np.zeros((6, 16, 16)), spacing=(1.0, 1.0, 5.0), dtype=np.uint8)
    (root / "noimage").mkdir()
    (root / "noimage" / "notes.txt").write_text("scan lost")
    c, s_ = np.cos(np.radians(10)), np.sin(np.radians(10))
    _write(root / "oblique" / "image.nii.gz", vol, direction=(c, -s_, 0, s_, c, 0, 0, 0, 1))
    _write(root / "sagittal" / "image.nii.gz", vol, direction=(0, 0, 1, 1, 0, 0, 0, 1, 0))
    _write(root / "missing_slice" / "image.nii.gz", vol)
    pd.DataFrame(rows, columns=["patient_id", "label", "instance"]).to_csv(tmp_path / "labels.csv", index=False)
    check = check_cohort(root, tmp_path / "labels.csv", None, classes=CLASSES, salt="s", series=series_rule(),
                         mask_names={"region": "region.nii.gz"}, nifti_layout=LAYOUT)
    text = "\n".join(str(p) for p in check.problems)
    expected = {
        "fourd": "4-D volume",
        "nan": "NaN or infinite",
        "offgrid": "mask is off the image grid",
        "noimage": "patient folder without its image image.nii.gz",
        "oblique": "oblique affine",
        "sagittal": "no series matches the series rule",
        "missing_slice": "instance",
    }
    for pid, words in expected.items():
        assert any(pid in str(p) and words in str(p) for p in check.problems), (pid, words, text.replace(str(root), ""))
    assert "spacing (1, 1, 5) vs the image's (1, 1, 4)" in text
    assert [p.pseudonym for p in check.plans] == [check.table.set_index("patient").index[0]] or len(check.plans) == 1
    assert len(check.plans) == 1  # only "ok" is ready
    with pytest.raises(IngestError):
        ingest(root, tmp_path / "labels.csv", None, store_paths(tmp_path / "out"), classes=CLASSES, field=16,
               salt="s", series=series_rule(), percentiles=percentiles(), mask_names={"region": "region.nii.gz"},
               nifti_layout=LAYOUT)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_nnunet_raw_layout_maps_label_values_to_the_masks(tmp_path):
    rng = np.random.default_rng(1)
    vol = rng.random((6, 16, 16)).astype(np.float32)
    lab = np.zeros((6, 16, 16), np.uint8)
    lab[:, 4:12, 4:12] = 1
    lab[:, 6:9, 6:9] = 2
    for case in ("c001", "c002"):
        _write(tmp_path / "imagesTr" / f"{case}_0000.nii.gz", vol)
        _write(tmp_path / "labelsTr" / f"{case}.nii.gz", lab, dtype=np.uint8)
    _write(tmp_path / "imagesTr" / "c001_0001.nii.gz", vol)  # another channel: not this cohort's image
    pd.DataFrame({"patient_id": ["c001", "c002"], "label": ["NPC", "normal"]}).to_csv(tmp_path / "l.csv", index=False)
    layout = Layout("nnunet", labels={"region": [1, 2], "lesion": [2]})
    assert sorted(s.patient_id for s in scan(tmp_path, layout).series.values()) == ["c001", "c002"]
    man, img, masks = build(tmp_path, tmp_path / "l.csv", tmp_path / "out", nifti_layout=layout)
    assert len(man) == 12 and man["has_region_mask"].all() and man["has_lesion_mask"].all()
    m = np.asarray(masks[0])
    region, lesion = (m & 1) > 0, (m & 2) > 0
    assert lesion.sum() < region.sum() and not (lesion & ~region).any()  # the lesion lies inside the region
