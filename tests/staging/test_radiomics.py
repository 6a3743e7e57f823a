"""Study B's radiomics baseline (anapart.staging.radiomics): features against numpy, the classifier registry."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from anapart.staging.radiomics import CLASSIFIERS, build_classifier, radiomics_features

SETTINGS = {"bin_width": 0.05, "feature_classes": ["firstorder", "shape2D"]}


def test_first_order_and_shape_features_match_numpy_inside_the_roi():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (2, 24, 24)).astype(np.float32)
    masks = np.zeros((2, 24, 24), np.uint8)
    masks[0, 4:12, 6:16] = 1
    masks[1, 10:20, 10:14] = 1
    f = radiomics_features(img, masks, SETTINGS)
    assert len(f) == 2 and not any(c.startswith("diagnostics") for c in f.columns)
    for i in range(2):
        inside = img[i][masks[i] > 0]
        assert f.loc[i, "original_firstorder_Mean"] == pytest.approx(inside.mean(), rel=1e-5)
        assert f.loc[i, "original_firstorder_Maximum"] == pytest.approx(inside.max(), rel=1e-5)
        assert f.loc[i, "original_shape2D_PixelSurface"] == masks[i].sum()
    assert not any("glcm" in c for c in f.columns)  # only the classes asked for


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_every_registered_classifier_is_scaled_and_gives_probabilities(name):
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(0, 1, (20, 3)), rng.normal(2, 1, (20, 3))] * 100  # large scale: the scaler matters
    y = np.array(["III"] * 20 + ["IVa"] * 20)
    pipe = build_classifier(name).fit(x, y)
    assert [s for s, _ in pipe.steps][0] == "standardscaler"
    p = pipe.predict_proba(x)
    assert p.shape == (40, 2) and np.allclose(p.sum(1), 1) and (pipe.predict(x) == y).mean() > 0.8


def test_logistic_is_scikit_learns_on_standardised_features():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 3, (30, 4)), np.array(["III", "IVa"] * 15)
    z = (x - x.mean(0)) / x.std(0)
    ours = build_classifier("logistic").fit(x, y).predict_proba(x)
    assert ours == pytest.approx(LogisticRegression(max_iter=5000).fit(z, y).predict_proba(z), abs=1e-6)


def test_an_unknown_classifier_names_the_key_and_the_choices():
    with pytest.raises(ValueError, match=r"staging.radiomics.classifier: unknown classifier 'forest' \(known: logistic, svm\)"):
        build_classifier("forest")


def _disk(side, radius):
    yy, xx = np.mgrid[:side, :side]
    return ((yy - side / 2) ** 2 + (xx - side / 2) ** 2 <= radius ** 2).astype(np.uint8)


def test_a_larger_roi_gives_larger_shape_features_in_mm():
    """Native resolution: a tumour twice the diameter has about 4x the area and 2x the diameter, and
    the same ROI on a 0.5 mm grid is a quarter of the mm^2 (a resize to one patch size hid both)."""
    small, large = _disk(40, 6), _disk(80, 12)
    img = [np.full(small.shape, 0.5, np.float32), np.full(large.shape, 0.5, np.float32)]
    f = radiomics_features(img, [small, large], SETTINGS, spacings=[(1.0, 1.0), (1.0, 1.0)])
    area = f["original_shape2D_PixelSurface"]
    assert area[0] == small.sum() and area[1] == large.sum() and 3.5 < area[1] / area[0] < 4.5
    assert f.loc[1, "original_shape2D_MaximumDiameter"] > 1.8 * f.loc[0, "original_shape2D_MaximumDiameter"]
    half = radiomics_features([img[1]], [large], SETTINGS, spacings=[(0.5, 0.5)])
    assert half.loc[0, "original_shape2D_MeshSurface"] == pytest.approx(f.loc[1, "original_shape2D_MeshSurface"] / 4)
    assert half.loc[0, "original_shape2D_MaximumDiameter"] == pytest.approx(
        f.loc[1, "original_shape2D_MaximumDiameter"] / 2)


def test_native_rois_are_read_back_from_the_flat_store(tmp_path):
    import pandas as pd

    from anapart.staging.radiomics import native_rois

    a, b = np.arange(9, dtype=np.float32).reshape(3, 3), np.ones((5, 5), np.float32)
    np.save(tmp_path / "native_images.npy", np.r_[a.ravel(), b.ravel()])
    np.save(tmp_path / "native_masks.npy", np.r_[np.ones(9, np.uint8), np.zeros(25, np.uint8)])
    index = pd.DataFrame({"slice_id": ["x", "y"], "native_offset": [0, 9], "side": [3, 5],
                          "spacing_row_mm": [0.5, 0.8], "spacing_col_mm": [0.5, 0.9]}).set_index("slice_id")
    images, masks, spacings = native_rois(tmp_path, index, ["y", "x"])
    assert np.array_equal(images[1], a) and np.array_equal(images[0], b) and masks[1].all() and not masks[0].any()
    assert spacings == [(0.8, 0.9), (0.5, 0.5)]
