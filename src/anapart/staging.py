"""Study B: LA-NPC stage III vs IVa from ROI patches of T1C and T2 MRI (Huang et al. 2021).

Steps, as in the paper: CLAHE on the slice, square ROI patches of tumours and lymph nodes with a
margin of surrounding tissue (stage depends on what the tumour invades), augmentation, transfer
learning of ImageNet CNNs with the backbone frozen and a new top trained, a basic 3-layer CNN
from scratch, soft voting of the single models, per-class accuracy/precision/sensitivity/F1, and
a radiomics baseline. Training, prediction, the patch store format and Grad-CAM are study A's
(``training.fit``, ``classify.CropData``/``predict_probabilities``, ``cam.gradcam``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import cohort, dicom_io, dicom_scan, store, training, weights
from .classify import CropData, predict_probabilities
from .cohort import IngestError
from .split import split_patients
from .store import NpyStreamWriter
from .evaluate import predicted
from .crop import extract
from .files import atomic_paths, pyplot, save_figure, write_csv

log = logging.getLogger("anapart.staging")

ROI_KINDS = {1: "tumour", 2: "node"}
BASIC_CNN = "basic_cnn"


# --------------------------------------------------------------------------- preprocessing

def clahe(img: np.ndarray, clip_limit: float, tile_grid: int) -> np.ndarray:
    """Contrast Limited Adaptive Histogram Equalisation of a [0, 1] slice (OpenCV, 16-bit)."""
    u16 = np.round(np.clip(img, 0.0, 1.0) * 65535).astype(np.uint16)
    eq = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(int(tile_grid), int(tile_grid))).apply(u16)
    return eq.astype(np.float32) / 65535.0


def square_window(x: int, y: int, w: int, h: int, margin: float, min_side: int) -> tuple[int, int, int]:
    """``(y0, x0, side)`` of the square around box (x, y, w, h), ``margin`` of the box on each side."""
    side = max(int(min_side), int(math.ceil(max(w, h) * (1 + 2 * margin))))
    cy, cx = y + h / 2.0, x + w / 2.0
    return int(round(cy - side / 2.0)), int(round(cx - side / 2.0)), side


def roi_windows(labels: np.ndarray, margin: float, min_side: int, min_area: int = 4) -> list[tuple[str, int, int, int, int]]:
    """Square windows ``(kind, index, y0, x0, side)`` around the ROIs of one label slice.

    The tumour (label 1) is one patch per slice (its parts together: an invading tumour is one
    lesion); every connected lymph node (label 2) is its own patch. ``margin`` is added on each
    side as a fraction of the box, so the patch keeps the tissue around the lesion.
    """
    out = []
    for value, kind in ROI_KINDS.items():
        m = (labels == value).astype(np.uint8)
        if m.sum() < min_area:
            continue
        if kind == "tumour":
            boxes = [cv2.boundingRect(m)]
        else:
            n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
            boxes = [tuple(stats[i, :4]) for i in range(1, n) if stats[i, 4] >= min_area]
        for j, (x, y, w, h) in enumerate(boxes):
            out.append((kind, j, *square_window(x, y, w, h, margin, min_side)))
    return out


BOX_COLUMNS = ["patient_id", "sequence", "instance", "kind", "x0", "y0", "x1", "y1"]


def read_roi_boxes(path, plans: list[dict]) -> dict[tuple[str, str], dict[int, list[tuple[str, int, int, int, int]]]]:
    """Rectangular ROIs drawn by clinicians (the paper's way): a CSV of ``patient_id, sequence,
    instance, kind (tumour|node), x0, y0, x1, y1`` in pixels of the slice (x1, y1 exclusive).

    Returns ``{(patient_id, sequence): {slice position: [(kind, x0, y0, x1, y1), ...]}}``; every
    row is checked against the series it names, errors give the CSV line.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        raise IngestError(f"{path}: could not read ROI boxes as CSV ({e})") from e
    missing = [c for c in BOX_COLUMNS if c not in df.columns]
    if missing:
        raise IngestError(f"{path}: ROI boxes table lacks column(s) {missing}; has {list(df.columns)}")
    series = {(p["patient_id"], q): s for p in plans for q, s in p["series"].items()}
    out: dict = {}
    for i, row in df.iterrows():
        line = i + 2
        key = (row["patient_id"].strip(), row["sequence"].strip())
        if key not in series:
            raise IngestError(f"{path} line {line}: no labelled patient '{key[0]}' with a {key[1]} series")
        if row["kind"].strip() not in ROI_KINDS.values():
            raise IngestError(f"{path} line {line}: kind '{row['kind']}' is not one of {list(ROI_KINDS.values())}")
        s = series[key]
        try:
            inst, x0, y0, x1, y1 = (int(row[c]) for c in ("instance", "x0", "y0", "x1", "y1"))
        except ValueError:
            raise IngestError(f"{path} line {line}: instance and box corners must be whole numbers") from None
        z = next((k for k, h in enumerate(s.slices) if h.instance == inst), None)
        if z is None:
            raise IngestError(f"{path} line {line}: instance {inst} is not in the series in {s.folder}")
        rows, cols = s.shape[1:]
        if not (0 <= x0 < x1 <= cols and 0 <= y0 < y1 <= rows):
            raise IngestError(f"{path} line {line}: box ({x0}, {y0})-({x1}, {y1}) is empty or leaves the "
                              f"{cols}x{rows} slice")
        out.setdefault(key, {}).setdefault(z, []).append((row["kind"].strip(), x0, y0, x1, y1))
    return out


def cut_patch(img: np.ndarray, y0: int, x0: int, side: int, size: int, nearest: bool = False) -> np.ndarray:
    """The window (zero-padded outside the slice) resized to ``size`` x ``size``."""
    crop, _ = extract(img, y0, x0, side)
    if side == size:
        return crop
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
    return cv2.resize(crop, (size, size), interpolation=interp)


# --------------------------------------------------------------------------- cohort

def read_tnm(labels_csv, classes) -> dict[str, str]:
    """Optional ``tnm_stage`` column of the labels table: patient_id -> stage (blank = not given)."""
    df = pd.read_csv(labels_csv, dtype=str, keep_default_na=False)
    if "tnm_stage" not in df.columns:
        return {}
    out = {}
    for i, row in df.iterrows():
        v = row["tnm_stage"].strip()
        if v and v not in classes:
            raise IngestError(f"{labels_csv} line {i + 2}: tnm_stage '{v}' is not one of {list(classes)}")
        if v:
            out[row["patient_id"].strip()] = v
    return out


def plan_staging(dicom_dir, labels_csv, sequences: dict, classes) -> list[dict]:
    """Match each labelled patient to one series per sequence, with study A's series selection
    (:func:`~anapart.cohort.choose_series`, one :class:`~anapart.cohort.SeriesRule` per sequence: a
    SeriesDescription regex, or a mapping that also sets orientation and min_slices).

    Series that match no sequence (e.g. a localiser) are not used, as are DICOMDIRs, non-image objects
    and non-DICOM files; problems of series not used are logged as warnings. Every problem (a series
    matching several sequences, a patient with none or several series of a sequence, a chosen series
    with bad slices, bad label rows) is listed at once.
    """
    labels, problems = cohort.check_labels(labels_csv, classes)
    problems += [cohort.Problem("labels", f"{labels_csv} line {r.line}: staging labels are per patient; leave "
                                          "instance out", r.patient_id)
                 for r in labels[labels["instance"].notna()].itertuples()]
    try:
        scan = dicom_scan.scan(dicom_dir)
    except dicom_io.DicomError as e:
        raise IngestError(str(e)) from e
    problems += [cohort.Problem("unreadable_file", p) for p in scan.problems]
    cohort.log_skipped([(p.relative_to(scan.root).as_posix(), k) for p, k in scan.skipped], dicom_dir)
    rules = {name: cohort.SeriesRule.for_sequence(v) for name, v in sequences.items()}
    by_patient = cohort.series_by_patient(scan)
    for s in scan.series.values():
        hits = [n for n, rule in rules.items() if rule.matches(s)]
        if len(hits) > 1:
            problems.append(cohort.Problem("several_sequences", f"{s.folder}: SeriesDescription '{s.description}' "
                                                                f"matches several sequences {hits}", s.patient_id))
    plans, warnings = [], []
    for row in labels.itertuples():
        cands = by_patient.get(row.patient_id, [])
        if not cands:
            problems.append(cohort.Problem("no_series", f"{labels_csv} line {row.line}: no DICOM series for this "
                                                        f"patient under {dicom_dir}", row.patient_id))
            continue
        seqs, own, warn = cohort.choose_series(cands, rules, row.patient_id, scan.root, "staging.sequences")
        problems += own
        warnings += warn
        plans.append({"patient_id": row.patient_id, "label": row.label, "series": seqs})
    for pid in sorted(set(by_patient) - set(labels["patient_id"])):
        problems.append(cohort.Problem("no_label", f"{by_patient[pid][0].folder}: series has no stage in {labels_csv}",
                                       pid))
    cohort.log_warnings(warnings)
    cohort.raise_problems(problems)
    return plans


def make_patches(dicom_dir, labels_csv, roi, out: dict, *, classes, sequences: dict, size: int, margin: float,
                 min_side: int, salt: str, clahe_cfg: dict | None, percentiles=(0.5, 99.5)) -> dict:
    """Build the patch store (``images.npy``, ``masks.npy``, ``index.csv``, ``report.json``).

    ``roi`` is a folder of label masks (``<PatientID>/<sequence>.nii.gz``: 1 = tumour, 2 = node)
    or a CSV of rectangular ROI boxes (:func:`read_roi_boxes`).

    ``index.csv`` has ``slice_id`` (the patch id) and ``row`` like study A's crop stores, so the
    same data loader serves both studies. Patient identifiers never leave this function: patches
    are keyed by salted pseudonyms. With ``clahe_cfg`` (clip_limit, tile_grid) every slice is
    equalised before patches are cut, as the paper did.
    """
    t0 = time.perf_counter()
    salt = cohort.resolve_salt(salt)
    plans = plan_staging(dicom_dir, labels_csv, sequences, classes)
    tnm = read_tnm(labels_csv, classes)
    roi = Path(roi)
    boxes = read_roi_boxes(roi, plans) if roi.is_file() else None
    if boxes is None and not roi.is_dir():
        raise IngestError(f"{roi}: ROI folder (or boxes CSV) does not exist")
    # Pass 1, ROIs only: every patch window, so the stores can be written as a stream (a
    # paper-sized cohort's patches do not fit in memory). A window is (kind, j, y0, x0, side, box).
    series_windows = []
    for plan in plans:
        for seq, s in plan["series"].items():
            if boxes is not None:
                path = None
                wins = {}
                for z, lst in boxes.get((plan["patient_id"], seq), {}).items():
                    count: dict[str, int] = {}
                    for kind, x0, y0, x1, y1 in lst:
                        j = count[kind] = count.get(kind, -1) + 1
                        wins.setdefault(z, []).append((kind, j, *square_window(x0, y0, x1 - x0, y1 - y0, margin,
                                                                               min_side), (x0, y0, x1, y1)))
            else:
                path = roi / plan["patient_id"] / f"{seq}.nii.gz"
                if not path.exists():
                    raise IngestError(f"{path}: ROI mask missing for a {seq} series in {s.folder}")
                try:
                    vol = dicom_io.read_mask(path, s, binary=False)
                except dicom_io.DicomError as e:
                    raise IngestError(str(e)) from e
                wins = {z: [(*w, None) for w in ws] for z, lab in enumerate(vol)
                        if (ws := roi_windows(lab, margin, min_side))}
            series_windows.append((plan, seq, s, path, wins))
    n = sum(len(w) for *_, wins in series_windows for w in wins.values())
    if not n:
        raise IngestError(f"{roi}: no ROI found in any series")
    value_of = {k: v for v, k in ROI_KINDS.items()}
    rows = []
    with atomic_paths(out["images"], out["masks"], out["index"], out["report"]) as (ip, mp, xp, rp):
        images = NpyStreamWriter(ip, (n, size, size), np.float16)
        masks = NpyStreamWriter(mp, (n, size, size), np.uint8)
        try:
            # Pass 2, one series at a time: decode, scale by the series window, CLAHE, cut.
            for plan, seq, s, path, wins in series_windows:
                ps = cohort.pseudonym(plan["patient_id"], salt)
                try:
                    raw = dicom_io.read_slices(s.slices)
                    vol = dicom_io.read_mask(path, s, binary=False) if path is not None else None
                except dicom_io.DicomError as e:
                    raise IngestError(str(e)) from e
                lo, hi = store.intensity_window(raw, percentiles)
                for z, zw in wins.items():
                    img = store.normalise(raw[z].astype(np.float32), lo, hi)
                    if clahe_cfg:
                        img = clahe(img, clahe_cfg["clip_limit"], clahe_cfg["tile_grid"])
                    for kind, j, y0, x0, side, box in zw:
                        if box is None:  # the mask's ROI of this kind
                            m = (vol[z] == value_of[kind]).astype(np.uint8)
                        else:  # the drawn rectangle
                            m = np.zeros(img.shape, np.uint8)
                            m[box[1]:box[3], box[0]:box[2]] = 1
                        images.append(cut_patch(img, y0, x0, side, size)[None])
                        masks.append(cut_patch(m, y0, x0, side, size, nearest=True)[None])
                        rows.append((f"{ps}_{seq}_{z:03d}_{kind}{j}", len(rows), ps, seq, z, kind, plan["label"],
                                     tnm.get(plan["patient_id"], ""), y0, x0, side))
            images.close()
            masks.close()
        finally:
            images.fh.close()
            masks.fh.close()
        index = pd.DataFrame(rows, columns=["slice_id", "row", "patient", "sequence", "position", "kind", "label",
                                            "tnm_stage", "y0", "x0", "side"])
        report = {"n_patients": len(plans), "n_patches": len(index), "size": size, "clahe": bool(clahe_cfg),
                  "patches": {f"{k}/{c}": int(m) for (k, c), m in index.groupby(["kind", "label"]).size().items()},
                  "seconds": round(time.perf_counter() - t0, 2)}
        index.to_csv(xp, index=False, lineterminator="\n")
        rp.write_text(json.dumps(report, indent=2) + "\n")
    log.info("patch store: %s", report)
    return report


def split(index: pd.DataFrame, *, classes, test_fraction: float, seed: int) -> dict[str, pd.DataFrame]:
    """Patient-level stratified split (4:1 in the paper); every patch follows its patient."""
    patients = split_patients(index, test_fraction, seed, classes)
    side = index["patient"].map(patients.set_index("patient")["split"])
    lists = {s: index.loc[side == s, ["slice_id", "label"]].reset_index(drop=True) for s in ("train", "test")}
    assert_patient_disjoint(index, lists["train"], lists["test"])
    return {"patients": patients, **lists}


def assert_patient_disjoint(index: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame) -> None:
    patient_of = index.set_index("slice_id")["patient"]
    both = set(patient_of[train["slice_id"]]) & set(patient_of[test["slice_id"]])
    if both:
        raise AssertionError(f"{len(both)} patient(s) have patches in both train and test")


# --------------------------------------------------------------------------- models

class BasicCNN(nn.Module):
    """The paper's baseline: 3 conv layers each followed by max-pooling, then 2 dense layers."""

    def __init__(self, n_classes: int, in_chans: int = 1, channels=(32, 64, 128), hidden: int = 128,
                 dropout: float = 0.5):
        super().__init__()
        layers, c = [], in_chans
        for i, ch in enumerate(channels):
            layers += [nn.Conv2d(c, ch, 3, padding=1), nn.ReLU(inplace=True)]
            if i == len(channels) - 1:
                layers.append(nn.Identity())  # Grad-CAM hook: the last conv block's activations
            layers.append(nn.MaxPool2d(2))
            c = ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(c * 16, hidden),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    @property
    def cam_layer(self) -> str:
        return f"features.{len(self.features) - 2}"

    def forward(self, x):
        return self.head(self.features(x))


class TransferNet(nn.Module):
    """A timm backbone (its ImageNet classifier removed) with a new top: pool, batch-norm, dense,
    dropout, dense. The batch-norm puts any backbone's pooled features on one scale, so one
    learning rate suits all five networks (and a randomly initialised backbone cannot blow up).

    With ``freeze`` the backbone's weights never change and it stays in eval mode (batch-norm
    statistics frozen too, as Keras does for a non-trainable base); only the top is trained.
    """

    def __init__(self, net: str, n_classes: int, pretrained=False, in_chans: int = 1, hidden: int = 256,
                 dropout: float = 0.3, freeze: bool = True):
        super().__init__()
        self.backbone = weights.create_model(net, pretrained, features_only=True, out_indices=(-1,), in_chans=in_chans)
        self.features_out = nn.Identity()  # Grad-CAM hook: the backbone's last feature map
        c = self.backbone.feature_info.channels()[-1]
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(c), nn.Linear(c, hidden),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, n_classes))
        self.frozen = bool(freeze)
        if self.frozen:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
            self.backbone.eval()

    cam_layer = "features_out"

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def forward(self, x):
        return self.head(self.features_out(self.backbone(x)[-1]))


def build_model(name: str, n_classes: int, cfg: dict, pretrained=None):
    """A single model of stage one: ``basic_cnn`` or a timm network name."""
    if name == BASIC_CNN:
        b = cfg.get("basic_cnn", {})
        return BasicCNN(n_classes, channels=tuple(b.get("channels", (32, 64, 128))), hidden=int(b.get("hidden", 128)),
                        dropout=float(b.get("dropout", 0.5)))
    t = cfg["train"]
    return TransferNet(name, n_classes, t.get("pretrained", False) if pretrained is None else pretrained,
                       hidden=int(t.get("hidden", 256)), dropout=float(t.get("dropout", 0.3)),
                       freeze=bool(t.get("freeze_backbone", True)))


def model_from_meta(meta: dict) -> nn.Module:
    """Rebuild a saved staging model; its weights come from the checkpoint, never from a hub."""
    return build_model(meta["model"], len(meta["classes"]), meta["cfg"], pretrained=False)


def input_size(name: str, cfg: dict) -> int:
    t = cfg["train"]
    if name == BASIC_CNN:
        return int(cfg.get("basic_cnn", {}).get("input_size", t["input_size"]))
    return int((t.get("input_sizes") or {}).get(name, t["input_size"]))


def train_settings(name: str, cfg: dict) -> dict:
    """The training settings of one model: ``staging.train``, and for the basic CNN (trained from
    scratch, all layers) its own ``lr``, ``epochs`` and ``schedule`` from ``staging.basic_cnn``."""
    t = dict(cfg["train"])
    if name == BASIC_CNN:
        t.update({k: v for k, v in cfg.get("basic_cnn", {}).items() if k in ("lr", "epochs", "schedule")})
    return t


def train_model(patches_dir, train_csv, classes, name: str, cfg: dict, out_model, *, device="auto",
                checkpoint=None, keep: dict | None = None) -> list[float]:
    """Stage one: train one single model on the training patches (Adam, decaying rate).

    With ``keep`` (a dict), the trained model and its meta are left in it for prediction.
    """
    t = train_settings(name, cfg)
    train = pd.read_csv(train_csv)
    size = input_size(name, cfg)
    data = CropData(patches_dir, train, classes, size, t.get("normalize", (0.5, 0.25)),
                    preload_mb=float(t.get("preload_mb", 0)))
    training.seed_everything(int(t["seed"]))
    model = build_model(name, len(classes), cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = training.build_optimizer(params, t, "staging.train.optimizer")
    fit_cfg = training.FitConfig.from_config(t, device, label=f"staging {name}")
    scheduler = training.build_scheduler(optimizer, t.get("schedule"), fit_cfg.epochs, "staging.train.schedule")
    n_train = sum(p.numel() for p in params)
    log.info("%s: %d training patches %s, input %d, %d trainable parameters (%s)", name, len(data),
             train["label"].value_counts().to_dict(), size, n_train,
             "backbone frozen" if getattr(model, "frozen", False) else "all layers")
    augment = t.get("augment") or None
    history = training.fit(model, optimizer, F.cross_entropy, lambda idx: data.batch(idx, augment), len(data), fit_cfg,
                           checkpoint, signature_extra={"model": name, "train": str(train_csv),
                                                        "patches": str(patches_dir), "cfg": json.dumps(cfg, sort_keys=True, default=str)},
                           scheduler=scheduler)
    meta = {"model": name, "classes": list(classes), "cfg": cfg, "in_chans": 1, "input_size": size,
            "normalize": [data.mean, data.std], "patches": str(patches_dir), "epochs": fit_cfg.epochs,
            "cam_layer": model.cam_layer, "loss_history": [round(v, 5) for v in history]}
    training.save_model(out_model, model, meta)
    if keep is not None:
        keep.update(model=model.eval(), meta=meta)
    return history


def predict(model_path, patches_dir, test_csv, index_csv, *, device="auto", loaded=None) -> pd.DataFrame:
    """Per-patch stage probabilities: ``slice_id, label, p_<stage>..., patient, sequence, kind``."""
    test = pd.read_csv(test_csv)
    pred, _, _ = predict_probabilities(model_path, patches_dir, test, device=device, build=model_from_meta,
                                       loaded=loaded)
    return attach_index(pred, index_csv)


def attach_index(pred: pd.DataFrame, index_csv) -> pd.DataFrame:
    index = pd.read_csv(index_csv).set_index("slice_id")
    return pred.assign(patient=pred["slice_id"].map(index["patient"]), sequence=pred["slice_id"].map(index["sequence"]),
                       kind=pred["slice_id"].map(index["kind"]))


# --------------------------------------------------------------------------- stage two

def soft_vote(frames: list[pd.DataFrame], classes) -> pd.DataFrame:
    """Eq. (1)-(2): the mean of the single models' class probabilities; the class is its argmax."""
    if not frames:
        raise ValueError("soft voting needs at least one model")
    cols = [f"p_{c}" for c in classes]
    first = frames[0]
    for f in frames[1:]:
        if list(f["slice_id"]) != list(first["slice_id"]) or list(f["label"]) != list(first["label"]):
            raise ValueError("soft voting: the models' predictions are not for the same patches in the same order")
    out = first.drop(columns=cols).copy()
    mean = np.mean([f[cols].to_numpy(dtype=np.float64) for f in frames], axis=0)
    for j, c in enumerate(cols):
        out[c] = mean[:, j]
    return out[[c for c in first.columns]]


# --------------------------------------------------------------------------- radiomics

def radiomics_features(images: np.ndarray, masks: np.ndarray, settings: dict) -> pd.DataFrame:
    """IBSI-style 2-D features (pyradiomics) of each patch inside its ROI mask."""
    import SimpleITK as sitk
    from radiomics import featureextractor, setVerbosity

    setVerbosity(40)  # warnings and up: pyradiomics is chatty
    ext = featureextractor.RadiomicsFeatureExtractor(binWidth=float(settings.get("bin_width", 0.05)), force2D=True,
                                                     force2Ddimension=0, label=1)
    ext.disableAllFeatures()
    for fc in settings.get("feature_classes", ["firstorder", "shape2D", "glcm", "glrlm", "glszm"]):
        ext.enableFeatureClassByName(fc)
    rows = []
    for img, m in zip(images, masks):
        im = sitk.GetImageFromArray(np.asarray(img, np.float32)[None])
        mk = sitk.GetImageFromArray((np.asarray(m) > 0).astype(np.uint8)[None])
        mk.CopyInformation(im)
        feats = ext.execute(im, mk)
        rows.append({k: float(v) for k, v in feats.items() if not k.startswith("diagnostics")})
    return pd.DataFrame(rows)


def radiomics_baseline(patches_dir, train_csv, test_csv, index_csv, classes, settings: dict) -> tuple[pd.DataFrame, dict]:
    """Features on train and test patches; a scaled logistic regression (or SVM) whose C is chosen by
    patient-grouped cross-validation on the training patches only; test probabilities out."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

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
    kind = settings.get("classifier", "logistic")
    if kind == "logistic":
        clf = LogisticRegression(max_iter=5000)
    elif kind == "svm":
        clf = SVC(probability=True, kernel="rbf", random_state=0)
    else:
        raise ValueError(f"staging.radiomics.classifier '{kind}' is not logistic or svm")
    pipe = make_pipeline(StandardScaler(), clf)
    groups = index.loc[train["slice_id"], "patient"].to_numpy()
    folds = min(int(settings.get("cv_folds", 5)), len(set(groups)))
    name = pipe.steps[-1][0]
    search = GridSearchCV(pipe, {f"{name}__C": [float(c) for c in settings.get("C", [0.01, 0.1, 1, 10])]},
                          cv=GroupKFold(n_splits=folds), scoring="accuracy")
    search.fit(xtr[keep].to_numpy(), train["label"].to_numpy(), groups=groups)
    probs = search.predict_proba(xte[keep].to_numpy())
    order = list(search.classes_)
    pred = pd.DataFrame({"slice_id": test["slice_id"], "label": test["label"]})
    for c in classes:
        pred[f"p_{c}"] = probs[:, order.index(c)] if c in order else 0.0
    info = {"n_features": len(keep), "best_C": search.best_params_[f"{name}__C"], "cv_accuracy": float(search.best_score_),
            "cv_folds": folds, "classifier": kind}
    log.info("radiomics: %s", info)
    return attach_index(pred, index_csv), info


# --------------------------------------------------------------------------- CAM

def cam_examples(model_path, patches_dir, pred: pd.DataFrame, classes, out_png, out_csv, *,
                 threshold: float) -> pd.DataFrame:
    """Grad-CAM (study A's code) on test patches: ROI share of the bright map per patch, and Fig. 7's
    panel of one correctly staged tumour and node patch per stage, with the heatmap over the patch."""
    from .cam import bright_share, gradcam, resize_maps, resolve_layer

    model, meta = training.load_model(model_path, model_from_meta)
    for p in model.parameters():  # a frozen backbone carries no gradient to its feature map otherwise
        p.requires_grad_(True)
    data = CropData(patches_dir, pred[["slice_id", "label"]], classes, meta["input_size"], meta["normalize"])
    layer = resolve_layer(model, meta["cam_layer"])
    targets = [list(classes).index(c) for c in pred["label"]]
    maps = resize_maps(gradcam(model, layer, data.inputs(np.arange(len(data))), targets), data.images.shape[-1])
    masks = np.load(Path(patches_dir) / "masks.npy", mmap_mode="r")
    share = [bright_share(m, np.asarray(masks[r]) > 0, threshold) for m, r in zip(maps, data.rows)]
    out = pred[["slice_id", "label", "kind"]].assign(roi_share=share)
    write_csv(out_csv, out)
    plt = pyplot()
    kinds = ["tumour", "node"]
    fig, axes = plt.subplots(len(kinds), len(classes), figsize=(2.6 * len(classes), 2.6 * len(kinds)), squeeze=False)
    pv = predicted(pred, classes)
    conf = pred[[f"p_{c}" for c in classes]].max(axis=1).to_numpy()
    for i, k in enumerate(kinds):
        for j, c in enumerate(classes):
            ax = axes[i, j]
            ax.axis("off")
            ok = np.flatnonzero((pred["kind"].to_numpy() == k) & (pred["label"].to_numpy() == c) & (pv == c))
            if not len(ok):
                ax.set_title(f"{k}, stage {c}: none correct", fontsize=8)
                continue
            r = ok[np.argmax(conf[ok])]
            ax.imshow(np.asarray(data.images[data.rows[r]], np.float32), cmap="gray")
            ax.imshow(maps[r], cmap="jet", alpha=0.4, vmin=0, vmax=1)
            ax.contour(np.asarray(masks[data.rows[r]]) > 0, levels=[0.5], colors="white", linewidths=0.6)
            ax.set_title(f"{k}, stage {c} (p={conf[r]:.2f})", fontsize=8)
    fig.suptitle(f"Grad-CAM, {meta['model']}", fontsize=9)
    save_figure(fig, out_png)
    return out
