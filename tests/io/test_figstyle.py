"""The one figure style (anapart.io.figstyle): every figure a >= 300 dpi PNG with a vector PDF twin,
declared as a rule output; no rainbow map anywhere; one display-name mapping."""

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from anapart.io import figstyle
from support.common import REPO

SRC = REPO / "src" / "anapart"


def _png_dpi(path) -> float:
    with Image.open(path) as im:
        return float(min(im.info["dpi"]))


def _pdf_ok(path) -> bool:
    return path.read_bytes()[:5] == b"%PDF-" and path.stat().st_size > 500


def assert_journal_figure(png):
    """The PNG has >= 300 dpi and its vector PDF lies beside it."""
    png = pytest.importorskip("pathlib").Path(png)
    assert png.exists(), png
    assert _png_dpi(png) >= figstyle.PNG_DPI - 0.5, (png, _png_dpi(png))
    pdf = png.with_suffix(".pdf")
    assert pdf.exists() and _pdf_ok(pdf), pdf


def test_save_figure_writes_a_300_dpi_png_and_a_pdf_twin(tmp_path):
    plt = figstyle.pyplot()
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    figstyle.save_figure(fig, tmp_path / "f.png")
    assert_journal_figure(tmp_path / "f.png")
    with Image.open(tmp_path / "f.png") as im:  # about 2 in at 300 dpi (trimmed to what is drawn)
        assert 500 <= min(im.size) and max(im.size) <= 640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png"]  # no temporary left


def test_save_figure_leaves_nothing_half_written_when_drawing_fails(tmp_path):
    plt = figstyle.pyplot()
    fig, ax = plt.subplots()
    ax.text(0.5, 0.5, r"$\undefinedcommand$")  # mathtext fails at draw time
    with pytest.raises(ValueError):
        figstyle.save_figure(fig, tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []


def test_style_fonts_are_at_least_8_pt_and_the_colour_cycle_is_okabe_ito():
    plt = figstyle.pyplot()
    for key in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
                "legend.fontsize"):
        assert float(plt.rcParams[key]) >= figstyle.MIN_FONT_PT, key
    cycle = [c["color"].upper() for c in plt.rcParams["axes.prop_cycle"]]
    assert set(cycle) == {c.upper() for c in figstyle.OKABE_ITO}
    assert plt.rcParams["image.cmap"] in ("viridis", "cividis", "inferno", "magma", "plasma")


def test_no_rainbow_or_tab10_colormap_anywhere_in_the_code():
    """jet (and its kin) is not perceptually uniform and hides structure; tab10 red/green merge
    under deuteranopia. Nothing under src/ or workflow/ may name them."""
    bad = re.compile(r"""["'](jet|rainbow|hsv|gist_rainbow|nipy_spectral|tab10)["']|cm\.jet|\bC\d\b["']""")
    hits = []
    for root in (SRC, REPO / "workflow"):
        for p in root.rglob("*"):
            if p.suffix in (".py", ".smk") and p.is_file():
                for n, line in enumerate(p.read_text().splitlines(), 1):
                    if bad.search(line):
                        hits.append(f"{p.relative_to(REPO)}:{n}: {line.strip()}")
    assert hits == []


def test_every_figure_is_saved_through_the_style_module():
    """One save helper: no module but figstyle calls savefig or sets its own dpi."""
    hits = [str(p.relative_to(REPO)) for p in SRC.rglob("*.py")
            if p.name != "figstyle.py" and re.search(r"\.savefig\(|dpi\s*=", p.read_text())]
    assert hits == []


def test_every_report_png_has_its_pdf_declared_in_the_same_rule():
    """A figure in the report is a PNG; its vector twin is a declared output of the same rule."""
    missing = []
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=\s*(?:rule|use rule) )", smk.read_text()):
            outputs = block.split("output:", 1)[1] if "output:" in block else ""
            outputs = re.split(r"\n\s+(?:log|benchmark|params|conda|resources|script|threads):", outputs)[0]
            for png in re.findall(r"""f?["']([^"']+)\.png["']""", outputs):
                if f"{png}.pdf" not in outputs:
                    missing.append(f"{smk.name}: {png}.png")
    assert missing == []


def test_display_names_cover_every_configured_network_format_and_class():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    names = set(cfg["classify"]["nets"]) | set(cfg["classify"]["formats"]) | set(cfg["classes"])
    names |= set(cfg["staging"]["models"]) | {"basic_cnn", "ensemble", "clahe", "raw", "tumour", "node"}
    names |= set((paper.get("classify") or {}).get("nets", [])) | set((paper.get("staging") or {}).get("models", []))
    missing = sorted(n for n in names if n not in figstyle.DISPLAY_NAMES)
    assert missing == []
    assert figstyle.display("mobilenetv3_large_100") == "MobileNetV3-Large"
    assert figstyle.display("efficientnet_b0") == "EfficientNet-B0"
    assert figstyle.display("full") == "Full slice" and figstyle.display("seg112") == "Seg-112 crop"
    assert figstyle.display("seg112 - full") == "Seg-112 crop - Full slice"
    assert figstyle.display("ablation/vgg16") == "VGG-16 (ablation)"
    assert figstyle.display("unknown_thing") == "unknown_thing"


def _texts(fig_path_pdf) -> str:
    return fig_path_pdf.read_bytes().decode("latin-1")


def _pred(rng, classes, n_pat=8, per=3):
    rows = []
    for p in range(n_pat):
        label = classes[p % len(classes)]
        for s in range(per):
            probs = rng.dirichlet(np.ones(len(classes)))
            probs[classes.index(label)] += 0.5
            probs /= probs.sum()
            rows.append({"slice_id": f"P{p}_{s}", "label": label, "patient": f"P{p}",
                         **{f"p_{c}": v for c, v in zip(classes, probs)}})
    return pd.DataFrame(rows)


def test_roc_figures_state_their_unit_and_auc_cis(tmp_path):
    from anapart.metrics.roc_figures import class_auc_cis, roc_figure, roc_panels, unit_line

    rng = np.random.default_rng(0)
    classes = ["NPC", "LH", "normal"]
    pred = _pred(rng, classes)
    cis = class_auc_cis(pred, classes, pred["patient"], n_boot=50, seed=1)
    for c, (auc, lo, hi) in cis.items():
        assert 0 <= lo <= auc <= hi <= 1, c
    assert unit_line(pred, pred["patient"]) == "per slice: 24 slices, 8 patients"
    roc_figure(pred, classes, "t", tmp_path / "roc.png", patients=pred["patient"], n_boot=50)
    assert_journal_figure(tmp_path / "roc.png")
    models = {(n, f): pred for n in ("mobilenetv3_large_100", "efficientnet_b0") for f in ("full", "seg112")}
    roc_panels(models, classes, ["mobilenetv3_large_100", "efficientnet_b0"], ["full", "seg112"], 25,
               tmp_path / "roc_f25.png", patient_of=pred.set_index("slice_id")["patient"], n_boot=20)
    assert_journal_figure(tmp_path / "roc_f25.png")


def test_fig6_whiskers_stay_in_0_1_and_the_sd_ratio_is_computed(tmp_path):
    from anapart.metrics.stats import bar_chart, sd_ratio_text

    groups = pd.DataFrame({"fmt": ["full", "seg112"], "frac": [100, 100], "mean": [0.97, 0.6],
                           "sd": [0.1, 0.3], "aauc_sd_networks": [0.05, 0.1]})
    # 0.1 / 0.05 = 2.0 and 0.3 / 0.1 = 3.0: from the table, not a constant
    assert "2.0-3.0" in sd_ratio_text(groups)
    assert "not defined" in sd_ratio_text(groups.assign(aauc_sd_networks=0.0))
    plt = figstyle.pyplot()
    bar_chart(groups, ["full", "seg112"], [100], tmp_path / "bars.png")
    assert_journal_figure(tmp_path / "bars.png")
    del plt


def test_staging_figures_are_journal_figures(tmp_path):
    from anapart.staging.ensemble import confusion_figure, confusion_grid
    from anapart.staging.models import history_figure

    m = {"confusion": [[5, 1], [2, 4]], "classes": ["III", "IVa"], "accuracy": 0.75}
    confusion_figure(m, "t", tmp_path / "c.png")
    confusion_grid({"vgg16": m, "ensemble": m}, tmp_path / "g.png")
    history_figure(pd.DataFrame({"epoch": [1, 2], "accuracy": [0.5, 0.6], "val_accuracy": [0.5, 0.55],
                                 "loss": [0.7, 0.6], "val_loss": [0.7, 0.65]}), "t", tmp_path / "h.png")
    for name in ("c", "g", "h"):
        assert_journal_figure(tmp_path / f"{name}.png")


def test_no_figure_sets_a_font_below_8_pt():
    small = re.compile(r"fontsize\s*=\s*[0-7](\.\d+)?\b|size\s*=\s*['\"](xx?-small|small)['\"]")
    hits = [f"{p.relative_to(REPO)}:{n}" for p in SRC.rglob("*.py")
            for n, line in enumerate(p.read_text().splitlines(), 1) if small.search(line)]
    assert hits == []


def test_external_and_reliability_figures_are_journal_figures(tmp_path):
    from anapart.metrics.calibration import reliability_figure
    from anapart.partition.external import external_figure

    table = pd.DataFrame({"net": ["a", "b", "a", "b"], "fmt": ["full", "full", "seg112", "seg112"],
                          "frac": [100] * 4, "aauc_internal": [0.9, 0.95, 0.99, 0.97],
                          "aauc_external": [0.7, 0.8, 0.98, 0.6]})
    external_figure(table, ["full", "seg112"], [100], tmp_path / "ext.png")
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.3, 1, 50)
    reliability_figure({"Full slice, internal, 100%": {"efficientnet_b0": (conf, rng.uniform(size=50) < conf)}}, 5,
                       tmp_path / "rel.png", xlabel="confidence", ylabel="accuracy")
    for name in ("ext", "rel"):
        assert_journal_figure(tmp_path / f"{name}.png")
