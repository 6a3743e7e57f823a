"""The crop data path both studies train and predict through: a memory-mapped image store (study A's
crops, study B's patches share the ``index.csv`` + ``images.npy`` layout) served as normalised,
optionally augmented network inputs, and class probabilities of a saved model on it.

A batch is one fancy-indexing read plus a resize to the network's input, so nothing is decoded in
the training loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from anapart.io.npy import open_npy
from anapart.learn import training


class CropData:
    """Slices of one format store selected by a split list, served as normalised network inputs.

    A list without a ``label`` column (an external cohort's, predicted blind) has labels -1.
    """

    def __init__(self, crops_dir, slice_list: pd.DataFrame, classes, input_size: int | None, norm=(0.5, 0.25),
                 preload_mb: float = 0):
        crops_dir = Path(crops_dir)
        index = pd.read_csv(crops_dir / "index.csv")
        row_of = dict(zip(index["slice_id"], index["row"]))
        missing = [s for s in slice_list["slice_id"] if s not in row_of]
        if missing:
            raise KeyError(f"{crops_dir}/index.csv lacks {len(missing)} slices of the split list, e.g. {missing[0]}")
        unknown = sorted(set(slice_list["label"]) - set(classes)) if "label" in slice_list else []
        if unknown:
            raise ValueError(f"split list has labels {unknown} that are not among the classes {list(classes)}")
        self.images = open_npy(crops_dir / "images.npy")  # checked against its header: a cut store is named
        self.slice_ids = list(slice_list["slice_id"])
        self.rows = np.array([row_of[s] for s in self.slice_ids], dtype=np.int64)
        self.labels = (np.array([list(classes).index(c) for c in slice_list["label"]], dtype=np.int64)
                       if "label" in slice_list else np.full(len(slice_list), -1, dtype=np.int64))
        self.size = int(input_size or self.images.shape[-1])
        self.mean, self.std = float(norm[0]), float(norm[1])
        # Small enough? Resize and normalise every selected slice once; epochs then only index.
        self.cache = None
        if preload_mb and len(self.rows) * self.size**2 * 4 <= preload_mb * 2**20:
            self.cache = self._read(np.arange(len(self.rows)))

    def __len__(self) -> int:
        return len(self.rows)

    def inputs(self, idx) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[torch.as_tensor(np.asarray(idx))]
        return self._read(idx)

    def _read(self, idx) -> torch.Tensor:
        rows = self.rows[np.asarray(idx)]
        order = np.argsort(rows)  # sequential memmap reads, then back to the requested order
        block = np.empty((len(rows),) + self.images.shape[1:], np.float32)
        block[order] = self.images[rows[order]]
        x = torch.from_numpy(block)[:, None]
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.size)
        return (x - self.mean) / self.std

    def batch(self, idx, augment: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.inputs(idx)
        if augment:
            x = augment_batch(x, augment)
        return x, torch.from_numpy(self.labels[np.asarray(idx)])


def augment_batch(x: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Random horizontal flips, integer shifts and (when set) rotation/shear/zoom, from torch's RNG.

    Areas moved in from outside are filled with the batch minimum (the background).
    """
    n, _, h, w = x.shape
    rot, shear, zoom = (float(cfg.get(k, 0.0)) for k in ("rotation", "shear", "zoom"))
    if rot > 0 or shear > 0 or zoom > 0:
        x = _affine(x, rot, shear, zoom)
    p = float(cfg.get("hflip", 0.0))
    if p > 0:
        flip = torch.rand(n) < p
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    shift = int(round(float(cfg.get("shift", 0.0)) * w))
    if shift > 0:
        fill = float(x.min())
        padded = F.pad(x, (shift, shift, shift, shift), value=fill)
        offs = torch.randint(0, 2 * shift + 1, (n, 2))
        x = torch.stack([padded[i, :, oy:oy + h, ox:ox + w] for i, (oy, ox) in enumerate(offs.tolist())])
    return x


def _affine(x: torch.Tensor, rotation_deg: float, shear_deg: float, zoom: float) -> torch.Tensor:
    n = x.shape[0]
    a = torch.deg2rad((torch.rand(n) * 2 - 1) * rotation_deg)
    s = torch.tan(torch.deg2rad((torch.rand(n) * 2 - 1) * shear_deg))
    z = 1 + (torch.rand(n) * 2 - 1) * zoom
    cos, sin = torch.cos(a) / z, torch.sin(a) / z
    theta = torch.stack([torch.stack([cos, -sin + s * cos, torch.zeros(n)], 1),
                         torch.stack([sin, cos + s * sin, torch.zeros(n)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    fill = float(x.min())
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def predict_probabilities(model_path, crops_dir, slice_list: pd.DataFrame, *, device="auto",
                          batch_size: int = 64, build=None, loaded=None) -> tuple[pd.DataFrame, torch.nn.Module, dict]:
    """Class probabilities for ``slice_list``: a frame ``slice_id, label, p_<class>...`` (no label
    column where the list has none).

    ``build`` rebuilds the network from the saved meta (each study has its own);
    ``loaded=(model, meta)`` uses a model already in memory (the one just trained and saved).
    """
    if loaded is None and build is None:
        raise ValueError("predict_probabilities needs build (to rebuild the saved network) or loaded")
    model, meta = loaded if loaded is not None else training.load_model(model_path, build)
    classes = meta["classes"]
    data = CropData(crops_dir, slice_list, classes, meta["input_size"], meta["normalize"])
    logits = training.predict(model, data.inputs, len(data), batch_size, device)
    probs = torch.softmax(logits, dim=1).numpy()
    out = pd.DataFrame({"slice_id": data.slice_ids})
    if "label" in slice_list:
        out["label"] = list(slice_list["label"])
    for j, c in enumerate(classes):
        out[f"p_{c}"] = probs[:, j]
    return out, model, meta
