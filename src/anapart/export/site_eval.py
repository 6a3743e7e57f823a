"""``anapart evaluate``: the workflow's own metrics on another site's labels, as numbers and figures
that name no patient (they can be sent back to the study team).

The aAUC, its patient-bootstrap interval, per-class AUC and the class report are
:func:`anapart.metrics.evaluate.evaluate_predictions` with the package's evaluate settings (the
numbers ``classify_eval`` writes for the workflow's external cohort); calibration is
:func:`anapart.metrics.calibration.calibration_metrics`. Added for a site with few patients: each
class's AUC with a patient-bootstrap interval and with DeLong's interval on the patients' mean
probabilities (the patient, not the correlated slice, is the unit), and each class's per-patient
sensitivity and specificity with exact (Clopper-Pearson) intervals.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from anapart.cohort.split import patient_groups
from anapart.export.archive import PRIVATE_FILES
from anapart.io.errors import IngestError
from anapart.io.files import atomic_path
from anapart.metrics.calibration import calibration_metrics, reliability_figure, top_label
from anapart.metrics.evaluate import (argmax_class, auc_weighted, evaluate_predictions, patient_weights,
                                      percentile_ci, probabilities)
from anapart.metrics.intervals import auc_delong, proportion
from anapart.metrics.roc_figures import roc_figure

DEFAULTS = {"n_boot": 200, "ci_level": 0.95, "seed": 0, "calibration_bins": 10}  # as config/config.yaml's evaluate


def read_predictions(path) -> tuple[pd.DataFrame, list[str], dict]:
    """predictions.csv of ``anapart predict`` and its run.json (classes, the package's evaluate settings)."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: no such predictions file")
    pred = pd.read_csv(path)
    if not {"slice_id", "patient"} <= set(pred.columns):
        raise IngestError(f"{path}: not a predictions.csv of anapart predict (needs slice_id, patient, p_<class>)")
    cols = [c[2:] for c in pred.columns if c.startswith("p_")]
    run_json = path.parent / "run.json"
    run = json.loads(run_json.read_text()) if run_json.is_file() else {}
    classes = list(run.get("classes") or cols)
    if cols != classes:
        raise IngestError(f"{path}: probability columns {cols} do not match the package's classes {classes} ({run_json})")
    return pred, classes, run


def read_labels(path, pred: pd.DataFrame, classes, private_dir=None) -> pd.DataFrame:
    """The site's labels as ``slice_id, label``. Accepted: ``slice_id,label``; ``patient,label`` (the
    pseudonym: every slice of the patient); or the workflow's labels table ``patient_id,label[,instance]``
    with ``private_dir`` (where predict wrote the pseudonym table)."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: no such labels file")
    lab = pd.read_csv(path, dtype=str, keep_default_na=False)
    lab.columns = [c.strip() for c in lab.columns]
    if "label" not in lab.columns:
        raise IngestError(f"{path}: labels need a label column; has {list(lab.columns)}")
    lab["label"] = lab["label"].str.strip()
    unknown = sorted(set(lab["label"]) - set(classes))
    if unknown:
        raise IngestError(f"{path}: the labels' classes {sorted(set(lab['label']))} do not match the package's "
                          f"classes {list(classes)} (not in the package: {unknown})")
    if "slice_id" in lab.columns:
        return lab[["slice_id", "label"]]
    if "patient" in lab.columns:
        return pred[["slice_id", "patient"]].merge(lab[["patient", "label"]], on="patient")[["slice_id", "label"]]
    if "patient_id" in lab.columns:
        if private_dir is None:
            raise IngestError(f"{path}: labels by patient_id need --private DIR (the folder predict wrote "
                              f"{PRIVATE_FILES[1]} to)")
        table = Path(private_dir) / PRIVATE_FILES[1]
        if not table.is_file():
            raise IngestError(f"{table}: no such file (run predict with --private {private_dir})")
        sl = pd.read_csv(table, dtype={"patient_id": str})
        lab["patient_id"] = lab["patient_id"].str.strip()
        inst = lab["instance"].str.strip() if "instance" in lab.columns else pd.Series("", index=lab.index)
        whole = sl.merge(lab.loc[inst == "", ["patient_id", "label"]], on="patient_id")
        one = sl.assign(instance=sl["instance"].astype(str)).merge(
            lab.loc[inst != ""].assign(instance=inst[inst != ""]), on=["patient_id", "instance"])
        out = pd.concat([one[["slice_id", "label"]], whole[["slice_id", "label"]]])
        return out.drop_duplicates("slice_id", keep="first")  # an explicit instance row wins, as in the workflow
    raise IngestError(f"{path}: labels need slice_id, patient or patient_id beside label; has {list(lab.columns)}")


def class_intervals(labelled: pd.DataFrame, classes, strata, n_boot: int, seed: int, level: float) -> dict:
    """Per class: the slice AUC's patient-bootstrap interval (the aAUC's resamples) and DeLong's interval
    on the patients' mean probabilities; per-patient sensitivity and specificity with exact intervals."""
    probs = probabilities(labelled, classes)
    w = patient_weights(labelled["patient"].to_numpy(), strata, n_boot, seed)
    per_patient = labelled.groupby("patient")[[f"p_{c}" for c in classes]].mean()
    truth = strata.loc[per_patient.index].to_numpy()
    called = argmax_class(per_patient.to_numpy(), classes)
    out = {}
    for j, c in enumerate(classes):
        boot = auc_weighted(labelled["label"].to_numpy() == c, probs[:, j], w)
        boot = boot[~np.isnan(boot)]
        lo, hi = percentile_ci(boot, level) if len(boot) else (float("nan"), float("nan"))
        pos = truth == c
        counts = {"n_positive": int(pos.sum()), "n_negative": int((~pos).sum())}
        if min(counts.values()) >= 2:
            delong = auc_delong(pos, per_patient[f"p_{c}"].to_numpy(), level)
        else:  # DeLong's variance needs two patients on each side: no interval rather than a wrong one
            score = per_patient[f"p_{c}"].to_numpy()
            delong = {"value": float(auc_weighted(pos, score, np.ones((1, len(score))))[0]), "se": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
                      "interval": "none: fewer than two patients of the class or of the rest"}
        out[c] = {"auc_bootstrap_ci": [lo, hi], "n_boot": int(len(boot)), "patients": {**delong, **counts},
                  "sensitivity_patients": proportion(int((pos & (called == c)).sum()), int(pos.sum()), level),
                  "specificity_patients": proportion(int((~pos & (called != c)).sum()), int((~pos).sum()), level)}
    return out


def evaluate_site(predictions_csv, labels_csv, out_dir, *, private_dir=None, settings: dict | None = None) -> dict:
    """Score predictions against the site's labels; write summary.json, roc and reliability figures (PNG + PDF)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise IngestError(f"{out_dir}: output folder exists and is not empty; give a new or empty folder")
    pred, classes, run = read_predictions(predictions_csv)
    labels = read_labels(labels_csv, pred, classes, private_dir)
    ev = {**DEFAULTS, **(run.get("evaluate") or {}), **(settings or {})}
    labelled = pred.merge(labels, on="slice_id", how="inner")
    if labelled.empty:
        raise IngestError(f"{labels_csv}: no label matches a slice of {predictions_csv} (same salt as predict?)")
    manifest = labelled[["slice_id", "patient", "label"]]
    strata = patient_groups(manifest)
    m = evaluate_predictions(labelled, manifest, classes, strata=strata, n_boot=int(ev["n_boot"]), seed=int(ev["seed"]),
                             level=float(ev["ci_level"]))
    m.update(calibration_metrics(labelled["label"], probabilities(labelled, classes), classes,
                                 n_bins=int(ev["calibration_bins"])))
    summary = {"package_sha256": run.get("package_sha256"), "models": run.get("models"), "classes": classes,
               "slices_without_label": int(len(pred) - len(labelled)), **m,
               "per_class": class_intervals(labelled, classes, strata, int(ev["n_boot"]), int(ev["seed"]),
                                            float(ev["ci_level"])),
               "chance": {"auc": 0.5, "balanced_accuracy": m["balanced_accuracy_chance"]},
               "settings": {k: ev[k] for k in DEFAULTS}}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=True) + "\n")
        roc_figure(labelled, classes, f"site labels: aAUC {m['aauc']:.3f}", tmp / "roc.png",
                   patients=labelled["patient"], strata=strata, n_boot=int(ev["n_boot"]), seed=int(ev["seed"]),
                   level=float(ev["ci_level"]))
        reliability_figure({"site labels": {"package": top_label(labelled["label"], probabilities(labelled, classes),
                                                                   classes)}},
                           int(ev["calibration_bins"]), tmp / "reliability.png",
                           xlabel="confidence (top class)", ylabel="observed accuracy")
    return summary
