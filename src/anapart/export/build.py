"""A model package from the workflow's outputs (rule ``package``): weights as safetensors, what
preprocessing needs, the shareable config, the model card, the lock file, a sha256 manifest.

The segmentation model is the one the workflow cropped with (``seg/selected.json``); the fallback
centre of a slice with an empty predicted region is the training prior the workflow's external crops
use (:func:`anapart.partition.crop.prior_center` on the training cohort), stored as two numbers so no
training image or mask leaves the study.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import yaml

from anapart import __version__
from anapart.cohort.pseudonyms import EXTERNAL_PREFIX
from anapart.export.archive import DESCRIPTOR, safetensors_bytes, write_package
from anapart.export.card import model_card
from anapart.io.store import load_store
from anapart.learn import training
from anapart.partition.classify import model_from_meta
from anapart.partition.crop import prior_center
from anapart.partition.segment import build_model

# Config keys that name files or folders of the study: never in a package.
PATH_KEYS = {"dicom_dir", "nifti_dir", "labels", "mask_dir", "roi_dir", "roi_boxes", "reviewers_dir"}
SEG_BATCH = 32  # the batch the workflow's crops job segments with (workflow/scripts/crops.py)


def shareable_config(cfg):
    """The merged config with no salt and no path: salts are dropped, path keys become null, and any
    other string that looks like a path (has a '/' or is absolute) becomes ``<path>``."""
    if isinstance(cfg, dict):
        return {k: (None if k in PATH_KEYS and isinstance(v, str) else shareable_config(v))
                for k, v in cfg.items() if k != "pseudonym_salt"}
    if isinstance(cfg, list):
        return [shareable_config(v) for v in cfg]
    if isinstance(cfg, str) and ("/" in cfg or os.path.isabs(cfg)):
        return "<path>"
    return cfg


def resolve_choice(cfg: dict) -> dict:
    """``package.{net, format, fraction}`` with their defaults: the first of classify.nets, the
    first format of the primary contrast, the largest training fraction."""
    pk = cfg["package"]
    return {"net": pk["net"] or cfg["classify"]["nets"][0],
            "format": pk["format"] or cfg["stats"]["primary"]["contrast"].split(" - ")[0].strip(),
            "fraction": int(pk["fraction"] or max(int(f) for f in cfg["split"]["fractions"]))}


def choice_problems(cfg: dict) -> list[str]:
    """A package setting the run has no model for, one line each (checked when the workflow starts)."""
    c = resolve_choice(cfg)
    known = {"net": cfg["classify"]["nets"], "format": cfg["classify"]["formats"],
             "fraction": [int(f) for f in cfg["split"]["fractions"]]}
    where = {"net": "classify.nets", "format": "classify.formats", "fraction": "split.fractions"}
    return [f"package.{k}: {c[k]!r} is not one of {where[k]} {known[k]}" for k in known if c[k] not in known[k]]


def _clean_meta(meta: dict) -> dict:
    """A model's meta without paths of the study (the training list's file name)."""
    return {k: v for k, v in meta.items() if k not in ("train_list", "encoder_weights")}


def cohort_counts(slice_csv, manifest: pd.DataFrame, patients: pd.DataFrame) -> dict:
    """Patients per class (the patient's stratum in the split) and slices of a split list."""
    sl = pd.read_csv(slice_csv)
    pts = set(sl["slice_id"].map(manifest.set_index("slice_id")["patient"]))
    groups = patients.set_index("patient").loc[sorted(pts), "group"]
    return {"patients": int(len(pts)), "slices": int(len(sl)),
            "patients_per_class": {str(k): int(v) for k, v in groups.value_counts().sort_index().items()}}


def build_package(out_zip, *, config: dict, seg_model, classifier_model, metrics_json, cohort_dir, patients_csv,
                  train_csv, test_csv, check_json, lock_file, config_files=()) -> dict:
    """Write the package of one classifier (``resolve_choice``) and its segmentation model; returns the
    descriptor (package.json)."""
    choice = resolve_choice(config)
    seg, seg_meta = training.load_model(seg_model, build_model)  # the study's own files (pickles): read here only
    clf, clf_meta = training.load_model(classifier_model, model_from_meta)
    if clf_meta["format"] != choice["format"] or clf_meta["net"] != choice["net"]:
        raise ValueError(f"{classifier_model}: holds {clf_meta['net']} on {clf_meta['format']}, the package "
                         f"asks for {choice['net']} on {choice['format']}")
    manifest, _, masks = load_store(cohort_dir)
    patients = pd.read_csv(patients_csv)
    field = int(masks.shape[-1])
    prior = prior_center(manifest, masks, patients, field)
    lock = Path(lock_file).read_bytes()
    c = config["cohort"]
    clf_name = f"weights/classifier_{choice['net']}_{choice['format']}_f{choice['fraction']}.safetensors"
    descriptor = {
        "anapart_version": __version__,
        "requirements_lock_sha256": hashlib.sha256(lock).hexdigest(),
        "classes": list(config["classes"]),
        "synthetic": c["source"] == "synthetic",
        "preprocessing": {
            "series": c["series"], "frames": c["frames"], "mask_names": c["mask_names"],
            "nifti": c.get("nifti") or {}, "field": field, "intensity_percentiles": list(c["intensity_percentiles"]),
            "crop_sizes": dict(config["crop"]["sizes"]), "pad_value": float(config["crop"]["pad_value"]),
            "pseudonym_prefix": EXTERNAL_PREFIX,
        },
        "segmentation": {"weights": "weights/segmentation.safetensors", "meta": _clean_meta(seg_meta),
                         "threshold": float(config["segment"]["threshold"]), "batch_size": SEG_BATCH,
                         "prior_center": [float(v) for v in prior]},
        "classifiers": [{**choice, "weights": clf_name, "meta": _clean_meta(clf_meta),
                         "cam_layer": config["cam"]["target_layers"].get(choice["net"])}],
        "evaluate": dict(config["evaluate"]),
    }
    metrics = json.loads(Path(metrics_json).read_text())
    counts = {"training": cohort_counts(train_csv, manifest, patients),
              "test": cohort_counts(test_csv, manifest, patients)}
    check = json.loads(Path(check_json).read_text())
    card = model_card(descriptor, counts, check, metrics, config_files=config_files,
                      intended_use=config["package"]["intended_use"])
    files = {
        DESCRIPTOR: (json.dumps(descriptor, indent=2) + "\n").encode(),
        "config.yaml": yaml.safe_dump(shareable_config(config), sort_keys=False).encode(),
        "MODEL_CARD.md": card.encode(),
        "requirements.lock": lock,
        "weights/segmentation.safetensors": safetensors_bytes(seg.state_dict()),
        clf_name: safetensors_bytes(clf.state_dict()),
    }
    write_package(out_zip, files)
    return descriptor
