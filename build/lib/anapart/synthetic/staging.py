"""Study B's embedded synthetic cohort: LA-NPC patients with a T1 post-contrast and a T2 series,
the tumour and neck lymph nodes painted into study A's head phantom (:mod:`.partition`), label
masks of both ROIs, and a rule-based "clinicians' TNM stage" that disagrees with the truth at a
set rate (the comparison of Table 5).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.uid import generate_uid

from anapart.io import dicom
from anapart.io.files import atomic_path
from anapart.synthetic.common import (NORMAL, Patient, SyntheticConfig, acquire, draw_patient, fake_identity, grid,
                                      new_cohort, render_slice, soft, textures)

log = logging.getLogger("anapart.synthetic.staging")

STAGES = ("III", "IVa")
STAGING_SEQUENCES = {"T1C": "AX T1 FS C+", "T2": "AX T2 FSE"}
STAGES = ("III", "IVa")
STAGING_SEQUENCES = {"T1C": "AX T1 FS C+", "T2": "AX T2 FSE"}
ROI_TUMOUR, ROI_NODE = 1, 2  # label values of the ROI masks


@dataclass
class StagingSyntheticConfig:
    """LA-NPC cohort for study B: a nasopharyngeal tumour and neck lymph nodes per patient.

    Stage shows the way it does on MRI, with overlap: stage IVa patients more often have a T4
    tumour (larger, irregular, invading the clivus/skull base and the masticator space) and N3-like
    nodes (large, centrally necrotic, irregular extranodal margin); stage III patients have them
    less often. No single patch decides the stage.
    """

    seed: int = 11
    patients: dict = field(default_factory=lambda: {"III": 20, "IVa": 20})
    slices_per_patient: int = 3
    matrix: int = 128
    fov_mm: float = 240.0
    slice_thickness_mm: float = 5.0
    slice_gap_mm: float = 1.0
    t4_rate: dict = field(default_factory=lambda: {"III": 0.15, "IVa": 0.85})
    n3_rate: dict = field(default_factory=lambda: {"III": 0.15, "IVa": 0.8})
    # The clinicians' TNM reading of the phantom's own extent: each of T4-like invasion and N3-like
    # nodes is seen with this sensitivity when present and called with this rate when absent.
    tnm_reader: dict = field(default_factory=lambda: {"sensitivity": 0.85, "false_positive_rate": 0.1})
    noise_sigma: float = 0.03
    bias_strength: float = 0.2
    shift: float = 0.06
    rotation_deg: float = 8.0
    scale: tuple = (0.92, 1.08)

    @classmethod
    def from_dict(cls, d: dict) -> "StagingSyntheticConfig":
        """From ``staging.synthetic``; a key that is no field is an error (as in the schema)."""
        extra = sorted(set(d) - set(cls.__dataclass_fields__))
        if extra:
            raise ValueError(f"staging.synthetic: unknown key(s) {extra}")
        cfg = cls(**d)
        unknown = set(cfg.patients) - set(STAGES)
        if unknown:
            raise ValueError(f"staging.synthetic.patients: unknown stages {sorted(unknown)} (known: {STAGES})")
        return cfg


def _t1c_contrast(t2: np.ndarray) -> np.ndarray:
    """Background T1 post-contrast look from the T2 phantom: fat bright, fluid and air dark."""
    return np.interp(t2, [0.0, 0.1, 0.3, 0.45, 0.6, 0.8, 0.9, 1.1],
                     [0.02, 0.12, 0.38, 0.52, 0.45, 0.25, 0.88, 0.92]).astype(np.float32)


def _blob(x, y, cx, cy, r, aspect, harmonics, edge):
    """Soft star-shaped blob (radius ``r``, boundary modulated by ``harmonics``) and its rel. radius."""
    u, v = x - cx, y - cy
    rho = np.sqrt((u / aspect) ** 2 + v**2)
    phi = np.arctan2(v, u)
    boundary = np.ones_like(x)
    for k, a, ph in harmonics:
        boundary += a * np.cos(k * phi + ph)
    return soft(r * boundary - rho, edge), rho / max(r, 1e-6)


def tnm_reading(t4: bool, n3: bool, rng: np.random.Generator, reader: dict) -> str:
    """A clinician's TNM stage of a phantom: IVa when T4-like invasion or N3-like nodes are read.

    Each feature is read from the phantom's own extent with reader noise (seen with ``sensitivity``
    when present, called with ``false_positive_rate`` when absent), so TNM's accuracy against the
    reference stage follows from how the stages' extents overlap and how well they are read; it is
    not set by a fixed flip rate (its own stream: the phantom's images do not depend on it)."""
    def read(present: bool) -> bool:
        return bool(rng.random() < (reader["sensitivity"] if present else reader["false_positive_rate"]))

    seen_t4, seen_n3 = read(t4), read(n3)
    return "IVa" if (seen_t4 or seen_n3) else "III"


def _draw_staging_patient(rng: np.random.Generator, pid: str, stage: str, cfg: StagingSyntheticConfig) -> dict:
    t4 = bool(rng.random() < cfg.t4_rate[stage])
    n3 = bool(rng.random() < cfg.n3_rate[stage])
    side = float(rng.choice([-1.0, 1.0]))
    irregular = 0.22 if t4 else 0.07
    tumour = dict(cx=side * 0.09 + rng.normal(0, 0.02), cy=-0.08 + rng.normal(0, 0.02),
                  r=rng.uniform(0.085, 0.13) if t4 else rng.uniform(0.06, 0.10),
                  aspect=rng.uniform(0.85, 1.25),
                  harmonics=[(k, rng.uniform(0, irregular) / math.sqrt(k), rng.uniform(0, 2 * math.pi))
                             for k in range(2, 7)],
                  t2=rng.uniform(0.50, 0.62), t1c=rng.uniform(0.68, 0.82))
    if t4:  # posterior extension replacing the clivus marrow, lateral extension into the pterygoids
        tumour["ext"] = [(side * 0.05, 0.0, rng.uniform(0.06, 0.08)), (side * 0.03, 0.10, rng.uniform(0.045, 0.065)),
                         (side * 0.2, -0.07, rng.uniform(0.04, 0.06))]
    n_nodes = int(rng.integers(1, 3))
    nodes = []
    for j in range(n_nodes):
        s = side if j == 0 else -side
        big = n3  # N3-like: every node of the patient is large, necrotic, with an irregular margin
        nodes.append(dict(cx=s * rng.uniform(0.30, 0.38), cy=rng.uniform(0.10, 0.22),
                          r=rng.uniform(0.06, 0.09) if big else rng.uniform(0.03, 0.055),
                          aspect=rng.uniform(0.85, 1.2),
                          harmonics=[(k, rng.uniform(0, 0.2 if big else 0.04) / math.sqrt(k),
                                      rng.uniform(0, 2 * math.pi)) for k in range(2, 6)],
                          necrosis=big or rng.random() < 0.1, t2=rng.uniform(0.55, 0.68),
                          t1c=rng.uniform(0.6, 0.75), zc=rng.uniform(-0.4, 0.4)))
    rule = tnm_reading(t4, n3, np.random.default_rng(int(rng.random() * 2**53)), cfg.tnm_reader)
    return dict(pid=pid, stage=stage, t4=t4, n3=n3, tumour=tumour, nodes=nodes, tnm=rule,
                zc=rng.uniform(-0.3, 0.3))


def _staging_slice(pat: dict, base: Patient, zrel: float, quiet: SyntheticConfig, scanner: SyntheticConfig,
                   x, y, rng, tex):
    """T2 and T1C intensities plus the ROI label slice at relative height ``zrel`` in [-1, 1].

    The anatomy is rendered noise-free (``quiet``), lesions are painted in, then each sequence
    gets the bias field and Rician noise of ``scanner``.
    """
    t2, _, _ = render_slice(base, 0.35, quiet, x, y, rng, tex)
    t1 = _t1c_contrast(t2)
    edge = 1.2 / quiet.matrix
    roi = np.zeros(x.shape, np.uint8)
    tu = pat["tumour"]
    k = math.sqrt(max(0.0, 1.0 - ((zrel - pat["zc"]) / 1.1) ** 2))
    if k > 0.3:
        m, rel = _blob(x, y, tu["cx"], tu["cy"], tu["r"] * k, tu["aspect"], tu["harmonics"], edge)
        for ex, ey, er in tu.get("ext", []):
            m = np.maximum(m, _blob(x, y, ex, ey, er * k, 1.0, tu["harmonics"][:2], edge)[0])
        mottled = 0.06 * tex["fine"]
        t2 += m * (tu["t2"] + mottled - t2)
        t1 += m * (tu["t1c"] + mottled - t1)
        roi[m > 0.5] = ROI_TUMOUR
    for nd in pat["nodes"]:
        kn = math.sqrt(max(0.0, 1.0 - ((zrel - nd["zc"]) / 0.9) ** 2))
        if kn < 0.35:
            continue
        m, rel = _blob(x, y, nd["cx"], nd["cy"], nd["r"] * kn, nd["aspect"], nd["harmonics"], edge)
        v2 = nd["t2"] + 0.03 * tex["fine"]
        v1 = nd["t1c"] + 0.03 * tex["fine"]
        if nd["necrosis"]:  # necrotic core: T2 bright, non-enhancing on T1C
            core = soft(0.55 - rel, 0.08)
            v2 = v2 + core * (0.88 - v2)
            v1 = v1 + core * (0.18 - v1)
        t2 += m * (v2 - t2)
        t1 += m * (v1 - t1)
        roi[(m > 0.5) & (roi == 0)] = ROI_NODE
    return {"T1C": acquire(t1, base.rng_seed, scanner, x, y, rng, tex),
            "T2": acquire(t2, base.rng_seed, scanner, x, y, rng, tex)}, roi


def plan_staging_cohort(cfg: StagingSyntheticConfig) -> list[dict]:
    rng = np.random.default_rng([cfg.seed, 2])
    out, i = [], 0
    for stage in STAGES:
        for _ in range(int(cfg.patients.get(stage, 0))):
            i += 1
            out.append(_draw_staging_patient(rng, f"STG{cfg.seed:03d}-{i:04d}", stage, cfg))
    return out


def generate_staging(out_dir: str | os.PathLike, cfg: StagingSyntheticConfig) -> pd.DataFrame:
    """Write the staging cohort under ``out_dir`` atomically: ``dicom/<PatientID>/<seq>/*.dcm`` (T1C
    and T2 series), ``roi/<PatientID>/<seq>.nii.gz`` (1 = tumour, 2 = lymph node) and ``labels.csv``
    (patient_id, label, tnm_stage). Returns the labels table."""
    with atomic_path(Path(out_dir)) as tmp:
        return _generate_staging_into(tmp, cfg)


def _generate_staging_into(root: Path, cfg: StagingSyntheticConfig) -> pd.DataFrame:
    slab = new_cohort(root, ("dicom", "roi"), cfg)
    n, nz, spacing, step, origin_xy = slab.n, slab.nz, slab.spacing, slab.step, slab.origin_xy
    bcfg = SyntheticConfig(seed=cfg.seed, matrix=n, noise_sigma=cfg.noise_sigma, bias_strength=cfg.bias_strength,
                           shift=cfg.shift, rotation_deg=cfg.rotation_deg, scale=cfg.scale, distractor_rate=0.3)
    quiet = SyntheticConfig(**{**bcfg.__dict__, "noise_sigma": 0.0, "bias_strength": 0.0})
    rows = []
    for pat in plan_staging_cohort(cfg):
        rng = np.random.default_rng([cfg.seed, int(pat["pid"][-4:])])
        base = draw_patient(rng, pat["pid"], NORMAL, bcfg)
        x, y = grid(base, n)
        tex = textures(rng, n)
        z_top = float(rng.uniform(-20, 20))
        birth, name = fake_identity(rng, pat["pid"], born_before=2000)
        study_uid = generate_uid(entropy_srcs=[str(cfg.seed), pat["pid"], "staging-study"])
        vols = {s: [] for s in STAGING_SEQUENCES}
        rois = []
        for k in range(nz):
            zrel = 1.0 - 2.0 * k / max(nz - 1, 1) if nz > 1 else 0.0
            imgs, roi = _staging_slice(pat, base, zrel, quiet, bcfg, x, y, rng, tex)
            for s in STAGING_SEQUENCES:
                vols[s].append(imgs[s])
            rois.append(roi)
        for number, (seq, desc) in enumerate(STAGING_SEQUENCES.items(), start=3):
            series_uid = generate_uid(entropy_srcs=[str(cfg.seed), pat["pid"], seq])
            folder = root / "dicom" / pat["pid"] / seq
            folder.mkdir(parents=True)
            for k, img in enumerate(vols[seq]):
                stored = np.clip(np.round(img * base.signal), 0, 65535).astype(np.uint16)
                meta = dict(
                    PatientName=name, PatientID=pat["pid"], PatientBirthDate=birth, PatientSex="M",
                    StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid,
                    SOPInstanceUID=generate_uid(entropy_srcs=[str(cfg.seed), pat["pid"], seq, str(k)]),
                    StudyDate="20190101", SeriesDescription=desc, SeriesNumber=number, InstanceNumber=k + 1,
                    ImagePositionPatient=[origin_xy[0], origin_xy[1], z_top - k * step],
                    ImageOrientationPatient=[1, 0, 0, 0, 1, 0], PixelSpacing=[spacing, spacing],
                    SliceThickness=cfg.slice_thickness_mm, SpacingBetweenSlices=step,
                    RescaleSlope=1.0, RescaleIntercept=0.0, RescaleType="US", MagneticFieldStrength=3.0,
                    RepetitionTime=600 if seq == "T1C" else 3500, EchoTime=10 if seq == "T1C" else 90,
                )
                dicom.write_slice(folder / f"{rng.integers(16**8):08x}.dcm", stored, meta)
            ref = slab.reference(z_top)
            (root / "roi" / pat["pid"]).mkdir(exist_ok=True)
            dicom.write_mask(root / "roi" / pat["pid"] / f"{seq}.nii.gz", np.stack(rois[::-1]), ref)
        rows.append((pat["pid"], pat["stage"], pat["tnm"]))
        log.info("staging patient %s: stage %s (T4-like %s, N3-like %s)", pat["pid"], pat["stage"], pat["t4"],
                 pat["n3"])
    labels = pd.DataFrame(rows, columns=["patient_id", "label", "tnm_stage"])
    labels.to_csv(root / "labels.csv", index=False, lineterminator="\n")
    return labels
