"""Study B's Grad-CAM layer of every registered network gives a map that shows something.

Each network is built as the demo builds it (config.yaml's staging section, its input size, random
initial weights: nothing is downloaded), trained a few steps so its top is not the initial one, and
mapped at the layer the model names (:attr:`TransferNet.cam_layer`). At 80 px the inception nets'
last map is 1 x 1, where every Grad-CAM map is constant: that layer must not be the one chosen.
"""

import numpy as np
import pytest
import torch
import yaml

from anapart.learn.gradcam import gradcam, resolve_layer
from anapart.metrics.cam_scores import flat_maps
from anapart.staging.models import BASIC_CNN, MIN_CAM_SIDE, build_model, input_size
from support.common import REPO

STG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["staging"]
NETWORKS = list(STG["models"]) + [BASIC_CNN]


def _map_side(model, layer, size: int) -> int:
    seen = {}
    hook = layer.register_forward_hook(lambda m, i, o: seen.update(side=min(o.shape[-2:])))
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, size, size))
    hook.remove()
    return int(seen["side"])


@pytest.mark.parametrize("net", NETWORKS)
def test_cam_layer_of_every_staging_network_gives_non_flat_maps(net):
    torch.manual_seed(0)
    size = input_size(net, STG)
    model = build_model(net, len(STG["classes"]), STG, pretrained=False)
    layer = resolve_layer(model, model.cam_layer)
    assert _map_side(model, layer, size) >= MIN_CAM_SIDE, (net, model.cam_layer)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 1, size, size, generator=g)
    y = torch.tensor([0, 1] * 4)
    x[y == 1, :, size // 4: size // 2, size // 4: size // 2] += 2.0  # something to find
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    model.train()
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for p in model.parameters():  # as staging_cam_examples: gradients reach a frozen backbone's maps
        p.requires_grad_(True)
    maps = gradcam(model, layer, x, [int(c) for c in y])
    assert maps.shape == (8, size, size)
    flat = flat_maps(maps)
    # an untrained net's map for one input can be all negative before Grad-CAM's ReLU; most are not
    assert (~flat).sum() >= 4, (net, model.cam_layer, int(flat.sum()))


def test_inception_at_80_px_is_mapped_at_a_finer_stage_than_its_1x1_last_map():
    """The failure this guards against: the last map of inception_v3 at 80 px is 1 x 1."""
    cfg = {**STG, "train": {**STG["train"], "input_size": 80, "input_sizes": {}}}
    model = build_model("inception_v3", 2, cfg, pretrained=False)
    assert model.cam_layer.startswith("backbone.")
    assert _map_side(model, resolve_layer(model, "features_out"), 80) == 1
    for p in model.parameters():
        p.requires_grad_(True)
    maps = gradcam(model, resolve_layer(model, "features_out"), torch.randn(2, 1, 80, 80), [0, 1])
    assert flat_maps(maps).all()


def test_flat_maps_flags_constant_and_non_finite_maps_only():
    maps = np.zeros((4, 5, 5))
    maps[1, 2, 2] = 0.3
    maps[2] = 0.7
    maps[3, 0, 0] = np.nan
    assert flat_maps(maps).tolist() == [True, False, True, True]
