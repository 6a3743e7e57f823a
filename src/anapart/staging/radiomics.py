"""Study B, Methods "Radiomics": the baseline the ensemble is compared with (Table 5). IBSI-style
2-D features (pyradiomics) of each ROI at its native resolution and pixel spacing (the native store
of :mod:`anapart.staging.patches`, on the raw image by default: resizing every ROI to one patch size
would erase absolute size, a T-stage criterion, and the scale of texture), a scaled classifier
chosen by name from :data:`CLASSIFIERS`, its C tuned by patient-grouped cross-validation on the
training patches only over a grid whose best value must not sit at an edge (logged and recorded).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from anapart.io.npy import open_npy
from anapart.staging.patches import attach_index

log = logging.getLogger("anapart.radiomics")

# ``staging.radiomics.classifier`` -> an unfitted scikit-learn classifier with a ``C`` and probabilities.
CLASSIFIERS: dict[str, Callable[[], object]] = {
    "logistic": lambda: LogisticRegression(max_iter=5000),
    "svm": lambda: SVC(probability=True, kernel="rbf", random_state=0),
}


def radiomics_features(images, masks, settings: dict, spacings=None, resample=None) -> pd.DataFrame:
    """IBSI-style 2-D features (pyradiomics) of each ROI inside its mask.

    ``spacings``: per ROI (row, col) pixel spacing in mm (None: 1 mm), so shape features are in mm
    and mm^2; ``resample``: a common (row, col) grid in mm that pyradiomics resamples every ROI to
    (when the cohort's spacings differ), so textures are read at one scale."""
    import SimpleITK as sitk
    from radiomics import featureextractor, setVerbosity

    setVerbosity(40)  # warnings and up: pyradiomics is chatty
    extra = {"resampledPixelSpacing": [float(resample[1]), float(resample[0]), 0]} if resample is not None else {}
    ext = featureextractor.RadiomicsFeatureExtractor(binWidth=float(settings["bin_width"]), force2D=True,
                                                     force2Ddimension=0, label=1, **extra)
    ext.disableAllFeatures()
    for fc in settings["feature_classes"]:
        ext.enableFeatureClassByName(fc)
    rows = []
    for i, (img, m) in enumerate(zip(images, masks)):
        im = sitk.GetImageFromArray(np.asarray(img, np.float32)[None])
        sp = (1.0, 1.0) if spacings is None else spacings[i]
        im.SetSpacing((float(sp[1]), float(sp[0]), 1.0))  # SimpleITK: x (columns), y (rows), z
        mk = sitk.GetImageFromArray((np.asarray(m) > 0).astype(np.uint8)[None])
        mk.CopyInformation(im)
        feats = ext.execute(im, mk)
        rows.append({k: float(v) for k, v in feats.items() if not k.startswith("diagnostics")})
    return pd.DataFrame(rows)


def native_rois(patches_dir, index: pd.DataFrame, slice_ids) -> tuple[list, list, list]:
    """Images, masks and (row, col) spacings of ``slice_ids`` from the native store."""
    patches_dir = Path(patches_dir)
    flat_img = open_npy(patches_dir / "native_images.npy")
    flat_msk = open_npy(patches_dir / "native_masks.npy")
    images, masks, spacings = [], [], []
    for sid in slice_ids:
        r = index.loc[sid]
        o, side = int(r["native_offset"]), int(r["side"])
        images.append(np.asarray(flat_img[o:o + side * side], np.float32).reshape(side, side))
        masks.append(np.asarray(flat_msk[o:o + side * side]).reshape(side, side))
        spacings.append((float(r["spacing_row_mm"]), float(r["spacing_col_mm"])))
    return images, masks, spacings


def build_classifier(name: str):
    """A scaled pipeline around the classifier ``staging.radiomics.classifier`` names."""
    if name not in CLASSIFIERS:
        raise ValueError(f"staging.radiomics.classifier: unknown classifier '{name}' (known: {', '.join(CLASSIFIERS)})")
    return make_pipeline(StandardScaler(), CLASSIFIERS[name]())


def radiomics_baseline(patches_dir, train_csv, test_csv, index_csv, classes, settings: dict) -> tuple[pd.DataFrame, dict]:
    """Features of the native-resolution ROIs of the train and test patches; the classifier's C is
    chosen by patient-grouped cross-validation on the training patches only; test probabilities out."""
    index = pd.read_csv(index_csv).set_index("slice_id")
    train, test = pd.read_csv(train_csv), pd.read_csv(test_csv)
    spacing = index[["spacing_row_mm", "spacing_col_mm"]].to_numpy(float)
    # the common grid is the training patches' median spacing: nothing is set from test patients
    train_spacing = index.loc[train["slice_id"], ["spacing_row_mm", "spacing_col_mm"]].to_numpy(float)
    common = np.median(train_spacing, axis=0)
    resample = common if np.ptp(spacing, axis=0).max() > 1e-3 * common.max() else None

    def feats(lst):
        images, masks, spacings = native_rois(patches_dir, index, lst["slice_id"])
        return radiomics_features(images, masks, settings, spacings, resample)

    xtr, xte = feats(train), feats(test)
    keep = [c for c in xtr.columns if np.isfinite(xtr[c]).all() and xtr[c].std() > 0]
    pipe = build_classifier(settings["classifier"])
    groups = index.loc[train["slice_id"], "patient"].to_numpy()
    folds = min(int(settings["cv_folds"]), len(set(groups)))
    name = pipe.steps[-1][0]
    grid = sorted(float(c) for c in settings["C"])
    search = GridSearchCV(pipe, {f"{name}__C": grid}, cv=GroupKFold(n_splits=folds), scoring="accuracy")
    search.fit(xtr[keep].to_numpy(), train["label"].to_numpy(), groups=groups)
    probs = search.predict_proba(xte[keep].to_numpy())
    order = list(search.classes_)
    pred = pd.DataFrame({"slice_id": test["slice_id"], "label": test["label"]})
    for c in classes:
        pred[f"p_{c}"] = probs[:, order.index(c)] if c in order else 0.0
    best = search.best_params_[f"{name}__C"]
    at_edge = len(grid) > 1 and best in (grid[0], grid[-1])
    info = {"n_features": len(keep), "best_C": best, "C_grid": grid, "best_C_at_grid_edge": bool(at_edge),
            "cv_accuracy": float(search.best_score_),
            "cv_accuracy_by_C": [round(float(v), 4) for v in search.cv_results_["mean_test_score"]],
            "cv_folds": folds, "classifier": settings["classifier"], "resolution": "native ROI windows",
            "pixel_spacing_mm": {"min": spacing.min(0).round(4).tolist(), "max": spacing.max(0).round(4).tolist()},
            "resampled_to_mm": None if resample is None else [round(float(v), 4) for v in resample]}
    if at_edge:
        log.warning("radiomics: the best C %g is at the edge of staging.radiomics.C %s: widen the grid", best, grid)
    log.info("radiomics: %s", info)
    return attach_index(pred, index_csv), info
