"""``anapart predict``: a package's models on a new cohort through the workflow's own code.

The same functions the workflow's external cohort goes through, in the same order: the preflight
(:func:`anapart.cohort.preflight.check_cohort`: the package's series rule and frames, every problem
at once), the slice store (:func:`anapart.io.store.build_store`: the package's field and intensity
scaling), the region (:func:`anapart.partition.segment.predict_regions`), the crops
(:func:`anapart.partition.crop.make_crops`, the package's training prior as fallback centre) and the
classifier (:func:`anapart.partition.classify.predict_probabilities`). Only the loading differs:
weights come from the verified package's safetensors, never from a pickle.

Outputs are keyed by pseudonyms made with the site's own salt (prefix E, as the workflow's external
cohort); the pseudonym -> PatientID table goes only to ``private_dir``, which must lie outside the
shareable folder. Both folders appear complete or not at all.

The console script (``anapart verify | predict | evaluate``, :func:`main`) is here too: one module
above study A keeps the import chain as short as the workflow's scripts'. A refused package or
cohort is one ``anapart: error: ...`` line (a cohort's problems: all of them), exit status 2, and
nothing written.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from anapart import __version__
from anapart.cohort.preflight import check_cohort
from anapart.cohort.problems import problems_message
from anapart.cohort.pseudonyms import resolve_salt
from anapart.cohort.series import SeriesRule
from anapart.export.archive import PRIVATE_FILES, Package, PackageError, open_package
from anapart.export.site_eval import evaluate_site
from anapart.io.dicom_scan import FrameRule
from anapart.io.errors import IngestError
from anapart.io.figstyle import CAM_MAP, pyplot
from anapart.io.files import atomic_paths
from anapart.io.nifti import Layout
from anapart.io.store import build_store, load_store
from anapart.learn.data import CropData
from anapart.learn.gradcam import gradcam, resize_maps, resolve_layer
from anapart.learn.training import resolve_device
from anapart.metrics.evaluate import argmax_class
from anapart.partition.classify import model_from_meta, predict_probabilities
from anapart.partition.crop import make_crops
from anapart.partition.segment import build_model, predict_regions

COHORT_KEYS = {"source", "dicom_dir", "nifti_dir", "labels", "mask_dir", "series", "frames", "mask_names", "nifti",
               "pseudonym_salt"}


@dataclass
class Cohort:
    """A cohort to predict: its folder, and optionally labels (they choose the slices, as in the
    workflow; their classes are never read into the outputs), masks, and the site's own series rule,
    frames, mask names or NIfTI layout where the package's do not fit the site's naming."""

    source: str  # dicom | nifti
    folder: Path
    labels: Path | None = None
    mask_dir: Path | None = None
    overrides: dict | None = None
    salt: str | None = None  # the cohort file's pseudonym_salt (env:/file: reference)


def read_cohort(path) -> Cohort:
    """A COHORT.yaml: the keys of the workflow's ``cohort.external`` (paths relative to the file)."""
    path = Path(path)
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise IngestError(f"{path}: cannot read the cohort file ({e})") from None
    if not isinstance(d, dict):
        raise IngestError(f"{path}: a cohort file is a mapping of keys ({', '.join(sorted(COHORT_KEYS))})")
    unknown = sorted(set(d) - COHORT_KEYS)
    if unknown:
        raise IngestError(f"{path}: unknown key(s) {unknown}; known: {sorted(COHORT_KEYS)}")
    source = d.get("source") or ("nifti" if d.get("nifti_dir") else "dicom")
    folder = d.get("nifti_dir") if source == "nifti" else d.get("dicom_dir")
    if source not in ("dicom", "nifti") or not folder:
        raise IngestError(f"{path}: give source dicom with dicom_dir, or source nifti with nifti_dir")

    def rel(p):
        return None if not p else (Path(p) if Path(p).is_absolute() else path.parent / p)

    over = {k: d[k] for k in ("series", "frames", "mask_names", "nifti") if d.get(k) is not None}
    return Cohort(source, rel(folder), rel(d.get("labels")), rel(d.get("mask_dir")), over, d.get("pseudonym_salt"))


def _stderr(msg: str) -> None:
    print(f"anapart predict: {msg}", file=sys.stderr, flush=True)


def _fresh(folder: Path, what: str) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise IngestError(f"{folder}: {what} folder exists and is not empty; give a new or empty folder")


def load_models(pkg: Package):
    """(segmentation model, its meta), [(classifier, meta, entry)] from the package's safetensors."""
    d = pkg.descriptor
    seg_meta = d["segmentation"]["meta"]
    seg = build_model(seg_meta)
    seg.load_state_dict(pkg.tensors(d["segmentation"]["weights"]))
    clfs = []
    for entry in d["classifiers"]:
        model = model_from_meta(entry["meta"])
        model.load_state_dict(pkg.tensors(entry["weights"]))
        clfs.append((model.eval(), entry["meta"], entry))
    return (seg.eval(), seg_meta), clfs


def predict_cohort(pkg: Package, cohort: Cohort, out_dir, *, salt: str, private_dir=None, cam: bool = False,
                   device: str = "auto", progress=_stderr) -> dict:
    """Predict ``cohort`` with the package; write predictions.csv, patients.csv, check.csv,
    crops_qc.csv, run.json (and cam/ overlays) to ``out_dir``; returns run.json's content."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    _fresh(out_dir, "output")
    if private_dir is not None:
        private_dir = Path(private_dir)
        _fresh(private_dir, "private")
        o, p = out_dir.resolve(), private_dir.resolve()
        if o == p or o in p.parents or p in o.parents:
            raise IngestError(f"{private_dir}: the private folder must lie outside the shareable output {out_dir}")
    dev = resolve_device(device)
    secret = resolve_salt(salt)
    d = pkg.descriptor
    pre, classes = d["preprocessing"], list(d["classes"])
    rules = {**{k: pre[k] for k in ("series", "frames", "mask_names", "nifti")}, **(cohort.overrides or {})}
    check = check_cohort(cohort.folder, cohort.labels, cohort.mask_dir, classes=classes, salt=secret,
                         series=SeriesRule.from_config(rules["series"], "series"),
                         frames=FrameRule.from_config(rules["frames"]), mask_names=rules["mask_names"],
                         prefix=pre["pseudonym_prefix"],
                         nifti_layout=Layout.from_config(rules["nifti"] or {}) if cohort.source == "nifti" else None)
    if check.problems:
        raise IngestError(f"{cohort.folder}: the package's preprocessing cannot take this cohort: "
                          + problems_message(check.problems))
    if not check.plans:
        raise IngestError(f"{cohort.folder}: no patient with a series the package's series rule selects "
                          f"({rules['series']})")
    progress(f"{len(check.plans)} patients, {sum(len(p.indices) for p in check.plans)} slices")
    (seg, seg_meta), clfs = load_models(pkg)
    with tempfile.TemporaryDirectory(prefix="anapart-predict-") as work:
        store = Path(work) / "cohort"
        build_store(check.plans, {k: store / f"{k}.{e}" for k, e in (("images", "npy"), ("masks", "npy"),
                                                                      ("manifest", "csv"), ("report", "json"))},
                    classes=classes, field=int(pre["field"]), percentiles=pre["intensity_percentiles"],
                    skipped=check.summary["files_skipped"], t_plan=time.perf_counter() - t0)
        manifest, images, _ = load_store(store)
        n, predicted, step = len(manifest), [], max(64, len(manifest) // 20)  # a line per 5% on long cohorts
        for r, c, area in predict_regions(seg, images, int(seg_meta["input_size"]), int(d["segmentation"]["batch_size"]),
                                          str(dev), float(d["segmentation"]["threshold"])):
            predicted.append((c, area))
            if (r + 1) % step == 0 or r + 1 == n:
                progress(f"segmented {r + 1}/{n} slices")
        formats = sorted({e["format"] for e in d["classifiers"]})
        crops = {f: {"images": Path(work) / "crops" / f / "images.npy", "index": Path(work) / "crops" / f / "index.csv"}
                 for f in formats}
        qc = make_crops(store, None, predicted, crops, Path(work) / "crops" / "qc.csv", formats=formats,
                        sizes=pre["crop_sizes"], pad_value=float(pre["pad_value"]), prior=d["segmentation"]["prior_center"])
        probs = []
        for k, (model, meta, entry) in enumerate(clfs):
            pred, _, _ = predict_probabilities(None, crops[entry["format"]]["images"].parent, manifest[["slice_id"]],
                                               device=str(dev), loaded=(model, meta))
            probs.append(pred[[f"p_{c}" for c in classes]].to_numpy())
            progress(f"classified {n} slices with {entry['net']} on {entry['format']} ({k + 1}/{len(clfs)})")
        p = np.mean(probs, axis=0)  # one classifier: its probabilities; several: the mean (soft vote)
        slices = pd.DataFrame({"slice_id": manifest["slice_id"], "patient": manifest["patient"],
                               "position": manifest["position"]})
        for j, c in enumerate(classes):
            slices[f"p_{c}"] = p[:, j]
        slices["predicted"] = argmax_class(p, classes)
        patients = slices.groupby("patient", sort=True)[[f"p_{c}" for c in classes]].mean()
        patients.insert(0, "n_slices", slices.groupby("patient").size())
        patients["predicted"] = argmax_class(patients[[f"p_{c}" for c in classes]].to_numpy(), classes)
        run = {"package_sha256": pkg.digest, "anapart_version": __version__, "classes": classes,
               "models": [{k: e[k] for k in ("net", "format", "fraction")} for e in d["classifiers"]],
               "synthetic_package": bool(d["synthetic"]), "patients": int(len(patients)), "slices": int(n),
               "labels_chose_slices": cohort.labels is not None, "fallback_slices": int(qc["fallback"].sum()),
               "device": dev.type, "evaluate": d["evaluate"], "seconds": None}
        targets = [out_dir] + ([private_dir] if private_dir is not None else [])
        with atomic_paths(*targets) as tmps:
            out = tmps[0]
            out.mkdir(parents=True)
            slices.to_csv(out / "predictions.csv", index=False, lineterminator="\n")
            patients.reset_index().to_csv(out / "patients.csv", index=False, lineterminator="\n")
            check.table.to_csv(out / "check.csv", index=False, lineterminator="\n")
            qc.drop(columns=[c for c in qc.columns if c.startswith("true_") or c == "centroid_error_px"]).to_csv(
                out / "crops_qc.csv", index=False, lineterminator="\n")
            if cam:
                write_cams(clfs[0], crops, slices, classes, out / "cam", progress)
            if private_dir is not None:
                priv = tmps[1]
                priv.mkdir(parents=True)
                pd.DataFrame([(pl.pseudonym, pl.patient_id) for pl in check.plans],
                             columns=["pseudonym", "patient_id"]).to_csv(priv / PRIVATE_FILES[0], index=False,
                                                                          lineterminator="\n")
                pd.DataFrame([(f"{pl.pseudonym}_{i:03d}", pl.patient_id, pl.series.slices[i].instance)
                              for pl in check.plans for i in pl.indices],
                             columns=["slice_id", "patient_id", "instance"]).to_csv(priv / PRIVATE_FILES[1],
                                                                                     index=False, lineterminator="\n")
            run["seconds"] = round(time.perf_counter() - t0, 2)
            (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    progress(f"wrote {out_dir} ({run['patients']} patients, {n} slices, {run['seconds']} s)")
    return run


def write_cams(classifier, crops: dict, slices: pd.DataFrame, classes, folder: Path, progress) -> None:
    """Grad-CAM of the predicted class over each slice's crop, one PNG per slice (named by slice id)."""
    from matplotlib import colormaps  # matplotlib only when maps are asked for

    model, meta, entry = classifier
    if not entry.get("cam_layer"):
        raise IngestError(f"the package names no Grad-CAM layer for {entry['net']}; predict without --cam")
    crops_dir = crops[entry["format"]]["images"].parent
    data = CropData(crops_dir, slices[["slice_id"]], classes, meta["input_size"], meta["normalize"])
    targets = [classes.index(c) for c in slices["predicted"]]
    maps = gradcam(model.float().cpu(), resolve_layer(model, entry["cam_layer"]), data.inputs(np.arange(len(data))),
                   targets)
    raw = np.load(crops_dir / "images.npy", mmap_mode="r")
    maps = resize_maps(maps.astype(np.float32), int(raw.shape[-1]))
    folder.mkdir(parents=True)
    plt, heat = pyplot(), colormaps[CAM_MAP]
    for k, sid in enumerate(slices["slice_id"]):
        img = np.clip(np.asarray(raw[data.rows[k]], np.float32), 0, 1)
        rgb = 0.6 * np.repeat(img[..., None], 3, axis=2) + 0.4 * heat(maps[k])[..., :3]
        plt.imsave(folder / f"{sid}.png", np.clip(rgb, 0, 1))
    progress(f"Grad-CAM overlays of {len(slices)} slices ({entry['net']}, layer {entry['cam_layer']})")


# --------------------------------------------------------------------------- the console script
def _salt(value: str | None) -> str | None:
    if value is not None and not value.startswith(("env:", "file:")):
        raise IngestError("--salt takes env:VAR or file:PATH (a salt typed on the command line is visible to "
                          "other users and in the shell history)")
    return value


def cmd_verify(args) -> int:
    pkg = open_package(args.package)
    d = pkg.descriptor
    models = ", ".join(f"{e['net']} on {e['format']} ({e['fraction']}%)" for e in d["classifiers"])
    print(f"{args.package}: ok, {len(pkg.manifest['files'])} files match their sha256; anapart "
          f"{pkg.manifest['anapart_version']}; {models}; classes {', '.join(d['classes'])}"
          + ("; SYNTHETIC training cohort" if d["synthetic"] else ""))
    return 0


def cmd_predict(args) -> int:
    salt = _salt(args.salt)
    pkg = open_package(args.package)  # refused before anything is read or written
    if args.cohort:
        cohort = read_cohort(args.cohort)
    else:
        cohort = Cohort("nifti" if args.nifti else "dicom", args.nifti or args.dicom)
    salt = salt or cohort.salt
    if not salt:
        raise IngestError("no pseudonym salt: give --salt env:VAR or file:PATH (your site's own secret), or "
                          "pseudonym_salt in the cohort file")
    predict_cohort(pkg, cohort, args.out, salt=salt, private_dir=args.private, cam=args.cam, device=args.device)
    return 0


def cmd_evaluate(args) -> int:
    s = evaluate_site(args.predictions, args.labels, args.out, private_dir=args.private)
    lo, hi = s["aauc_ci"]
    print(f"aAUC {s['aauc']:.3f} ({int(100 * s['ci_level'])}% CI {lo:.3f}-{hi:.3f}), balanced accuracy "
          f"{s['balanced_accuracy']:.3f} (chance {s['balanced_accuracy_chance']:.3f}), Brier {s['brier']:.3f}, "
          f"ECE {s['ece']:.3f}; {s['n_test_patients']} patients -> {args.out}/summary.json")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anapart", description="Share and apply a trained anapart model.")
    p.add_argument("--version", action="version", version=f"anapart {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="check a model package (every file's sha256, the anapart version)")
    v.add_argument("package")
    v.set_defaults(func=cmd_verify)
    pr = sub.add_parser("predict", help="predict a DICOM or NIfTI cohort with a model package")
    pr.add_argument("package")
    src = pr.add_mutually_exclusive_group(required=True)
    src.add_argument("--dicom", metavar="DIR", help="folder of DICOM files (any layout)")
    src.add_argument("--nifti", metavar="DIR", help="folder of NIfTI patients (the package's layout)")
    src.add_argument("--cohort", metavar="COHORT.yaml",
                     help="a cohort file: source, dicom_dir | nifti_dir, optional labels, mask_dir, series, frames, "
                          "mask_names, nifti, pseudonym_salt (paths relative to the file)")
    pr.add_argument("--out", required=True, metavar="DIR", help="shareable outputs (new or empty folder)")
    pr.add_argument("--salt", metavar="env:VAR|file:PATH", help="your site's pseudonym salt")
    pr.add_argument("--private", metavar="DIR", help="where the pseudonym -> PatientID table goes (outside --out)")
    pr.add_argument("--cam", action="store_true", help="Grad-CAM overlay per slice (out/cam/)")
    pr.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    pr.set_defaults(func=cmd_predict)
    e = sub.add_parser("evaluate", help="the study's metrics on your labels (summary.json and figures, no identifier)")
    e.add_argument("predictions", help="predictions.csv written by anapart predict")
    e.add_argument("--labels", required=True, metavar="LABELS.csv",
                   help="slice_id,label | patient,label (pseudonyms) | patient_id,label[,instance] with --private")
    e.add_argument("--out", required=True, metavar="DIR")
    e.add_argument("--private", metavar="DIR", help="predict's private folder (for labels by patient_id)")
    e.set_defaults(func=cmd_evaluate)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (PackageError, IngestError) as e:
        print(f"anapart: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

