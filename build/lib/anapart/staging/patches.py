"""Study B, Methods "Data preprocessing": CLAHE on each slice, then square ROI patches of the
tumour and the lymph nodes with a margin of surrounding tissue (the stage depends on what the
tumour invades), from label masks or from rectangles drawn by clinicians.

The patch store (``images.npy``, ``masks.npy``, ``index.csv``, ``report.json``) has study A's crop
store layout (``slice_id``, ``row``), so :class:`anapart.learn.data.CropData` serves both studies.
Series selection and the labels check are study A's (:mod:`anapart.cohort`).
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

from anapart.cohort.labels import check_labels
from anapart.cohort.problems import Problem, raise_problems
from anapart.cohort.pseudonyms import pseudonym, resolve_salt
from anapart.cohort.series import SeriesRule, choose_series, log_skipped, log_warnings, series_by_patient
from anapart.io import dicom, dicom_scan
from anapart.io.errors import IngestError
from anapart.io.files import atomic_paths
from anapart.io.store import NpyStreamWriter, intensity_window, normalise
from anapart.io.windows import extract

log = logging.getLogger("anapart.patches")

ROI_KINDS = {1: "tumour", 2: "node"}


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
    (:func:`~anapart.choose_series`, one :class:`~anapart.SeriesRule` per sequence: a
    SeriesDescription regex, or a mapping that also sets orientation and min_slices).

    Series that match no sequence (e.g. a localiser) are not used, as are DICOMDIRs, non-image objects
    and non-DICOM files; problems of series not used are logged as warnings. Every problem (a series
    matching several sequences, a patient with none or several series of a sequence, a chosen series
    with bad slices, bad label rows) is listed at once.
    """
    labels, problems = check_labels(labels_csv, classes)
    table_failed = labels.empty and len(problems) == 1 and problems[0].patient is None  # unreadable as a whole
    problems += [Problem("labels", f"{labels_csv} line {r.line}: staging labels are per patient; leave "
                                          "instance out", r.patient_id)
                 for r in labels[labels["instance"].notna()].itertuples()]
    try:
        scan = dicom_scan.scan(dicom_dir)
    except dicom.DicomError as e:
        raise IngestError(str(e)) from e
    problems += [Problem("unreadable_file", p) for p in scan.problems]
    log_skipped([(p.relative_to(scan.root).as_posix(), k) for p, k in scan.skipped], dicom_dir)
    rules = {name: SeriesRule.for_sequence(v) for name, v in sequences.items()}
    by_patient = series_by_patient(scan)
    for s in scan.series.values():
        hits = [n for n, rule in rules.items() if rule.matches(s)]
        if len(hits) > 1:
            problems.append(Problem("several_sequences", f"{s.folder}: SeriesDescription '{s.description}' "
                                                                f"matches several sequences {hits}", s.patient_id))
    plans, warnings = [], []
    for row in labels.itertuples():
        cands = by_patient.get(row.patient_id, [])
        if not cands:
            problems.append(Problem("no_series", f"{labels_csv} line {row.line}: no DICOM series for this "
                                                        f"patient under {dicom_dir}", row.patient_id))
            continue
        seqs, own, warn = choose_series(cands, rules, row.patient_id, scan.root, "staging.sequences")
        problems += own
        warnings += warn
        plans.append({"patient_id": row.patient_id, "label": row.label, "series": seqs})
    for pid in sorted(set(by_patient) - set(labels["patient_id"])) if not table_failed else []:
        problems.append(Problem("no_label", f"{by_patient[pid][0].folder}: series has no stage in {labels_csv}",
                                       pid))
    log_warnings(warnings)
    raise_problems(problems)
    return plans


def make_patches(dicom_dir, labels_csv, roi, out: dict, *, classes, sequences: dict, size: int, margin: float,
                 min_side: int, salt: str, clahe_cfg: dict | None, percentiles: tuple[float, float]) -> dict:
    """Build the patch store (``images.npy``, ``masks.npy``, ``index.csv``, ``report.json``) and the
    native store (``native_images.npy``, ``native_masks.npy``: each window at the slice's own pixel
    grid, flat, from ``native_offset`` for ``side`` x ``side`` pixels; ``spacing_row_mm`` and
    ``spacing_col_mm`` from PixelSpacing).

    ``roi`` is a folder of label masks (``<PatientID>/<sequence>.nii.gz``: 1 = tumour, 2 = node)
    or a CSV of rectangular ROI boxes (:func:`read_roi_boxes`).

    ``index.csv`` has ``slice_id`` (the patch id) and ``row`` like study A's crop stores, so the
    same data loader serves both studies. Patient identifiers never leave this function: patches
    are keyed by salted pseudonyms. Each series is scaled to [0, 1] between its intensity
    ``percentiles``; with ``clahe_cfg`` (clip_limit, tile_grid) every slice is then equalised before
    patches are cut, as the paper did.
    """
    t0 = time.perf_counter()
    salt = resolve_salt(salt)
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
                    vol = dicom.read_mask(path, s, binary=False)
                except dicom.DicomError as e:
                    raise IngestError(str(e)) from e
                wins = {z: [(*w, None) for w in ws] for z, lab in enumerate(vol)
                        if (ws := roi_windows(lab, margin, min_side))}
            series_windows.append((plan, seq, s, path, wins))
    n = sum(len(w) for *_, wins in series_windows for w in wins.values())
    if not n:
        raise IngestError(f"{roi}: no ROI found in any series")
    value_of = {k: v for v, k in ROI_KINDS.items()}
    rows = []
    # the native store: every window as cut from the slice, not resized, one flat run of pixels per
    # patch (radiomics measures sizes and textures in mm, which a resize to ``size`` destroys)
    n_native = sum(w[4] ** 2 for *_, wins in series_windows for ws in wins.values() for w in ws)
    with atomic_paths(out["images"], out["masks"], out["index"], out["report"], out["native_images"],
                      out["native_masks"]) as (ip, mp, xp, rp, nip, nmp):
        images = NpyStreamWriter(ip, (n, size, size), np.float16)
        masks = NpyStreamWriter(mp, (n, size, size), np.uint8)
        native_images = NpyStreamWriter(nip, (n_native,), np.float32)
        native_masks = NpyStreamWriter(nmp, (n_native,), np.uint8)
        offset = 0
        try:
            # Pass 2, one series at a time: decode, scale by the series window, CLAHE, cut.
            for plan, seq, s, path, wins in series_windows:
                ps = pseudonym(plan["patient_id"], salt)
                try:
                    raw = dicom.read_slices(s.slices)
                    vol = dicom.read_mask(path, s, binary=False) if path is not None else None
                except dicom.DicomError as e:
                    raise IngestError(str(e)) from e
                lo, hi = intensity_window(raw, percentiles)
                for z, zw in wins.items():
                    img = normalise(raw[z].astype(np.float32), lo, hi)
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
                        native_images.append(extract(img, y0, x0, side)[0].reshape(-1))
                        native_masks.append(extract(m, y0, x0, side)[0].reshape(-1))
                        rows.append((f"{ps}_{seq}_{z:03d}_{kind}{j}", len(rows), ps, seq, z, kind, plan["label"],
                                     tnm.get(plan["patient_id"], ""), y0, x0, side, offset,
                                     float(s.pixel_spacing[0]), float(s.pixel_spacing[1])))
                        offset += side * side
            for w in (images, masks, native_images, native_masks):
                w.close()
        finally:
            for w in (images, masks, native_images, native_masks):
                w.fh.close()
        index = pd.DataFrame(rows, columns=["slice_id", "row", "patient", "sequence", "position", "kind", "label",
                                            "tnm_stage", "y0", "x0", "side", "native_offset", "spacing_row_mm",
                                            "spacing_col_mm"])
        report = {"n_patients": len(plans), "n_patches": len(index), "size": size, "clahe": bool(clahe_cfg),
                  "patches": {f"{k}/{c}": int(m) for (k, c), m in index.groupby(["kind", "label"]).size().items()},
                  "seconds": round(time.perf_counter() - t0, 2)}
        index.to_csv(xp, index=False, lineterminator="\n")
        rp.write_text(json.dumps(report, indent=2) + "\n")
    log.info("patch store: %s", report)
    return report


def attach_index(pred: pd.DataFrame, index_csv) -> pd.DataFrame:
    """Each patch's patient, sequence and ROI kind from the patch index, next to its probabilities."""
    index = pd.read_csv(index_csv).set_index("slice_id")
    return pred.assign(patient=pred["slice_id"].map(index["patient"]), sequence=pred["slice_id"].map(index["sequence"]),
                       kind=pred["slice_id"].map(index["kind"]))
