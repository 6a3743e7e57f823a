"""Grad-CAM at a network's target layer (anapart.learn.gradcam): informative maps where the config points, degenerate ones at a pooled layer."""

import numpy as np
import pytest
import torch

from anapart.learn.gradcam import gradcam, resolve_layer
from anapart.partition.classify import build_classifier


def _merged(*names):
    import yaml

    from support.common import REPO

    cfg = {}
    for name in names:
        for k, v in yaml.safe_load((REPO / "config" / name).read_text()).items():
            cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg


def _layer_output_shape(model, layer, size: int) -> tuple:
    shape = {}
    hook = layer.register_forward_hook(lambda mod, inp, out: shape.update(out=tuple(out.shape)))
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, size, size))
    hook.remove()
    return shape["out"]


def _informative(maps: np.ndarray) -> int:
    """How many maps carry spatial information: not all zero and more than one value."""
    return sum(bool(m.max() > 0) and len(np.unique(m.round(4))) > 1 for m in maps)


def test_gradcam_at_the_configured_layers_gives_informative_maps():
    """Every configured network's target layer keeps a spatial grid at the input sizes of the demo and
    of the tests, and Grad-CAM there gives maps with structure. A layer that is 1 x 1 at that size
    (after global pooling) gives all-zero maps that no score can use."""
    demo, tests = _merged("config.yaml"), _merged("config.yaml", "test.yaml")
    sizes = {}
    for cfg in (demo, tests):
        for net in cfg["classify"]["nets"]:
            sizes.setdefault(net, set()).add(cfg["classify"]["input_size"])
    assert demo["cam"]["target_layers"] == tests["cam"]["target_layers"]
    x = torch.randn(2, 1, max(max(s) for s in sizes.values()), max(max(s) for s in sizes.values()),
                    generator=torch.Generator().manual_seed(1))
    for net, net_sizes in sizes.items():
        torch.manual_seed(0)
        model = build_classifier(net, len(demo["classes"]))
        layer = resolve_layer(model, demo["cam"]["target_layers"][net])
        for size in sorted(net_sizes):
            assert min(_layer_output_shape(model, layer, size)[-2:]) >= 2, (net, size)
            maps = gradcam(model, layer, x[:, :, :size, :size].repeat_interleave(3, 0), [0, 3, 5] * 2)
            assert maps.shape == (6, size, size) and maps.min() >= 0 and maps.max() <= 1, net
            # an untrained net's map for one class can be all negative before Grad-CAM's ReLU; most are not
            assert _informative(maps) >= 2, (net, size)
    with pytest.raises(KeyError, match="not found"):
        resolve_layer(model, "blocks.99x")


def test_gradcam_at_a_pooled_layer_is_degenerate():
    """The failure the test above guards against, shown: at a 1 x 1 layer every map is zero."""
    torch.manual_seed(0)
    model = build_classifier("mobilenetv3_large_100", 6)
    layer = resolve_layer(model, "conv_head")
    assert _layer_output_shape(model, layer, 56)[-2:] == (1, 1)
    maps = gradcam(model, layer, torch.randn(6, 1, 56, 56), [0, 3, 5] * 2)
    assert _informative(maps) == 0 and not maps.any()
