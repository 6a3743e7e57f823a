"""A square window cut from a 2-D slice, padded where it leaves the slice: the one crop routine both
studies use (study A's partition crops, study B's ROI patches), so both pad and count alike.
"""

from __future__ import annotations

import numpy as np


def extract(image: np.ndarray, y0: int, x0: int, size: int, pad_value: float = 0.0) -> tuple[np.ndarray, int]:
    """Cut ``image[y0:y0+size, x0:x0+size]``, zero-padding outside the slice; returns (crop, padded px)."""
    h, w = image.shape
    out = np.full((size, size), pad_value, dtype=image.dtype)
    ys, ye = max(y0, 0), min(y0 + size, h)
    xs, xe = max(x0, 0), min(x0 + size, w)
    if ys < ye and xs < xe:
        out[ys - y0:ye - y0, xs - x0:xe - x0] = image[ys:ye, xs:xe]
    inside = max(0, ye - ys) * max(0, xe - xs)
    return out, size * size - inside
