"""Grad-CAM maps of a trained network (pytorch-grad-cam), for any target layer named by a dotted path.

Both studies map their models with these; scoring the maps against a lesion is numpy-only and
lives in :mod:`anapart.metrics.cam_scores`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def resolve_layer(model, path: str):
    """A submodule by dotted path (``features.denseblock3``, ``blocks.4``), with a clear error."""
    module = model
    for part in path.split("."):
        if not hasattr(module, part) and not (part.isdigit() and isinstance(module, torch.nn.Sequential)):
            raise KeyError(f"target layer '{path}' not found in {type(model).__name__} (stopped at '{part}')")
        module = module[int(part)] if part.isdigit() and isinstance(module, torch.nn.Sequential) else \
            getattr(module, part)
    return module


def gradcam(model, layer, inputs, targets: list[int], batch_size: int = 32) -> np.ndarray:
    """Grad-CAM (pytorch-grad-cam) for each input and its target class: (n, H, W) in [0, 1]."""
    model.eval()
    maps = []
    with GradCAM(model=model, target_layers=[layer]) as cam:
        for b in range(0, len(inputs), batch_size):
            x = inputs[b:b + batch_size]
            t = [ClassifierOutputTarget(int(c)) for c in targets[b:b + batch_size]]
            maps.append(cam(input_tensor=x, targets=t))
    return np.concatenate(maps) if maps else np.zeros((0,) + tuple(inputs.shape[-2:]), np.float32)


def resize_maps(maps: np.ndarray, size: int) -> np.ndarray:
    if maps.shape[-1] == size:
        return maps
    t = torch.from_numpy(maps)[:, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()
