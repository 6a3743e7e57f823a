import numpy as np
import pydicom
import pytest

from anapart.io import dicom as dicom_io
from anapart.io import dicom_scan
from anapart.io.dicom import DicomError


def _meta(k, z, **extra):
    meta = dict(
        PatientID="RT-1", PatientName="Round^Trip", SeriesInstanceUID="1.2.3.4", StudyInstanceUID="1.2.3",
        SOPInstanceUID=f"1.2.3.4.{k}", InstanceNumber=k, ImagePositionPatient=[-10.0, -10.0, z],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0], PixelSpacing=[0.5, 0.5], SliceThickness=5.0,
        RescaleSlope=2.0, RescaleIntercept=-100.0,
    )
    meta.update(extra)
    return meta


def test_write_read_round_trip_applies_rescale(tmp_path):
    stored = np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 7
    dicom_io.write_slice(tmp_path / "a.dcm", stored, _meta(1, 0.0))
    ds = pydicom.dcmread(tmp_path / "a.dcm")
    assert ds.SOPClassUID == dicom_io.MR_IMAGE_STORAGE
    assert (ds.Rows, ds.Columns, ds.BitsAllocated) == (12, 10, 16)
    np.testing.assert_array_equal(ds.pixel_array, stored)
    out = dicom_io.read_pixels(tmp_path / "a.dcm")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, stored.astype(np.float32) * 2 - 100)


def test_monochrome1_is_inverted(tmp_path):
    stored = np.array([[0, 10], [20, 65535]], dtype=np.uint16)
    dicom_io.write_slice(tmp_path / "m1.dcm", stored, _meta(1, 0.0, PhotometricInterpretation="MONOCHROME1",
                                                            RescaleSlope=1.0, RescaleIntercept=0.0))
    out = dicom_io.read_pixels(tmp_path / "m1.dcm")
    np.testing.assert_allclose(out, 65535 - stored.astype(np.float32))


def test_slices_sorted_by_position_not_name_or_instance(tmp_path):
    # file names and instance numbers run against the z order
    zs = [10.0, -5.0, 0.0, 5.0]
    for k, z in enumerate(zs):
        dicom_io.write_slice(tmp_path / f"{k}.dcm", np.full((4, 4), k, np.uint16), _meta(10 - k, z))
    (tmp_path / ".DS_Store").write_bytes(b"ignored hidden file")
    series = dicom_scan.scan_series(tmp_path)
    (s,) = series.values()
    assert [h.position for h in s.slices] == sorted(zs)
    assert [dicom_io.read_pixels(h.path)[0, 0] for h in s.slices] == [1 * 2 - 100, 2 * 2 - 100, 3 * 2 - 100, -100]
    assert s.slice_spacing() == pytest.approx(5.0)
    assert s.origin == (-10.0, -10.0, -5.0)


def test_oblique_series_sorted_along_normal(tmp_path):
    c, s_ = np.cos(0.3), np.sin(0.3)
    iop = [1, 0, 0, 0, c, s_]  # tilted about x; normal = (0, -s, c)
    normal = np.cross(iop[:3], iop[3:])
    for k, d in enumerate([6.0, 0.0, 3.0]):
        ipp = list(np.array([0.0, 1.0, 2.0]) + d * normal)
        dicom_io.write_slice(tmp_path / f"{k}.dcm", np.zeros((4, 4), np.uint16),
                             _meta(k + 1, 0.0, ImagePositionPatient=ipp, ImageOrientationPatient=iop))
    (series,) = dicom_scan.scan_series(tmp_path).values()
    assert [round(h.position - series.slices[0].position, 6) for h in series.slices] == [0.0, 3.0, 6.0]


def test_mask_round_trip_is_aligned_with_sorted_slices(tmp_path):
    dcm = tmp_path / "dcm"
    dcm.mkdir()
    for k, z in enumerate([20.0, 0.0, 10.0]):
        dicom_io.write_slice(dcm / f"{k}.dcm", np.zeros((6, 8), np.uint16), _meta(k + 1, z))
    (series,) = dicom_scan.scan_series(dcm).values()
    vol = np.zeros((3, 6, 8), np.uint8)
    for j in range(3):
        vol[j, j, j] = 1  # slice j (ascending z) marks pixel (j, j)
    dicom_io.write_mask(tmp_path / "m.nii.gz", vol, series.reference_image())
    back = dicom_io.read_mask(tmp_path / "m.nii.gz", series)
    np.testing.assert_array_equal(back, vol)


def test_mask_with_wrong_geometry_is_rejected(tmp_path):
    dcm = tmp_path / "dcm"
    dcm.mkdir()
    for k in range(2):
        dicom_io.write_slice(dcm / f"{k}.dcm", np.zeros((6, 8), np.uint16), _meta(k + 1, 5.0 * k))
    (series,) = dicom_scan.scan_series(dcm).values()
    bad = dicom_io.reference_image((2, 6, 9), (0.5, 0.5), 5.0, (1, 0, 0, 0, 1, 0), series.origin)
    dicom_io.write_mask(tmp_path / "bad.nii.gz", np.zeros((2, 6, 9), np.uint8), bad)
    with pytest.raises(DicomError, match=r"bad\.nii\.gz: mask size \(9, 6, 2\) vs the series' \(8, 6, 2\), off the grid"):
        dicom_io.read_mask(tmp_path / "bad.nii.gz", series)
    shifted = dicom_io.reference_image((2, 6, 8), (0.5, 0.5), 5.0, (1, 0, 0, 0, 1, 0), (40.0, 0.0, 0.0))
    dicom_io.write_mask(tmp_path / "shifted.nii.gz", np.zeros((2, 6, 8), np.uint8), shifted)
    with pytest.raises(DicomError, match=r"shifted\.nii\.gz: mask origin \(40, 0, 0\) vs the series' \(-10, -10, 0\), off the grid"):
        dicom_io.read_mask(tmp_path / "shifted.nii.gz", series)


def test_a_flipped_mask_names_the_direction_and_only_what_differs(tmp_path):
    """A mask written with one axis flipped (same origin, same spacing): the message says direction,
    gives both, and does not list the fields that agree."""
    import SimpleITK as sitk

    dcm = tmp_path / "dcm"
    dcm.mkdir()
    for k in range(2):
        dicom_io.write_slice(dcm / f"{k}.dcm", np.zeros((6, 8), np.uint16), _meta(k + 1, 5.0 * k))
    (series,) = dicom_scan.scan_series(dcm).values()
    ref = series.reference_image()
    flipped = sitk.Image(ref)
    d = list(ref.GetDirection())
    d[0] = -d[0]  # the x axis reversed
    flipped.SetDirection(d)
    dicom_io.write_mask(tmp_path / "flipped.nii.gz", np.zeros((2, 6, 8), np.uint8), flipped)
    msg = dicom_io.check_mask(tmp_path / "flipped.nii.gz", series)
    assert msg is not None and "flipped.nii.gz" in msg
    assert "direction (-1, 0, 0, 0, 1, 0, 0, 0, 1) vs the series' (1, 0, 0, 0, 1, 0, 0, 0, 1)" in msg, msg
    assert "origin" not in msg and "spacing" not in msg
    assert "flipped or permuted axis" in msg
    with pytest.raises(DicomError, match="direction"):
        dicom_io.read_mask(tmp_path / "flipped.nii.gz", series)


def test_duplicate_position_is_an_error(tmp_path):
    for k in range(2):
        dicom_io.write_slice(tmp_path / f"{k}.dcm", np.zeros((4, 4), np.uint16), _meta(k + 1, 0.0))
    with pytest.raises(DicomError, match="duplicate slice"):
        dicom_scan.scan_series(tmp_path)
