"""Study A's embedded synthetic cohort: axial T2-like head MRI at the nasopharyngeal level, as real DICOM.

Why it looks like this: the study's premise is that a lesion's *anatomical region* matters, so the
phantom has the anatomy the paper names (nasal cavity, maxillary sinuses, orbits on the upper
slices, nasopharynx, parapharyngeal fat, prevertebral muscles, clivus, brain) moved, rotated and
scaled per patient, with Rician noise and a smooth bias field, so a segmentation model has to
*find* the perinasopharyngeal region. Five lesion types live inside that region, each a distinct
but overlapping mix of position, size, shape, texture and intensity; distractor findings outside
the region (sinus retention cysts, brain foci, nasal mucosal swelling) occur at the same rate in
every class and so carry no label information.

Output (the same layout a user cohort has):
``dicom/<PatientID>/<random>.dcm`` one series per patient, ``labels.csv`` (patient_id, instance,
label) for the slices at the nasopharyngeal level, ``masks/<PatientID>/region.nii.gz`` (region on
an annotated subset of slices) and ``masks/<PatientID>/lesion.nii.gz``.

The external test site (config ``synthetic_external``) is this phantom with another seed, ID
prefix, study period, series description, scanner and contrast curve (:class:`SyntheticConfig`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.uid import generate_uid

from anapart.io import dicom
from anapart.io.files import atomic_path
from anapart.synthetic.common import LESION_CLASSES  # noqa: F401 (re-exported: the cohort's settings and classes)
from anapart.synthetic.common import (NORMAL, Patient, SyntheticConfig, draw_patient, fake_identity, grid,
                                      lesion_scale_at, new_cohort, render_slice, textures)

log = logging.getLogger("anapart.synthetic.partition")

def plan_cohort(cfg: SyntheticConfig) -> list[Patient]:
    rng = np.random.default_rng(cfg.seed)
    patients = []
    i = 0
    for cls in (*LESION_CLASSES, NORMAL):
        for _ in range(int(cfg.patients.get(cls, 0))):
            i += 1
            patients.append(draw_patient(rng, f"{cfg.id_prefix}{cfg.seed:03d}-{i:04d}", cls, cfg))
    return patients


def study_date(cfg: SyntheticConfig, pid: str) -> str:
    """A patient's StudyDate (YYYYMMDD), uniform in ``cfg.study_dates``, from its own random stream
    (so the images do not depend on the study period)."""
    first, last = (np.datetime64(d, "D") for d in cfg.study_dates)
    if last < first:
        raise ValueError(f"synthetic.study_dates: {cfg.study_dates[1]} is before {cfg.study_dates[0]}")
    days = int((last - first).astype(int))
    rng = np.random.default_rng([cfg.seed, int(pid.rsplit("-", 1)[-1]), 17])
    return str(first + np.timedelta64(int(rng.integers(0, days + 1)), "D")).replace("-", "")


def generate(out_dir: str | os.PathLike, cfg: SyntheticConfig) -> pd.DataFrame:
    """Write the whole synthetic cohort under ``out_dir`` (atomically); return the labels table."""
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        labels = _generate_into(tmp, cfg)
    return labels


def _generate_into(root: Path, cfg: SyntheticConfig) -> pd.DataFrame:
    slab = new_cohort(root, ("dicom", "masks"), cfg)
    n, nz, spacing, step, origin_xy = slab.n, slab.nz, slab.spacing, slab.step, slab.origin_xy
    rows = []
    for p in plan_cohort(cfg):
        rng = np.random.default_rng(p.rng_seed)
        x, y = grid(p, n)
        tex = textures(rng, n)
        study_uid = generate_uid(entropy_srcs=[str(cfg.seed), p.pid, "study"])
        series_uid = generate_uid(entropy_srcs=[str(cfg.seed), p.pid, "series"])
        birth, name = fake_identity(rng, p.pid, born_before=2006)
        folder = root / "dicom" / p.pid
        folder.mkdir()
        z_top = float(rng.uniform(-20, 20))
        date = study_date(cfg, p.pid)
        region_vol = np.zeros((nz, n, n), np.uint8)  # indexed by ascending z (k = nz-1-j)
        lesion_vol = np.zeros((nz, n, n), np.uint8)
        annotate = rng.random(nz) < cfg.region_annotated_fraction
        for k in range(nz):  # k = 0 is the top slice
            t = 1.0 - k / max(nz - 1, 1) + p.level_offset
            img, region, lesion = render_slice(p, t, cfg, x, y, rng, tex)
            value = img * p.signal
            stored = np.clip(np.round((value - p.intercept) / p.slope), 0, 65535).astype(np.uint16)
            z = z_top - k * step
            meta = dict(
                PatientName=name, PatientID=p.pid, PatientBirthDate=birth, PatientSex=str(rng.choice(["F", "M"])),
                StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid,
                SOPInstanceUID=generate_uid(entropy_srcs=[str(cfg.seed), p.pid, str(k)]),
                StudyDate=date, SeriesDescription=cfg.series_description, SeriesNumber=3, InstanceNumber=k + 1,
                ImagePositionPatient=[origin_xy[0], origin_xy[1], z], ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
                PixelSpacing=[spacing, spacing], SliceThickness=cfg.slice_thickness_mm, SpacingBetweenSlices=step,
                RescaleSlope=p.slope, RescaleIntercept=p.intercept, RescaleType="US",
                Manufacturer=cfg.scanner["manufacturer"], ManufacturerModelName=cfg.scanner["model"],
                MagneticFieldStrength=float(cfg.scanner["field_strength"]), RepetitionTime=3500, EchoTime=90,
            )
            fname = f"{rng.integers(16**8):08x}.dcm"
            dicom.write_slice(folder / fname, stored, meta)
            j = nz - 1 - k
            if annotate[k] and region.any():
                region_vol[j] = region
            lesion_vol[j] = lesion
            label = None
            if t < cfg.nasopharynx_level:
                if p.lesion is None:
                    label = NORMAL
                else:
                    scale = lesion_scale_at(p.lesion, t)
                    if scale >= cfg.min_lesion_fraction and lesion.any():
                        label = p.cls
                    elif not lesion.any():
                        label = NORMAL  # tumour-free slice of a patient, as in the paper
            if label is not None:
                rows.append((p.pid, k + 1, label))
        ref = slab.reference(z_top)
        (root / "masks" / p.pid).mkdir()
        dicom.write_mask(root / "masks" / p.pid / "region.nii.gz", region_vol, ref)
        dicom.write_mask(root / "masks" / p.pid / "lesion.nii.gz", lesion_vol, ref)
        log.info("patient %d-slice series written (%s)", nz, p.cls)
    labels = pd.DataFrame(rows, columns=["patient_id", "instance", "label"])
    labels.to_csv(root / "labels.csv", index=False, lineterminator="\n")
    return labels


