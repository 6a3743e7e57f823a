"""Embedded synthetic cohort: axial T2-like head MRI at the nasopharyngeal level, as real DICOM.

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
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from pydicom.uid import generate_uid

from . import dicom_io
from .files import atomic_path

log = logging.getLogger("anapart.synthetic")

LESION_CLASSES = ("NPC", "LH", "lymphoma", "chordoma", "craniopharyngioma")
NORMAL = "normal"

# Region of interest ("perinasopharyngeal region") in anatomy coordinates: x to the patient's
# left/right, y posterior-positive (image rows), the head spanning about [-0.66, 0.66] x [-0.8, 0.9].
REGION = dict(cx=0.0, cy=-0.06, ax=0.24, ay=0.18)

# Lesion types. Ranges overlap on purpose: no single feature separates two classes.
LESIONS = {
    # Asymmetric, lateral recess (fossa of Rosenmueller), irregular infiltrative edge, mottled.
    "NPC": dict(center=(0.10, -0.10), jitter=0.035, lateral=True, radius=(0.055, 0.11), aspect=(0.75, 1.3),
                irregular=0.26, intensity=(0.48, 0.64), texture="mottled", amp=0.07),
    # Midline posterior-superior wall, wide and flat, striated folds, fairly bright.
    "LH": dict(center=(0.0, -0.03), jitter=0.025, lateral=False, radius=(0.06, 0.095), aspect=(1.4, 2.1),
               irregular=0.06, intensity=(0.60, 0.76), texture="striated", amp=0.10),
    # Bulky, round, smooth and very homogeneous, intermediate-low signal.
    "lymphoma": dict(center=(0.0, -0.08), jitter=0.045, lateral=False, radius=(0.085, 0.145), aspect=(0.85, 1.3),
                     irregular=0.07, intensity=(0.44, 0.57), texture="homogeneous", amp=0.015),
    # Posterior midline from the clivus, lobulated, very bright with dark septa.
    "chordoma": dict(center=(0.0, 0.06), jitter=0.03, lateral=False, radius=(0.06, 0.11), aspect=(0.8, 1.25),
                     irregular=0.18, intensity=(0.78, 0.95), texture="septated", amp=0.22),
    # Superior midline, round cyst with a darker rim and dark calcific foci.
    "craniopharyngioma": dict(center=(0.0, -0.12), jitter=0.03, lateral=False, radius=(0.055, 0.10),
                              aspect=(0.85, 1.2), irregular=0.05, intensity=(0.82, 0.98), texture="cystic",
                              amp=0.35),
}

FAKE_SURNAMES = ("Moreau", "Okafor", "Lindqvist", "Haddad", "Kowalczyk", "Tanaka", "Ferreira", "Novak")
FAKE_GIVEN = ("Ada", "Bram", "Chiara", "Dmitri", "Elif", "Farid", "Greta", "Hugo")


@dataclass
class SyntheticConfig:
    """Cohort size and appearance; every field comes from ``config['synthetic']``."""

    seed: int = 7
    patients: dict = field(default_factory=lambda: {"NPC": 8, "LH": 4, "lymphoma": 4, "chordoma": 4,
                                                    "craniopharyngioma": 4, "normal": 6})
    slices_per_patient: int = 10
    matrix: int = 256
    fov_mm: float = 240.0
    slice_thickness_mm: float = 5.0
    slice_gap_mm: float = 0.5
    nasopharynx_level: float = 0.62  # slices below this relative height are labelled
    region_annotated_fraction: float = 0.5
    min_lesion_fraction: float = 0.35  # lesion cross-sections smaller than this are not labelled
    noise_sigma: float = 0.03
    bias_strength: float = 0.25
    shift: float = 0.10
    rotation_deg: float = 12.0
    scale: tuple = (0.88, 1.12)
    distractor_rate: float = 0.5
    lesion_scale: float = 1.0  # multiplies every lesion type's radius range (conspicuity at a coarse input)
    # The site and scanner (an external test site differs in these, see config synthetic_external):
    contrast_gamma: float = 1.0  # tissue contrast curve, intensity ** gamma, before bias and noise
    id_prefix: str = "SYN"  # PatientIDs are <prefix><seed>-<n>
    study_dates: tuple = ("2020-01-01", "2020-01-01")  # StudyDate drawn uniformly in [first, last]
    series_description: str = "AX T2 FSE"
    scanner: dict = field(default_factory=lambda: {"manufacturer": "anapart", "model": "synthetic MR",
                                                   "field_strength": 3.0})

    @classmethod
    def from_dict(cls, d: dict) -> "SyntheticConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        cfg = cls(**known)
        unknown = set(cfg.patients) - set(LESION_CLASSES) - {NORMAL}
        if unknown:
            raise ValueError(f"synthetic.patients: unknown classes {sorted(unknown)}")
        return cfg


def _soft(d: np.ndarray, edge: float) -> np.ndarray:
    """Soft inside-indicator from a signed distance-like value (positive inside)."""
    return 0.5 * (1.0 + np.tanh(d / edge))


def _ellipse(x, y, cx, cy, ax, ay, edge):
    r = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)
    return _soft(1.0 - r, edge / max(min(ax, ay), 1e-3))


def _smooth_noise(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """Band-limited noise in [-1, 1]: random values on a coarse grid, upsampled."""
    coarse = rng.uniform(-1, 1, size=(cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (n, n), interpolation=cv2.INTER_CUBIC)


class _Painter:
    """Paints structures onto one slice; later structures cover earlier ones."""

    def __init__(self, x: np.ndarray, y: np.ndarray, edge: float):
        self.x, self.y, self.edge = x, y, edge
        self.img = np.zeros_like(x)

    def ellipse(self, cx, cy, ax, ay, value, mirror=False):
        for sx in ((-1, 1) if mirror else (1,)):
            m = _ellipse(self.x, self.y, sx * cx, cy, ax, ay, self.edge)
            self.img += m * (value - self.img)
        return self


@dataclass
class _Patient:
    pid: str
    cls: str
    rng_seed: int
    scale: float
    theta: float
    shift: tuple
    level_offset: float
    slope: float
    intercept: float
    signal: float
    lesion: dict | None
    distractors: list


def _draw_patient(rng: np.random.Generator, pid: str, cls: str, cfg: SyntheticConfig) -> _Patient:
    lesion = None
    if cls != NORMAL:
        spec = LESIONS[cls]
        cx, cy = spec["center"]
        if spec["lateral"] and rng.random() < 0.5:
            cx = -cx
        lesion = dict(
            cls=cls,
            cx=cx + rng.normal(0, spec["jitter"]),
            cy=cy + rng.normal(0, spec["jitter"]),
            r=rng.uniform(*spec["radius"]) * cfg.lesion_scale,
            aspect=rng.uniform(*spec["aspect"]),
            angle=rng.uniform(-0.4, 0.4),
            harmonics=[(k, rng.uniform(0, spec["irregular"]) / math.sqrt(k), rng.uniform(0, 2 * math.pi))
                       for k in range(2, 7)],
            intensity=rng.uniform(*spec["intensity"]),
            texture=spec["texture"],
            amp=spec["amp"],
            # z-extent: centre and half-height in relative slice height (below the nasopharynx level)
            zc=rng.uniform(0.15, cfg.nasopharynx_level - 0.12),
            hz=rng.uniform(0.18, 0.42),
            phase=rng.uniform(0, 2 * math.pi),
        )
    distractors = []
    kinds = ("sinus_cyst", "brain_focus", "nasal_swelling")
    for kind in kinds:
        if rng.random() < cfg.distractor_rate:
            distractors.append(dict(kind=kind, side=rng.choice([-1, 1]), r=rng.uniform(0.03, 0.07),
                                    value=rng.uniform(0.7, 0.98), dx=rng.uniform(-0.04, 0.04),
                                    dy=rng.uniform(-0.04, 0.04)))
    return _Patient(
        pid=pid,
        cls=cls,
        rng_seed=int(rng.integers(2**31)),
        scale=float(rng.uniform(*cfg.scale)),
        theta=float(np.deg2rad(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg))),
        shift=(float(rng.uniform(-cfg.shift, cfg.shift)), float(rng.uniform(-cfg.shift, cfg.shift))),
        level_offset=float(rng.uniform(-0.05, 0.05)),
        slope=float(rng.choice([0.5, 1.0, 2.0])),
        intercept=float(rng.choice([0.0, -100.0, 50.0])),
        signal=float(rng.uniform(1500, 3000)),
        lesion=lesion,
        distractors=distractors,
    )


def lesion_scale_at(lesion: dict, t: float) -> float:
    """Relative cross-section radius of a lesion at relative slice height ``t`` (0 = none)."""
    dz = (t - lesion["zc"]) / lesion["hz"]
    return float(math.sqrt(max(0.0, 1.0 - dz * dz)))


def _render_slice(p: _Patient, t: float, cfg: SyntheticConfig, x: np.ndarray, y: np.ndarray,
                  rng: np.random.Generator, tex: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (intensity in ~[0, 1.1], region mask, lesion mask) for relative height ``t``."""
    n = cfg.matrix
    edge = 1.2 / n  # about half a pixel of soft edge: partial volume
    pt = _Painter(x, y, edge)
    naso = t < cfg.nasopharynx_level + 0.08
    # head, skull, soft tissue
    pt.ellipse(0, 0.05, 0.66, 0.82, 0.85).ellipse(0, 0.05, 0.62, 0.78, 0.06).ellipse(0, 0.06, 0.58, 0.74, 0.40)
    # posterior brain (temporal lobes / cerebellum), brainstem, fourth ventricle
    pt.ellipse(0.24, 0.42, 0.20, 0.24, 0.52, mirror=True).ellipse(0, 0.40, 0.10, 0.12, 0.47)
    pt.ellipse(0, 0.50, 0.03, 0.02, 0.95)
    # masticator / pterygoid muscles
    pt.ellipse(0.33, -0.05, 0.09, 0.14, 0.30, mirror=True)
    # nasal cavity: air, septum, turbinates
    pt.ellipse(0, -0.48, 0.13, 0.25, 0.02).ellipse(0, -0.48, 0.012, 0.24, 0.35)
    pt.ellipse(0.08, -0.45, 0.035, 0.15, 0.58, mirror=True)
    if 0.2 < t < 0.95:  # maxillary sinuses: mucosa rim, air
        pt.ellipse(0.27, -0.45, 0.13, 0.15, 0.62, mirror=True).ellipse(0.27, -0.45, 0.115, 0.135, 0.02, mirror=True)
    if t > cfg.nasopharynx_level:  # orbits: fat cone with the globe
        pt.ellipse(0.30, -0.58, 0.13, 0.12, 0.85, mirror=True).ellipse(0.30, -0.62, 0.08, 0.08, 0.95, mirror=True)
    # prevertebral muscles, clivus (cortex, marrow)
    pt.ellipse(0, 0.02, 0.14, 0.05, 0.30).ellipse(0, 0.13, 0.09, 0.07, 0.10).ellipse(0, 0.13, 0.07, 0.055, 0.42)
    if naso:
        depth = float(np.clip((cfg.nasopharynx_level + 0.08 - t) / 0.3, 0.3, 1.0))
        pt.ellipse(0.17, -0.08, 0.05, 0.10, 0.88, mirror=True)  # parapharyngeal fat
        pt.ellipse(0, -0.11, 0.13, 0.08, 0.60)  # nasopharyngeal mucosa
        pt.ellipse(0, -0.12, 0.09 * depth, 0.05 * depth, 0.02)  # airway
    # distractor findings outside the region (label-independent)
    for d in p.distractors:
        s = d["side"]
        if d["kind"] == "sinus_cyst" and 0.2 < t < 0.95:
            pt.ellipse(s * 0.27 + d["dx"], -0.40 + d["dy"], d["r"], d["r"], d["value"])
        elif d["kind"] == "brain_focus":
            pt.ellipse(s * 0.24 + d["dx"], 0.45 + d["dy"], d["r"] * 0.6, d["r"] * 0.6, d["value"])
        elif d["kind"] == "nasal_swelling":
            pt.ellipse(s * 0.07 + d["dx"] * 0.3, -0.50 + d["dy"], 0.03, d["r"] * 1.8, 0.66)
    img = pt.img
    region = (_ellipse(x, y, REGION["cx"], REGION["cy"], REGION["ax"], REGION["ay"], 1e-6) > 0.5) if t < cfg.nasopharynx_level else np.zeros_like(x, bool)
    lesion_mask = np.zeros_like(x, bool)
    if p.lesion is not None:
        les = p.lesion
        k = lesion_scale_at(les, t)
        if k > 0.05:
            lx, ly = x - les["cx"], y - les["cy"]
            ca, sa = math.cos(les["angle"]), math.sin(les["angle"])
            u, v = ca * lx + sa * ly, -sa * lx + ca * ly
            r_eff = les["r"] * k
            rho = np.sqrt((u / les["aspect"]) ** 2 + v**2)
            phi = np.arctan2(v, u)
            boundary = np.ones_like(x)
            for kk, a, ph in les["harmonics"]:
                boundary += a * np.cos(kk * phi + ph + les["phase"] * t)
            inside = r_eff * boundary - rho
            reg_soft = _ellipse(x, y, REGION["cx"], REGION["cy"], REGION["ax"], REGION["ay"], edge)
            m = _soft(inside, edge) * reg_soft
            value = les["intensity"] + _texture(les, u, v, rho / max(r_eff, 1e-6), tex)
            img = img + m * (value - img)
            lesion_mask = m > 0.5
    return _acquire(img, p.rng_seed, cfg, x, y, rng, tex), region, lesion_mask


def _acquire(img: np.ndarray, seed: int, cfg, x, y, rng: np.random.Generator, tex: dict) -> np.ndarray:
    """What the scanner adds: its contrast curve, a smooth bias field (direction from the patient's
    seed), Rician noise."""
    gamma = getattr(cfg, "contrast_gamma", 1.0)
    if gamma != 1.0:
        img = np.power(np.maximum(img, 0.0), gamma, dtype=np.float32)
    b = seed % 1000 / 1000.0
    bias = 1.0 + cfg.bias_strength * (0.6 * (x * math.cos(6.28 * b) + y * math.sin(6.28 * b)) + 0.4 * tex["bias"])
    img = img * bias
    n1 = rng.normal(0, cfg.noise_sigma, img.shape).astype(np.float32)
    n2 = rng.normal(0, cfg.noise_sigma, img.shape).astype(np.float32)
    return np.sqrt((img + n1) ** 2 + n2**2).astype(np.float32)


def _texture(les: dict, u, v, rel, tex: dict) -> np.ndarray:
    amp, kind = les["amp"], les["texture"]
    if kind == "mottled":
        return amp * tex["fine"]
    if kind == "striated":
        return amp * np.sin(2 * math.pi * u / 0.03 + les["phase"])
    if kind == "homogeneous":
        return amp * tex["fine"]
    if kind == "septated":
        lines = np.abs(np.sin(2 * math.pi * (u * 0.8 + v * 0.6) / 0.05 + les["phase"])) < 0.18
        return -amp * 2.5 * lines + 0.03 * tex["fine"]
    if kind == "cystic":
        rim = np.clip((rel - 0.7) / 0.3, 0, 1) * amp * -1.2
        calc = (tex["dots"] > 0.93) & (rel > 0.4)
        return rim - 0.6 * calc
    raise ValueError(kind)


def _grid(p: _Patient, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Anatomy coordinates of each pixel after the patient's shift, rotation and scale."""
    q = (np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1
    qx, qy = np.meshgrid(q, q)
    qx, qy = qx - p.shift[0], qy - p.shift[1]
    c, s = math.cos(-p.theta), math.sin(-p.theta)
    return (c * qx - s * qy) / p.scale, (s * qx + c * qy) / p.scale


def plan_cohort(cfg: SyntheticConfig) -> list[_Patient]:
    rng = np.random.default_rng(cfg.seed)
    patients = []
    i = 0
    for cls in (*LESION_CLASSES, NORMAL):
        for _ in range(int(cfg.patients.get(cls, 0))):
            i += 1
            patients.append(_draw_patient(rng, f"{cfg.id_prefix}{cfg.seed:03d}-{i:04d}", cls, cfg))
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
    (root / "dicom").mkdir(parents=True)
    (root / "masks").mkdir()
    n = cfg.matrix
    spacing = cfg.fov_mm / n
    step = cfg.slice_thickness_mm + cfg.slice_gap_mm
    rows = []
    for p in plan_cohort(cfg):
        rng = np.random.default_rng(p.rng_seed)
        x, y = _grid(p, n)
        tex = {"fine": _smooth_noise(rng, n, max(8, n // 6)), "bias": _smooth_noise(rng, n, 3),
               "dots": (_smooth_noise(rng, n, max(8, n // 5)) + 1) / 2}
        study_uid = generate_uid(entropy_srcs=[str(cfg.seed), p.pid, "study"])
        series_uid = generate_uid(entropy_srcs=[str(cfg.seed), p.pid, "series"])
        birth = f"{rng.integers(1940, 2006)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
        name = f"{FAKE_SURNAMES[rng.integers(len(FAKE_SURNAMES))]}^{FAKE_GIVEN[rng.integers(len(FAKE_GIVEN))]}{p.pid[-4:]}"
        folder = root / "dicom" / p.pid
        folder.mkdir()
        nz = cfg.slices_per_patient
        z_top = float(rng.uniform(-20, 20))
        date = study_date(cfg, p.pid)
        origin_xy = (-cfg.fov_mm / 2 + spacing / 2, -cfg.fov_mm / 2 + spacing / 2)
        region_vol = np.zeros((nz, n, n), np.uint8)  # indexed by ascending z (k = nz-1-j)
        lesion_vol = np.zeros((nz, n, n), np.uint8)
        annotate = rng.random(nz) < cfg.region_annotated_fraction
        for k in range(nz):  # k = 0 is the top slice
            t = 1.0 - k / max(nz - 1, 1) + p.level_offset
            img, region, lesion = _render_slice(p, t, cfg, x, y, rng, tex)
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
            dicom_io.write_slice(folder / fname, stored, meta)
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
        ref = dicom_io.reference_image((nz, n, n), (spacing, spacing), step, (1, 0, 0, 0, 1, 0),
                                       (origin_xy[0], origin_xy[1], z_top - (nz - 1) * step))
        (root / "masks" / p.pid).mkdir()
        dicom_io.write_mask(root / "masks" / p.pid / "region.nii.gz", region_vol, ref)
        dicom_io.write_mask(root / "masks" / p.pid / "lesion.nii.gz", lesion_vol, ref)
        log.info("patient %d-slice series written (%s)", nz, p.cls)
    labels = pd.DataFrame(rows, columns=["patient_id", "instance", "label"])
    labels.to_csv(root / "labels.csv", index=False, lineterminator="\n")
    return labels


# =========================================================================== staging variant (study B)

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
    tnm_error_rate: float = 0.2  # the clinicians' TNM reading disagrees with the rule this often
    noise_sigma: float = 0.03
    bias_strength: float = 0.2
    shift: float = 0.06
    rotation_deg: float = 8.0
    scale: tuple = (0.92, 1.08)

    @classmethod
    def from_dict(cls, d: dict) -> "StagingSyntheticConfig":
        cfg = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
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
    return _soft(r * boundary - rho, edge), rho / max(r, 1e-6)


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
    rule = "IVa" if (t4 or n3) else "III"
    if rng.random() < cfg.tnm_error_rate:
        rule = "III" if rule == "IVa" else "IVa"
    return dict(pid=pid, stage=stage, t4=t4, n3=n3, tumour=tumour, nodes=nodes, tnm=rule,
                zc=rng.uniform(-0.3, 0.3))


def _staging_slice(pat: dict, base: _Patient, zrel: float, quiet: SyntheticConfig, scanner: SyntheticConfig,
                   x, y, rng, tex):
    """T2 and T1C intensities plus the ROI label slice at relative height ``zrel`` in [-1, 1].

    The anatomy is rendered noise-free (``quiet``), lesions are painted in, then each sequence
    gets the bias field and Rician noise of ``scanner``.
    """
    t2, _, _ = _render_slice(base, 0.35, quiet, x, y, rng, tex)
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
            core = _soft(0.55 - rel, 0.08)
            v2 = v2 + core * (0.88 - v2)
            v1 = v1 + core * (0.18 - v1)
        t2 += m * (v2 - t2)
        t1 += m * (v1 - t1)
        roi[(m > 0.5) & (roi == 0)] = ROI_NODE
    return {"T1C": _acquire(t1, base.rng_seed, scanner, x, y, rng, tex),
            "T2": _acquire(t2, base.rng_seed, scanner, x, y, rng, tex)}, roi


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
    (root / "dicom").mkdir(parents=True)
    (root / "roi").mkdir()
    n = cfg.matrix
    spacing = cfg.fov_mm / n
    step = cfg.slice_thickness_mm + cfg.slice_gap_mm
    bcfg = SyntheticConfig(seed=cfg.seed, matrix=n, noise_sigma=cfg.noise_sigma, bias_strength=cfg.bias_strength,
                           shift=cfg.shift, rotation_deg=cfg.rotation_deg, scale=cfg.scale, distractor_rate=0.3)
    quiet = SyntheticConfig(**{**bcfg.__dict__, "noise_sigma": 0.0, "bias_strength": 0.0})
    rows = []
    for pat in plan_staging_cohort(cfg):
        rng = np.random.default_rng([cfg.seed, int(pat["pid"][-4:])])
        base = _draw_patient(rng, pat["pid"], NORMAL, bcfg)
        x, y = _grid(base, n)
        tex = {"fine": _smooth_noise(rng, n, max(8, n // 6)), "bias": _smooth_noise(rng, n, 3),
               "dots": (_smooth_noise(rng, n, max(8, n // 5)) + 1) / 2}
        nz = cfg.slices_per_patient
        z_top = float(rng.uniform(-20, 20))
        origin_xy = (-cfg.fov_mm / 2 + spacing / 2, -cfg.fov_mm / 2 + spacing / 2)
        birth = f"{rng.integers(1940, 2000)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
        name = (f"{FAKE_SURNAMES[rng.integers(len(FAKE_SURNAMES))]}^"
                f"{FAKE_GIVEN[rng.integers(len(FAKE_GIVEN))]}{pat['pid'][-4:]}")
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
                dicom_io.write_slice(folder / f"{rng.integers(16**8):08x}.dcm", stored, meta)
            ref = dicom_io.reference_image((nz, n, n), (spacing, spacing), step, (1, 0, 0, 0, 1, 0),
                                           (origin_xy[0], origin_xy[1], z_top - (nz - 1) * step))
            (root / "roi" / pat["pid"]).mkdir(exist_ok=True)
            dicom_io.write_mask(root / "roi" / pat["pid"] / f"{seq}.nii.gz", np.stack(rois[::-1]), ref)
        rows.append((pat["pid"], pat["stage"], pat["tnm"]))
        log.info("staging patient %s: stage %s (T4-like %s, N3-like %s)", pat["pid"], pat["stage"], pat["t4"],
                 pat["n3"])
    labels = pd.DataFrame(rows, columns=["patient_id", "label", "tnm_stage"])
    labels.to_csv(root / "labels.csv", index=False, lineterminator="\n")
    return labels
