"""Study B, Methods "Radiomics": the baseline the ensemble is compared with (Table 5). IBSI-style
2-D features (pyradiomics) of each patch inside its ROI, a scaled classifier chosen by name from
:data:`CLASSIFIERS`, its C tuned by patient-grouped cross-validation on the training patches only.
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

from anapart.staging.patches import attach_index

log = logging.getLogger("anapart.radiomics")

# ``staging.radiomics.classifier`` -> an unfitted scikit-learn classifier with a ``C`` and probabilities.
CLASSIFIERS: dict[str, Callable[[], object]] = {
    "logistic": lambda: LogisticRegression(max_iter=5000),
    "svm": lambda: SVC(probability=True, kernel="rbf", random_state=0),
}


def radiomics_features(images: np.ndarray, masks: np.ndarray, settings: dict) -> pd.DataFrame:
    """IBSI-style 2-D features (pyradiomics) of each patch inside its ROI mask."""
    import SimpleITK as sitk
    from radiomics import featureextractor, setVerbosity

    setVerbosity(40)  # warnings and up: pyradiomics is chatty
    ext = featureextractor.RadiomicsFeatureExtractor(binWidth=float(settings["bin_width"]), force2D=True,
                                                     force2Ddimension=0, label=1)
    ext.disableAllFeatures()
    for fc in settings["feature_classes"]:
        ext.enableFeatureClassByName(fc)
    rows = []
    for img, m in zip(images, masks):
        im = sitk.GetImageFromArray(np.asarray(img, np.float32)[None])
        mk = sitk.GetImageFromArray((np.asarray(m) > 0).astype(np.uint8)[None])
        mk.CopyInformation(im)
        feats = ext.execute(im, mk)
        rows.append({k: float(v) for k, v in feats.items() if not k.startswith("diagnostics")})
    return pd.DataFrame(rows)


def build_classifier(name: str):
    """A scaled pipeline around the classifier ``staging.radiomics.classifier`` names."""
    if name not in CLASSIFIERS:
        raise ValueError(f"staging.radiomics.classifier: unknown classifier '{name}' (known: {', '.join(CLASSIFIERS)})")
    return make_pipeline(StandardScaler(), CLASSIFIERS[name]())


def radiomics_baseline(patches_dir, train_csv, test_csv, index_csv, classes, settings: dict) -> tuple[pd.DataFrame, dict]:
    """Features on train and test patches; the classifier's C is chosen by patient-grouped
    cross-validation on the training patches only; test probabilities out."""
    patches_dir = Path(patches_dir)
    index = pd.read_csv(index_csv).set_index("slice_id")
    images = np.load(patches_dir / "images.npy", mmap_mode="r")
    masks = np.load(patches_dir / "masks.npy", mmap_mode="r")
    train, test = pd.read_csv(train_csv), pd.read_csv(test_csv)

    def feats(lst):
        rows = index.loc[lst["slice_id"], "row"].to_numpy()
        return radiomics_features(images[rows], masks[rows], settings)

    xtr, xte = feats(train), feats(test)
    keep = [c for c in xtr.columns if np.isfinite(xtr[c]).all() and xtr[c].std() > 0]
    pipe = build_classifier(settings["classifier"])
    groups = index.loc[train["slice_id"], "patient"].to_numpy()
    folds = min(int(settings["cv_folds"]), len(set(groups)))
    name = pipe.steps[-1][0]
    search = GridSearchCV(pipe, {f"{name}__C": [float(c) for c in settings["C"]]}, cv=GroupKFold(n_splits=folds),
                          scoring="accuracy")
    search.fit(xtr[keep].to_numpy(), train["label"].to_numpy(), groups=groups)
    probs = search.predict_proba(xte[keep].to_numpy())
    order = list(search.classes_)
    pred = pd.DataFrame({"slice_id": test["slice_id"], "label": test["label"]})
    for c in classes:
        pred[f"p_{c}"] = probs[:, order.index(c)] if c in order else 0.0
    info = {"n_features": len(keep), "best_C": search.best_params_[f"{name}__C"], "cv_accuracy": float(search.best_score_),
            "cv_folds": folds, "classifier": settings["classifier"]}
    log.info("radiomics: %s", info)
    return attach_index(pred, index_csv), info
