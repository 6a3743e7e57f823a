"""What both phantoms share: soft-edged shapes, band-limited noise, the scanner's contrast, bias
field and Rician noise, the patient's pose, fake identities (so the pseudonymisation has something
to remove), the slab geometry of a series, and the head phantom itself (its settings
:class:`SyntheticConfig`, a drawn :class:`Patient`, one rendered slice): study A's cohort is made of
it, and study B's T2 slices are rendered from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from anapart.io import dicom

FAKE_SURNAMES = ("Moreau", "Okafor", "Lindqvist", "Haddad", "Kowalczyk", "Tanaka", "Ferreira", "Novak")
FAKE_GIVEN = ("Ada", "Bram", "Chiara", "Dmitri", "Elif", "Farid", "Greta", "Hugo")


def soft(d: np.ndarray, edge: float) -> np.ndarray:
    """Soft inside-indicator from a signed distance-like value (positive inside)."""
    return 0.5 * (1.0 + np.tanh(d / edge))


def ellipse(x, y, cx, cy, ax, ay, edge):
    r = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)
    return soft(1.0 - r, edge / max(min(ax, ay), 1e-3))


def smooth_noise(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """Band-limited noise in [-1, 1]: random values on a coarse grid, upsampled."""
    coarse = rng.uniform(-1, 1, size=(cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (n, n), interpolation=cv2.INTER_CUBIC)


class Painter:
    """Paints structures onto one slice; later structures cover earlier ones."""

    def __init__(self, x: np.ndarray, y: np.ndarray, edge: float):
        self.x, self.y, self.edge = x, y, edge
        self.img = np.zeros_like(x)

    def ellipse(self, cx, cy, ax, ay, value, mirror=False):
        for sx in ((-1, 1) if mirror else (1,)):
            m = ellipse(self.x, self.y, sx * cx, cy, ax, ay, self.edge)
            self.img += m * (value - self.img)
        return self


def acquire(img: np.ndarray, seed: int, cfg, x, y, rng: np.random.Generator, tex: dict) -> np.ndarray:
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


def grid(p, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Anatomy coordinates of each pixel after the patient's shift, rotation and scale."""
    q = (np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1
    qx, qy = np.meshgrid(q, q)
    qx, qy = qx - p.shift[0], qy - p.shift[1]
    c, s = math.cos(-p.theta), math.sin(-p.theta)
    return (c * qx - s * qy) / p.scale, (s * qx + c * qy) / p.scale


def textures(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """A patient's noise maps: fine lesion texture, the bias field's shape, calcification dots."""
    return {"fine": smooth_noise(rng, n, max(8, n // 6)), "bias": smooth_noise(rng, n, 3),
            "dots": (smooth_noise(rng, n, max(8, n // 5)) + 1) / 2}


def fake_identity(rng: np.random.Generator, pid: str, born_before: int) -> tuple[str, str]:
    """A fake PatientBirthDate (YYYYMMDD) and PatientName, so that de-identification is exercised."""
    birth = f"{rng.integers(1940, born_before)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
    name = f"{FAKE_SURNAMES[rng.integers(len(FAKE_SURNAMES))]}^{FAKE_GIVEN[rng.integers(len(FAKE_GIVEN))]}{pid[-4:]}"
    return birth, name


class Slab:
    """Geometry of an axial series of ``nz`` slices of ``matrix``² pixels over ``fov_mm``: pixel
    spacing, slice step (thickness + gap), the first pixel's x/y, and the mask reference image."""

    def __init__(self, matrix: int, fov_mm: float, thickness_mm: float, gap_mm: float, nz: int):
        self.n, self.nz = matrix, nz
        self.spacing = fov_mm / matrix
        self.step = thickness_mm + gap_mm
        self.origin_xy = (-fov_mm / 2 + self.spacing / 2, -fov_mm / 2 + self.spacing / 2)

    def reference(self, z_top: float):
        """The SimpleITK image whose geometry the NIfTI masks of a series starting at ``z_top`` take."""
        return dicom.reference_image((self.nz, self.n, self.n), (self.spacing, self.spacing), self.step,
                                        (1, 0, 0, 0, 1, 0),
                                        (self.origin_xy[0], self.origin_xy[1], z_top - (self.nz - 1) * self.step))


def new_cohort(root: Path, folders: tuple[str, ...], cfg) -> Slab:
    """Create a cohort's top folders under ``root``; the slab of its series from ``cfg``'s matrix,
    field of view, slice thickness and gap, and slices per patient."""
    for f in folders:
        (root / f).mkdir(parents=True)
    return Slab(cfg.matrix, cfg.fov_mm, cfg.slice_thickness_mm, cfg.slice_gap_mm, cfg.slices_per_patient)


# --------------------------------------------------------------------------- the head phantom

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


@dataclass
class Patient:
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


def draw_patient(rng: np.random.Generator, pid: str, cls: str, cfg: SyntheticConfig) -> Patient:
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
    return Patient(
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


def render_slice(p: Patient, t: float, cfg: SyntheticConfig, x: np.ndarray, y: np.ndarray,
                  rng: np.random.Generator, tex: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (intensity in ~[0, 1.1], region mask, lesion mask) for relative height ``t``."""
    n = cfg.matrix
    edge = 1.2 / n  # about half a pixel of soft edge: partial volume
    pt = Painter(x, y, edge)
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
    region = (ellipse(x, y, REGION["cx"], REGION["cy"], REGION["ax"], REGION["ay"], 1e-6) > 0.5) if t < cfg.nasopharynx_level else np.zeros_like(x, bool)
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
            reg_soft = ellipse(x, y, REGION["cx"], REGION["cy"], REGION["ax"], REGION["ay"], edge)
            m = soft(inside, edge) * reg_soft
            value = les["intensity"] + TEXTURES[les["texture"]](les, u, v, rho / max(r_eff, 1e-6), tex)
            img = img + m * (value - img)
            lesion_mask = m > 0.5
    return acquire(img, p.rng_seed, cfg, x, y, rng, tex), region, lesion_mask


def _septa(les: dict, u, v, rel, tex: dict) -> np.ndarray:
    lines = np.abs(np.sin(2 * math.pi * (u * 0.8 + v * 0.6) / 0.05 + les["phase"])) < 0.18
    return -les["amp"] * 2.5 * lines + 0.03 * tex["fine"]


def _cyst(les: dict, u, v, rel, tex: dict) -> np.ndarray:
    rim = np.clip((rel - 0.7) / 0.3, 0, 1) * les["amp"] * -1.2
    calc = (tex["dots"] > 0.93) & (rel > 0.4)
    return rim - 0.6 * calc


# A lesion type's ``texture`` -> its intensity pattern (lesion dict, rotated coordinates u and v,
# relative radius, the patient's noise maps) added to the lesion's mean intensity.
TEXTURES = {
    "mottled": lambda les, u, v, rel, tex: les["amp"] * tex["fine"],
    "striated": lambda les, u, v, rel, tex: les["amp"] * np.sin(2 * math.pi * u / 0.03 + les["phase"]),
    "homogeneous": lambda les, u, v, rel, tex: les["amp"] * tex["fine"],
    "septated": _septa,
    "cystic": _cyst,
}
