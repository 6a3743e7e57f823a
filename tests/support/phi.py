"""No patient identifier under results/: the identifiers a DICOM tree holds, and a scan for them."""

import pydicom


def phi_values(dicom_root):
    """Every PatientName / PatientID / PatientBirthDate value (and name part) in the headers."""
    values = set()
    for f in dicom_root.rglob("*.dcm"):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        for key in ("PatientName", "PatientID", "PatientBirthDate"):
            v = str(ds.get(key, ""))
            if v:
                values.add(v)
                values.update(p for p in v.split("^") if len(p) >= 4)
    return values


def assert_no_phi(results_dir, values):
    files = [p for p in results_dir.rglob("*") if p.is_file()]
    assert files
    for p in files:
        blob = p.read_bytes()
        for v in values:
            assert v.encode() not in blob, f"PHI value {v!r} found in {p}"
