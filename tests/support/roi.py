"""Study B's ROI boxes as a clinician drawing rectangles would give them, from the synthetic masks."""

import cv2
import numpy as np
import pandas as pd

from anapart.io import dicom as dicom_io
from anapart.io import dicom_scan
from anapart.staging import patches


def boxes_from_masks(root) -> pd.DataFrame:
    """What a clinician drawing rectangles would give for the synthetic cohort: the ROI bounding boxes."""
    rows = []
    for s in dicom_scan.scan_series(root / "dicom").values():
        seq = "T1C" if "T1" in s.description else "T2"
        vol = dicom_io.read_mask(root / "roi" / s.patient_id / f"{seq}.nii.gz", s, binary=False)
        for z, lab in enumerate(vol):
            for kind, value in (("tumour", 1), ("node", 2)):
                m = (lab == value).astype(np.uint8)
                if m.sum() < 4:
                    continue
                if kind == "tumour":
                    found = [cv2.boundingRect(m)]
                else:
                    n, _, st, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
                    found = [tuple(st[i, :4]) for i in range(1, n) if st[i, 4] >= 4]
                for x, y, w, h in found:
                    rows.append((s.patient_id, seq, s.slices[z].instance, kind, x, y, x + w, y + h))
    return pd.DataFrame(rows, columns=patches.BOX_COLUMNS)
