"""What both phantoms share: soft-edged shapes, band-limited noise, the scanner's contrast, bias
field and Rician noise, the patient's pose, fake identities (so the pseudonymisation has something
to remove) and the slab geometry of a series.
"""

from __future__ import annotations

import math
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
