"""The one figure style of both studies: what a journal asks of a figure, set in one place.

Every figure is saved by :func:`save_figure` as a vector PDF beside a PNG of at least 300 dpi
(Radiology and JMRI ask >= 300 dpi or vector art); fonts are at least 8 pt at the size the figure is
drawn; categories take the Okabe-Ito palette (told apart under the common colour-vision
deficiencies), heat maps a perceptually uniform map (:data:`HEATMAP`, :data:`CAM_MAP`, never jet),
each with a colour bar; and every network, format, class and preprocessing is shown by the name in
:data:`DISPLAY_NAMES`, never its identifier. Figure code imports ``pyplot`` and ``save_figure`` from
here, so no figure can miss the style.
"""

from __future__ import annotations

import os
from pathlib import Path

from anapart.io.files import atomic_paths

PNG_DPI = 300
MIN_FONT_PT = 8

# Okabe & Ito (2008), "Color Universal Design": black first, then the seven colours in their order.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
# the colour cycle: orange, sky blue, bluish green, blue, vermillion, reddish purple, black, and the
# yellow (faint on white) last
CATEGORY = (OKABE_ITO[1], OKABE_ITO[2], OKABE_ITO[3], OKABE_ITO[5], OKABE_ITO[6], OKABE_ITO[7], OKABE_ITO[0],
            OKABE_ITO[4])
HEATMAP = "viridis"  # counts and rates (confusion matrices)
CAM_MAP = "inferno"  # Grad-CAM maps: dark where the map is low, so the slice shows through
CAM_OUTLINE = "#56B4E9"  # lesion/ROI outline over a CAM map: sky blue, absent from inferno
HIGHLIGHT = "#D55E00"  # the primary endpoint (vermillion)

# One mapping for every figure: identifiers (config keys, timm names) -> the names a reader knows.
DISPLAY_NAMES = {
    # study A networks (timm)
    "efficientnet_b0": "EfficientNet-B0",
    "legacy_seresnet34": "SE-ResNet-34",
    "mobilenetv3_large_100": "MobileNetV3-Large",
    "densenet121": "DenseNet-121",
    # study B networks
    "vgg16": "VGG-16",
    "inception_v3": "Inception-v3",
    "resnet50": "ResNet-50",
    "inception_resnet_v2": "Inception-ResNet-v2",
    "basic_cnn": "Basic CNN",
    "ensemble": "Ensemble (soft voting)",
    "radiomics": "Radiomics",
    # segmentation architectures
    "unet": "U-Net",
    "deeplabv3": "DeepLabV3",
    # study A formats
    "full": "Full slice",
    "seg112": "Seg-112 crop",
    "seg224": "Seg-224 crop",
    # study A classes (the paper's abbreviations kept where it uses them)
    "NPC": "NPC",
    "LH": "LH",
    "lymphoma": "Lymphoma",
    "chordoma": "Chordoma",
    "craniopharyngioma": "Craniopharyngioma",
    "normal": "Normal",
    # study B preprocessing and ROI kinds
    "clahe": "CLAHE",
    "raw": "no CLAHE",
    "tumour": "Tumour",
    "node": "Lymph node",
}


def display(name) -> str:
    """The reader's name of an identifier (a network, format, class ...); a name not in
    :data:`DISPLAY_NAMES` is shown as it is. ``ablation/vgg16`` -> "VGG-16 (ablation)"; a contrast
    "seg112 - full" -> "Seg-112 crop - Full slice"."""
    name = str(name)
    if name in DISPLAY_NAMES:
        return DISPLAY_NAMES[name]
    if name.startswith("ablation/"):
        return f"{display(name.split('/', 1)[1])} (ablation)"
    if " - " in name:
        return " - ".join(display(p) for p in name.split(" - "))
    return name


STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 10,
    "legend.framealpha": 0.9,
    "image.cmap": HEATMAP,
    "savefig.dpi": PNG_DPI,
    "pdf.fonttype": 42,  # TrueType in the PDF: text stays text (editable, searchable)
    "svg.fonttype": "none",
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (rules run without a display), with
    :data:`STYLE` and the Okabe-Ito colour cycle set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler

    plt.rcParams.update(STYLE)
    plt.rcParams["axes.prop_cycle"] = cycler(color=list(CATEGORY))
    return plt


def colour(i: int) -> str:
    """The i-th category colour (Okabe-Ito, cycling)."""
    return CATEGORY[i % len(CATEGORY)]


def vector_twin(path: str | os.PathLike) -> Path:
    """The PDF written beside a figure's PNG (``roc.png`` -> ``roc.pdf``)."""
    return Path(path).with_suffix(".pdf")


def save_figure(fig, path: str | os.PathLike) -> None:
    """Save a figure as a PNG of :data:`PNG_DPI` and its vector PDF twin (:func:`vector_twin`),
    each atomically, and free it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_paths(path, vector_twin(path)) as (png, pdf):
            # tight: the saved area holds every artist (a legend outside the axes is never cut off)
            fig.savefig(png, dpi=PNG_DPI, format="png", bbox_inches="tight", pad_inches=0.05)
            fig.savefig(pdf, format="pdf", bbox_inches="tight", pad_inches=0.05)
    finally:
        plt.close(fig)


def colourbar(fig, mappable, ax, label: str):
    """A colour bar beside ``ax`` (one or several axes) with its quantity named."""
    bar = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(label)
    return bar
