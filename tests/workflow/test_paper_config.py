"""config/paper.yaml is the papers' setup: merged over config.yaml as Snakemake merges it, every value
the papers state is what the workflow will use, and no demo-only training setting leaks through."""

import copy

import pytest
import yaml
from snakemake.utils import update_config, validate

from support.common import REPO

DEMO = yaml.safe_load((REPO / "config/config.yaml").read_text())
PAPER = yaml.safe_load((REPO / "config/paper.yaml").read_text())
A = "Li et al., JMRI 2022"
B = "Huang et al. 2021"


def merged() -> dict:
    """config.yaml, then --configfile config/paper.yaml: Snakemake's recursive update_config."""
    cfg = copy.deepcopy(DEMO)
    update_config(cfg, PAPER)
    return cfg


def get(cfg: dict, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


# (config key, the papers' value, paper) -- with the sentence each value comes from.
class _ImageNet:
    """ImageNet weights: from timm's hub (``true``) or, offline, a folder/file of them (a path)."""

    def __eq__(self, other):
        return other is True or (isinstance(other, str) and other.lower() not in ("", "false", "none"))

    def __repr__(self):
        return "ImageNet weights (true or a weights folder)"


IMAGENET = _ImageNet()

STATED = [
    # A: "Full images (512 x 512) of 3085 patients constituted 100% of the dataset"
    ("cohort.field", 512, A),
    # A: "The patients in each category were divided into a training cohort and a test cohort in a 3:1 ratio."
    ("split.test_fraction", 0.25, A),
    # A: "we randomly assigned 50% images and 25% images of the training cohort of each category to form two new datasets"
    ("split.fractions", [100, 50, 25], A),
    # A: "The U-net and the Deeplabv3 were used to build the semantic segmentation models"
    ("segment.archs", ["unet", "deeplabv3"], A),
    # A: "the RMSprop optimizer was used to train the models with a batch size of 32, and the initial learning rate was
    #     set to 0.001. Both semantic segmentation models were trained for 40 epochs."
    ("segment.optimizer", "rmsprop", A),
    ("segment.batch_size", 32, A),
    ("segment.lr", 0.001, A),
    ("segment.epochs", 40, A),
    # A: "extended 56 pixels up, down, left, and right ... The seg224 image was obtained by extending ... by 112 pixels"
    ("crop.sizes", {"seg112": 112, "seg224": 224}, A),
    # A: "Four common pretrained DL networks were transferred ...: EfficientNet-B0, Legacy SE-ResNet34, MobileNetV3
    #     Large100, and DenseNet121."
    ("classify.pretrained", IMAGENET, A),
    ("classify.nets", ["efficientnet_b0", "legacy_seresnet34", "mobilenetv3_large_100", "densenet121"], A),
    # A: "nine datasets (full image, seg112 image, and seg224 image, each with 100% dataset, 50% dataset, and 25% dataset)"
    ("classify.formats", ["full", "seg112", "seg224"], A),
    # A: "The stochastic gradient descent (SGD) optimizer was used to train the networks with a batch size of 32, the
    #     initial learning rate was set to 0.001, and each model was trained for 40 epochs."
    ("classify.optimizer", "sgd", A),
    ("classify.batch_size", 32, A),
    ("classify.lr", 0.001, A),
    ("classify.epochs", 40, A),
    # A: "seg112 image [112 x 112] and seg224 image [224 x 224]" next to full images (512 x 512): native sizes
    ("classify.input_size", None, A),
    # A: "In the test cohort of each disease category under the 100% dataset ... generated a total of 31,728 Grad-CAM images"
    ("cam.fractions", [100], A),
    # B: "The whole data set is split into the training set and testing set with the ratio of 4:1"
    ("staging.split.test_fraction", 0.2, B),
    # B: "the original MR images are enhanced with Contrast Limited Adaptive Histogram Equalization (CLAHE)"
    ("staging.clahe.enabled", True, B),
    # B: Table 3 compares each model "with and without MR image preprocessing"
    ("staging.compare_clahe", True, B),
    # B: "Rectangular regions of interest (ROI) in each MRI are cropped with the appropriate resolutions from 50x50 to 300x300"
    ("staging.patches.min_side", 50, B),
    # B: "The advanced CNN models (VGG16, InceptionV3, ResNet50, InceptionResNetV2, and DenseNet121)"
    ("staging.models", ["vgg16", "inception_v3", "resnet50", "inception_resnet_v2", "densenet121"], B),
    # B: "Keras is used to achieve training and testing with five pre-trained models downloaded from keras official website"
    ("staging.train.pretrained", IMAGENET, B),
    # B: "We freeze the model except for the top layers and train the model using our MRI data set."
    ("staging.train.freeze_backbone", True, B),
    # B: "the optimizer is set to Adam, and the initial learning rates of these models are set to 0.0001 ...
    #     The batch size for training is 32."
    ("staging.train.optimizer", "adam", B),
    ("staging.train.lr", 0.0001, B),
    ("staging.train.batch_size", 32, B),
    # B: "LearningRateScheduler module of Keras is used to update the learning rate gradually with the increase of epoch"
    ("staging.train.schedule.type", "exponential", B),
    # B: "The basic CNN model has 3 convolutional layers, each layer is followed by a max-pooling layer"
    ("staging.basic_cnn.enabled", True, B),
    # B: "for the basic CNN model ... the accuracies achieve the highest scores after 60 epoches"
    ("staging.basic_cnn.epochs", 60, B),
]


@pytest.mark.parametrize("key,value,paper", STATED, ids=[s[0] for s in STATED])
def test_merged_config_has_the_papers_value(key, value, paper):
    assert value == get(merged(), key), f"{key}: {paper} states {value!r}"


def test_merged_config_is_valid():
    validate(merged(), str(REPO / "workflow/schemas/config.schema.yaml"))


def test_transfer_models_train_under_ten_epochs():
    # B: "the models only require less than 10 epoches"
    assert merged()["staging"]["train"]["epochs"] < 10


def test_per_format_inputs_are_the_native_crop_sizes():
    from anapart.partition.crop import crop_size

    cfg = merged()
    sides = {f: crop_size(f, cfg["cohort"]["field"], cfg["crop"]["sizes"]) for f in cfg["classify"]["formats"]}
    assert sides == {"full": 512, "seg112": 112, "seg224": 224}
    assert cfg["classify"]["input_size"] is None  # CropData then feeds each format at its own side


def test_staging_networks_run_at_their_native_sizes():
    """B: "five pre-trained models downloaded from keras official website ... we resize them to the fixed
    resolutions": Keras' native inputs, 224 (VGG16, ResNet50, DenseNet121) and 299 (InceptionV3,
    InceptionResNetV2). The demo's {vgg16: 64} must not survive the nested merge."""
    from anapart.staging.models import input_size

    cfg = merged()["staging"]
    native = {"vgg16": 224, "inception_v3": 299, "resnet50": 224, "inception_resnet_v2": 299, "densenet121": 224}
    assert {m: input_size(m, cfg) for m in cfg["models"]} == native


# Demo-only settings (training from scratch on two CPU cores) that the papers do not use: paper.yaml
# must override each, or Snakemake's nested merge keeps the demo's value.
DEMO_ONLY = [
    ("classify.optimizer", "sgd"),      # the demo's AdamW learns from scratch in 6 epochs; the paper used SGD
    ("classify.schedule", {"type": "none"}),
    ("classify.warmup_epochs", 0),
    ("classify.grad_clip", None),
    ("classify.weight_decay", 0.0),
    ("classify.zero_init_head", False),
    ("classify.augment", {"hflip": 0.0, "shift": 0.0}),  # no augmentation in study A
    ("segment.hflip", False),
    ("synthetic.lesion_scale", 1.0),    # the demo enlarges lesions for its 56-px inputs
    ("segment.input_size", 512),
]


@pytest.mark.parametrize("key,value", DEMO_ONLY, ids=[d[0] for d in DEMO_ONLY])
def test_demo_only_settings_do_not_leak(key, value):
    assert get(merged(), key) == value
    assert get(DEMO, key) != value  # it really is a demo setting that had to be overridden


# Runtime knobs (how, not what, is trained): may keep the demo's value.
RUNTIME = {"threads", "preload_mb", "amp", "amp_dtype", "channels_last", "seed", "threshold", "drop_rate", "max_loss_ratio"}


@pytest.mark.parametrize("block", ["segment", "classify", "staging.train", "staging.basic_cnn", "cam"])
def test_every_training_setting_is_restated(block):
    """Every training setting of the demo's blocks is written out in paper.yaml (or is a runtime knob):
    nothing of the demo's training recipe reaches a paper run unseen."""
    demo, paper = get(DEMO, block), get(PAPER, block)
    missing = sorted(k for k in demo if k not in paper and k not in RUNTIME)
    assert not missing, f"paper.yaml does not restate {block}.{missing}"


def test_cam_layers_are_each_networks_last_convolutional_stage():
    """Grad-CAM's usual layer (the papers do not name one): the stage whose output is the feature
    map timm's ``forward_features`` returns (stride 32), not the demo's stride-16 stages."""
    import torch

    from anapart.learn.gradcam import resolve_layer
    from anapart.partition.classify import build_classifier

    cfg = merged()
    layers = cfg["cam"]["target_layers"]
    assert set(layers) == set(cfg["classify"]["nets"])
    for net, name in layers.items():
        model = build_classifier(net, len(cfg["classes"])).eval()
        seen = {}

        def keep_shape(module, inputs, output):
            seen["shape"] = output.shape  # returns None: the output itself is left alone

        hook = resolve_layer(model, name).register_forward_hook(keep_shape)
        x = torch.zeros(1, 1, 224, 224)
        with torch.no_grad():
            last = model.forward_features(x)
        hook.remove()
        assert tuple(seen["shape"][-2:]) == tuple(last.shape[-2:]) == (7, 7), net
        assert layers[net] != DEMO["cam"]["target_layers"][net], net


def test_basic_cnn_trains_with_its_own_schedule():
    """B states 60 epochs for the basic CNN and no schedule: staging.train's exponential decay
    (0.9 per epoch) would end its training at lr x 0.9^60, so paper.yaml gives it its own."""
    from anapart.staging.models import BASIC_CNN, train_settings

    cfg = merged()["staging"]
    t = train_settings(BASIC_CNN, cfg)
    assert t["schedule"] == {"type": "none"} and t["epochs"] == 60 and t["lr"] == 0.0001
    assert train_settings("vgg16", cfg)["schedule"] == cfg["train"]["schedule"]  # the transfer models keep theirs
