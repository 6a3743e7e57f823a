"""The torch stack both studies share: the one training loop, pretrained weights, the crop data path, Grad-CAM maps."""
