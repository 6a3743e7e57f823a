"""Study B's single models (anapart.staging.models): the frozen transfer nets, the basic CNN, the
registry that builds and configures each by name, and the augmentation they train with."""

import pytest
import torch
import torch.nn.functional as F

from anapart.learn.data import augment_batch
from anapart.staging import models as staging_models
from anapart.staging.models import BASIC_CNN, BasicCNN, TransferNet, build_model, input_size, train_settings


def test_frozen_backbone_stays_unchanged_after_a_training_step():
    torch.manual_seed(0)
    model = TransferNet("resnet50", 2, pretrained=False, freeze=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    assert not model.backbone.training  # batch-norm statistics frozen too
    x, y = torch.randn(4, 1, 40, 40), torch.tensor([0, 1, 0, 1])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    after = model.state_dict()
    backbone = [k for k in before if k.startswith("backbone.")]
    head = [k for k in before if k.startswith("head.")]
    assert backbone and all(torch.equal(before[k], after[k]) for k in backbone)  # incl. BN running stats
    assert any(not torch.equal(before[k], after[k]) for k in head)


def test_unfrozen_backbone_does_train():
    torch.manual_seed(0)
    model = TransferNet("resnet50", 2, pretrained=False, freeze=False)
    w = model.backbone.conv1.weight.clone()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    F.cross_entropy(model.train()(torch.randn(4, 1, 40, 40)), torch.tensor([0, 1, 0, 1])).backward()
    opt.step()
    assert not torch.equal(w, model.backbone.conv1.weight)


def test_transfer_net_loads_local_weights_file(tmp_path):
    import timm

    src = timm.create_model("densenet121", pretrained=False)
    torch.nn.init.constant_(src.features.conv0.weight, 0.01)
    path = tmp_path / "densenet121_imagenet.pth"
    torch.save(src.state_dict(), path)
    m = TransferNet("densenet121", 2, pretrained=str(path), in_chans=1)
    # timm sums the RGB filters of the first conv for one input channel
    assert torch.allclose(m.backbone.features_conv0.weight, torch.full_like(m.backbone.features_conv0.weight, 0.03))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TransferNet("densenet121", 2, pretrained=str(tmp_path / "missing.pth"))
    # a weights folder: one file per network, this one in safetensors
    from safetensors.torch import save_file

    (tmp_path / "w").mkdir()
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w" / "densenet121.safetensors"))
    m = TransferNet("densenet121", 2, pretrained=str(tmp_path / "w"), in_chans=1)
    assert torch.allclose(m.backbone.features_conv0.weight, torch.full_like(m.backbone.features_conv0.weight, 0.03))
    with pytest.raises(FileNotFoundError, match=r"w/resnet50\.safetensors or .*w/resnet50\.pth"):
        TransferNet("resnet50", 2, pretrained=str(tmp_path / "w"))


def test_basic_cnn_has_three_conv_pool_blocks_and_two_dense_layers():
    m = BasicCNN(2)
    convs = [l for l in m.features if isinstance(l, torch.nn.Conv2d)]
    pools = [l for l in m.features if isinstance(l, torch.nn.MaxPool2d)]
    dense = [l for l in m.head if isinstance(l, torch.nn.Linear)]
    assert len(convs) == 3 and len(pools) == 3 and len(dense) == 2
    assert m(torch.zeros(2, 1, 48, 48)).shape == (2, 2)


def test_augmentation_rotates_shears_zooms_within_the_patch():
    torch.manual_seed(0)
    x = torch.zeros(8, 1, 32, 32)
    x[:, :, 12:20, 4:28] = 1.0
    y = augment_batch(x, {"rotation": 30, "shear": 10, "zoom": 0.2})
    assert y.shape == x.shape and not torch.equal(x, y)
    assert float(y.min()) >= -1e-6 and float(y.max()) <= 1 + 1e-6
    # the study A settings (flip, shift) are untouched by the new keys
    torch.manual_seed(1)
    a = augment_batch(x, {"hflip": 0.5, "shift": 0.1})
    torch.manual_seed(1)
    b = augment_batch(x, {"hflip": 0.5, "shift": 0.1, "rotation": 0})
    assert torch.equal(a, b)


CFG = {"train": {"pretrained": False, "freeze_backbone": True, "hidden": 16, "dropout": 0.1, "input_size": 40,
                 "input_sizes": {"resnet50": 56}, "lr": 0.01, "epochs": 3, "schedule": {"type": "exponential"}},
       "basic_cnn": {"channels": [4, 8, 16], "hidden": 8, "dropout": 0.2, "lr": 0.5, "epochs": 7}}


def test_registry_builds_each_kind_from_its_own_config_section():
    """A name in SCRATCH is the basic CNN with staging.basic_cnn's widths; any other name is a timm
    network with staging.train's new top, as timm resolves names."""
    cnn = build_model(BASIC_CNN, 3, CFG)
    assert isinstance(cnn, BasicCNN) and [c.out_channels for c in cnn.features if isinstance(c, torch.nn.Conv2d)] == [4, 8, 16]
    assert cnn.head[-1].out_features == 3 and cnn.head[-2].p == 0.2
    net = build_model("resnet50", 3, CFG)
    assert isinstance(net, TransferNet) and net.frozen and net.head[3].out_features == 16 and net.head[-2].p == 0.1
    assert staging_models.kind(BASIC_CNN) is staging_models.Scratch
    assert staging_models.kind("densenet121") is staging_models.Transfer


def test_each_kind_has_its_input_size_and_training_settings():
    assert input_size("resnet50", CFG) == 56 and input_size("densenet121", CFG) == 40
    assert input_size(BASIC_CNN, CFG) == 40  # no basic_cnn.input_size: staging.train's
    assert input_size(BASIC_CNN, {**CFG, "basic_cnn": {**CFG["basic_cnn"], "input_size": 24}}) == 24
    cnn, net = train_settings(BASIC_CNN, CFG), train_settings("resnet50", CFG)
    assert (cnn["lr"], cnn["epochs"], cnn["schedule"]) == (0.5, 7, {"type": "exponential"})  # no own schedule
    assert (net["lr"], net["epochs"]) == (0.01, 3) and "channels" not in cnn
    own = train_settings(BASIC_CNN, {**CFG, "basic_cnn": {**CFG["basic_cnn"], "schedule": {"type": "none"}}})
    assert own["schedule"] == {"type": "none"}


def test_a_saved_model_is_rebuilt_without_pretrained_weights():
    """model_from_meta never asks for hub weights, whatever staging.train.pretrained said."""
    meta = {"model": "resnet50", "classes": ["III", "IVa"], "cfg": {**CFG, "train": {**CFG["train"], "pretrained": True}}}
    m = staging_models.model_from_meta(meta)
    assert isinstance(m, TransferNet) and m.head[-1].out_features == 2
