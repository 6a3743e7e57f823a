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
    _write(root / "fourd" / "image.nii.gz", np.zeros((2, 6, 16, 16)))  # two time points
    nan = vol.copy()
    nan[3, 4, 5] = np.nan
    _write(root / "nan" / "image.nii.gz", nan)
    _write(root / "offgrid" / "image.nii.gz", vol)
    _write(root / "offgrid" / "region.nii.gz", np.zeros((6, 16, 16)), spacing=(1.0, 1.0, 5.0), dtype=np.uint8)
    (root / "noimage").mkdir()
    (root / "noimage" / "notes.txt").write_text("scan lost")
    (root / "__MACOSX").mkdir()  # a folder that is no patient's: skipped, not a problem
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
        "missing_slice": "instance 9 is not in the series",
    }
    for pid, words in expected.items():
        assert any(pid in str(p) and words in str(p) for p in check.problems), (pid, words, text.replace(str(root), ""))
    assert "spacing (1, 1, 5) vs the image's (1, 1, 4)" in text
    assert "__MACOSX" not in text
    assert [p.patient_id for p in check.plans] == ["ok"]  # the only patient ready
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


def _grid(direction):
    a = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)  # (z, y, x)
    img = sitk.GetImageFromArray(a)
    img.SetSpacing((0.5, 0.7, 3.0))
    img.SetOrigin((10.0, -5.0, 2.0))
    img.SetDirection(direction)
    return a, img


@pytest.mark.parametrize("direction, name", [
    ((0, 0, -1, 1, 0, 0, 0, -1, 0), "sagittal"),  # x -> P, y -> I, z -> R (DICOM's sagittal order)
    ((1, 0, 0, 0, 0, 1, 0, -1, 0), "coronal"),    # x -> L, y -> I, z -> P
])
def test_sagittal_and_coronal_volumes_keep_superior_at_the_top(direction, name):
    """Whatever flips a converter applied, the canonical order is DICOM's: in-plane axes along +P/+L,
    the head's long axis towards inferior (the top of the image is superior), slices ascending."""
    a, img = _grid(direction)
    ref, reversed_ref = canonical(img)
    d = np.asarray(ref.GetDirection()).reshape(3, 3)
    assert d[2, 1] == -1  # image rows (y) run towards inferior
    assert d[:, 0].max() == 1 and np.dot(d[:, 2], np.cross(d[:, 0], d[:, 1])) > 0
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ref), a)  # already in DICOM's order: unchanged
    for flips in ([True, False, False], [False, True, False], [True, True, True]):
        back, _ = canonical(sitk.Flip(img, flips))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(back), a)
        np.testing.assert_allclose(back.GetDirection(), ref.GetDirection())


def test_mask_grids_name_what_differs_and_a_reordered_mask_still_fits(tmp_path):
    rng = np.random.default_rng(2)
    vol = rng.random((6, 16, 16)).astype(np.float32)
    _write(tmp_path / "p" / "image.nii.gz", vol)
    image = scan(tmp_path, LAYOUT)
    (series,) = image.series.values()
    from anapart.io.nifti import check_mask, read_mask

    _write(tmp_path / "size.nii.gz", np.zeros((6, 16, 15)), dtype=np.uint8)
    assert "size (15, 16, 6) is not the image's (16, 16, 6)" in check_mask(tmp_path / "size.nii.gz", series)
    m = sitk.GetImageFromArray(np.zeros((6, 16, 16), np.uint8))
    m.SetSpacing((1.0, 1.0, 4.0))
    m.SetOrigin((5.0, 0.0, 0.0))
    sitk.WriteImage(m, str(tmp_path / "origin.nii.gz"))
    msg = check_mask(tmp_path / "origin.nii.gz", series)
    assert "origin (5, 0, 0) vs the image's (0, 0, 0)" in msg and "spacing" not in msg
    rot = sitk.GetImageFromArray(np.zeros((6, 16, 16), np.uint8))
    rot.SetSpacing((1.0, 1.0, 4.0))
    rot.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, -1))  # rows and columns swapped and slices reversed...
    rot.SetOrigin((0.0, 0.0, 20.0))  # ...about the same corner: the same voxels in another order
    lesion = np.zeros((6, 16, 16), np.uint8)
    lesion[2, 3, 7] = 1  # (z, y, x) in the image's order
    rot_arr = np.flip(np.swapaxes(lesion, 1, 2), axis=0)  # that voxel in the mask file's order
    out = sitk.GetImageFromArray(np.ascontiguousarray(rot_arr))
    out.CopyInformation(rot)
    sitk.WriteImage(out, str(tmp_path / "reordered.nii.gz"))
    assert check_mask(tmp_path / "reordered.nii.gz", series) is None
    np.testing.assert_array_equal(read_mask(tmp_path / "reordered.nii.gz", series), lesion)


def test_nnunet_paths_with_a_hash_and_no_patient_id_in_the_description(tmp_path):
    root = tmp_path / "study#2"
    vol = np.random.default_rng(3).random((6, 16, 16)).astype(np.float32)
    lab = np.zeros((6, 16, 16), np.uint8)
    lab[:, 4:12, 4:12] = 1
    for case in ("MRN123456", "MRN654321"):
        _write(root / "imagesTr" / f"{case}_0000.nii.gz", vol)
        _write(root / "labelsTr" / f"{case}.nii", lab, dtype=np.uint8)  # uncompressed label maps
    pd.DataFrame({"patient_id": ["MRN123456", "MRN654321"], "label": ["NPC", "normal"]}).to_csv(
        tmp_path / "l.csv", index=False)
    layout = Layout("nnunet", labels={"region": [1]})
    check = check_cohort(root, tmp_path / "l.csv", None, classes=CLASSES, salt="s", series=series_rule(),
                         nifti_layout=layout)
    assert check.problems == [] and len(check.plans) == 2
    assert "MRN" not in check.table.to_csv() and set(check.table["region_mask"]) == {"ok"}
    assert set(check.table["description"]) == {"imagesTr channel 0000"}


def test_a_header_without_orientation_is_read_with_a_warning(tmp_path):
    import nibabel as nib

    img = nib.Nifti1Image(np.zeros((16, 16, 6), np.float32), affine=None)
    img.header.set_qform(None, code=0)
    img.header.set_sform(None, code=0)
    (tmp_path / "p").mkdir()
    nib.save(img, str(tmp_path / "p" / "image.nii.gz"))
    (series,) = scan(tmp_path, LAYOUT).series.values()
    assert series.problems == [] and any("no orientation in the header" in w for w in series.warnings)
