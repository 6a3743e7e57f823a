"""Study A's cohort preflight and ingest: every problem of the cohort at once, then the slice store.

:func:`check_cohort` reads every header and the labels once, selects each patient's series
(:class:`~anapart.cohort.SeriesRule`) and lists every problem of the cohort at once; its plan names
the slices to ingest. :func:`ingest_plan` (the ``ingest`` rule) builds the store from that plan
(:func:`anapart.io.store.build_store`); :func:`ingest` does both in one call. Patient identifiers never
reach results/: the check table is pseudonymised, and the plan, which names files and PatientIDs,
is written where the caller says (the workflow keeps it under private/).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Callable

import pandas as pd

from anapart.cohort.labels import check_labels
from anapart.cohort.problems import Problem, problems_message, raise_problems
from anapart.cohort.pseudonyms import PSEUDONYM_PREFIX, pseudonym, resolve_salt
from anapart.cohort.series import (SeriesRule, choose_series, log_skipped, log_warnings, patient_folder, select_series,
                                   series_by_patient)
from anapart.io import dicom_scan, nifti
from anapart.io.dicom import DicomError, Series
from anapart.io.files import atomic_paths
from anapart.io.store import MASK_KINDS, IngestPlan, build_store, check_series_mask

log = logging.getLogger("anapart.preflight")


# --------------------------------------------------------------------------- preflight

CHECK_COLUMNS = ["patient", "label_rows", "series_found", "series_matching", "description", "orientation", "slices",
                 "matrix", "pixel_spacing_mm", "slice_spacing_mm", "slice_thickness_mm", "enhanced", "transfer_syntax",
                 "scanner", "labelled_slices", "region_mask", "lesion_mask", "files_skipped", "problems",
                 "problem_kinds", "warnings"]


@dataclass
class CohortCheck:
    """The preflight's findings: what ingest will do (plans), per patient, every problem and warning."""

    plans: list[IngestPlan]
    table: pd.DataFrame  # one row per patient, pseudonymised (CHECK_COLUMNS)
    problems: list[Problem]
    summary: dict  # counts only: nothing that could name a patient
    dicom_dir: Path
    skipped: list[tuple[str, str]]  # (file relative to the DICOM folder, kind): private, for the log and the plan
    warnings: list[Problem] = dataclass_field(default_factory=list)  # reported, not fatal


def _label_indices(s: Series, group: pd.DataFrame, labels_csv, pid: str) -> tuple[dict[int, str], list[Problem]]:
    """Slice position -> label for one patient's labelled rows (explicit rows win over blanket rows)."""
    problems = []
    by_instance: dict[int, int] = {}
    if group["instance"].notna().any():
        for i, h in enumerate(s.slices):
            if h.instance in by_instance:
                first = s.slices[by_instance[h.instance]]
                if h.frame is not None and first.path != h.path:
                    problems.append(Problem("duplicate_instance", f"{h.path}: frame {h.instance} is also a frame of "
                                            f"{first.path}: the series is split over several enhanced files, so a "
                                            "frame number does not name one slice; label every slice of the series "
                                            "(blank instance) or merge the files", pid))
                else:
                    problems.append(Problem("duplicate_instance", f"{h.path}: InstanceNumber {h.instance} occurs "
                                                                  "twice in the series", pid))
            by_instance[h.instance] = i
    chosen: dict[int, str] = {}
    for row in group.itertuples():
        if pd.isna(row.instance):
            for i in range(len(s.slices)):
                chosen.setdefault(i, row.label)
            continue
        if int(row.instance) not in by_instance:
            problems.append(Problem("instance_not_in_series", f"{labels_csv} line {row.line}: instance {row.instance} "
                                                              f"is not in the series in {s.folder}", pid))
            continue
        chosen[by_instance[int(row.instance)]] = row.label
    return chosen, problems


@dataclass
class _Cohort:
    """What checking one patient needs to know about the whole cohort."""

    dicom_dir: Path
    labels_csv: Path
    rule: SeriesRule
    salt: str
    prefix: str  # pseudonym prefix: P (main cohort) or E (external test cohort)
    skipped_by_patient: dict[str, int]
    mask_refs: Callable[[str], dict]  # PatientID -> {mask kind: file (or nnU-Net "labels#values"), None: no mask}
    badly_labelled: set  # patients whose label rows had problems (reported with the table's)
    labels_unreadable: bool = False  # the table itself failed (its one problem says why): no per-patient echo
    images: str = "DICOM series"  # what a patient's image is called in messages (NIfTI: "NIfTI image")


def _check_masks(c: _Cohort, s: Series, pid: str) -> tuple[dict, dict, list[Problem]]:
    """(row fields, mask file per kind or None, problems) of a patient's masks on series ``s``."""
    row, masks, problems = {}, {}, []
    refs = c.mask_refs(pid)
    for kind in MASK_KINDS:
        ref = refs.get(kind)
        if ref is None:
            row[f"{kind}_mask"], masks[kind] = "none", None
        elif not (nifti.split_mask_ref(ref)[0] if isinstance(ref, dict) else Path(ref)).exists():
            row[f"{kind}_mask"], masks[kind] = "missing", None
        else:
            bad = check_series_mask(ref, s)
            row[f"{kind}_mask"], masks[kind] = ("off_grid", None) if bad else ("ok", ref)
            if bad:
                problems.append(Problem("mask", bad, pid))
    return row, masks, problems


def _series_fields(s: Series) -> dict:
    """The chosen series' columns of check.csv."""
    row = dict(description=s.description, orientation=s.orientation_label, slices=len(s.slices), enhanced=s.enhanced,
               transfer_syntax=s.transfer_syntax, scanner=s.scanner)
    if s.slices:
        row.update(matrix=f"{s.shape[1]}x{s.shape[2]}", pixel_spacing_mm="x".join(f"{v:.4g}" for v in s.pixel_spacing),
                   slice_spacing_mm=round(s.slice_spacing(), 4), slice_thickness_mm=round(s.slice_thickness, 4))
    return row


def _check_patient(c: _Cohort, pid: str, cands: list[Series], group: pd.DataFrame | None):
    """One patient: (plan or None, check.csv row without the problem counts, problems, warnings)."""
    ps = pseudonym(pid, c.salt, c.prefix)
    matching = select_series(cands, c.rule)
    row = dict.fromkeys(CHECK_COLUMNS, "")
    row.update(patient=ps, label_rows=0 if group is None else len(group), series_found=len(cands),
               series_matching=len(matching), labelled_slices=0, files_skipped=c.skipped_by_patient.get(pid, 0))
    if not cands:
        if group is None:
            return None, row, [], []
        return None, row, [Problem("no_series", f"{c.labels_csv} line {group['line'].iloc[0]}: no {c.images} for "
                                                f"this patient under {c.dicom_dir}", pid)], []
    chosen, problems, warnings = choose_series(cands, {"": c.rule}, pid, c.dicom_dir, "cohort.series")
    s = chosen.get("")
    if s is not None:
        row.update(_series_fields(s))
    if group is None:  # not ingested: only the missing label is a problem (its label rows' ones are listed)
        no_label = [] if pid in c.badly_labelled or c.labels_unreadable else [
            Problem("no_label", f"{(matching or cands)[0].folder}: series has no label in {c.labels_csv}", pid)]
        return None, row, no_label, warnings
    if s is None or problems:
        return None, row, problems, warnings
    picked, problems = _label_indices(s, group, c.labels_csv, pid)
    row["labelled_slices"] = len(picked)
    mask_fields, masks, mask_problems = _check_masks(c, s, pid)
    row.update(mask_fields)
    problems += mask_problems
    if problems:
        return None, row, problems, warnings
    idx = sorted(picked)
    return IngestPlan(s, ps, idx, [picked[i] for i in idx], pid, masks), row, problems, warnings


def _by_kind(problems: list[Problem]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in problems:
        counts[p.kind] = counts.get(p.kind, 0) + 1
    return dict(sorted(counts.items()))


def check_cohort(dicom_dir, labels_csv, mask_dir, *, classes, salt: str, series: SeriesRule,
                 frames: dicom_scan.FrameRule | None = None, mask_names: dict | None = None,
                 prefix: str = PSEUDONYM_PREFIX, exclude: dict[str, str] | None = None,
                 nifti_layout: nifti.Layout | None = None) -> CohortCheck:
    """Read every header and the labels once and find every problem of the cohort; decode nothing
    (but a NIfTI float volume's voxels, for NaN and infinity).

    ``dicom_dir`` is a DICOM folder, or with ``nifti_layout`` a NIfTI cohort folder (:mod:`anapart.io.nifti`:
    its masks are in each patient's folder, ``mask_dir`` is then unused).

    Per patient: the series found and the one ``series`` selects, its geometry, the labelled slices,
    whether the masks lie on its grid, the files skipped. Problems are collected, not raised;
    warnings (problems of series that are not used, slice gaps) are reported and fail nothing.
    ``exclude`` maps PatientIDs that must not occur (an external cohort's check gets the main
    cohort's) to the reason quoted in the problem. ``labels_csv`` None: a cohort to predict (``anapart
    predict``), every slice of each patient's chosen series with an empty label.
    """
    t0 = time.perf_counter()
    dicom_dir = Path(dicom_dir)
    unlabelled = labels_csv is None
    labels, problems = check_labels(labels_csv, classes) if not unlabelled else (None, [])
    table_failed = not unlabelled and labels.empty and len(problems) == 1 and problems[0].patient is None
    scan = None
    try:
        scan = (nifti.scan(dicom_dir, nifti_layout, None if unlabelled else set(labels["patient_id"]))
                if nifti_layout is not None else dicom_scan.scan(dicom_dir, frames))
    except (DicomError, ValueError) as e:
        problems.append(Problem("dicom_folder", str(e)))
    if unlabelled:  # prediction of a new cohort: every slice of every patient found, label unknown ("")
        labels = unlabelled_rows(series_by_patient(scan))
    mask_names = mask_names or {"region": "region.nii.gz", "lesion": "lesion.nii.gz"}
    if nifti_layout is not None:  # masks beside each image (or nnU-Net's labelsTr)
        mask_dir = None

        def mask_refs(pid):
            return nifti.mask_files(nifti_layout, dicom_dir, pid, mask_names)
    else:
        def mask_refs(pid):
            return {k: (str(Path(mask_dir) / pid / name) if mask_dir is not None else None)
                    for k, name in mask_names.items()}
    if mask_dir is not None and not Path(mask_dir).is_dir():
        problems.append(Problem("mask_folder", f"{mask_dir}: mask folder does not exist"))
        mask_dir = None
    row_problems: dict[str, list[Problem]] = {}  # problems of a patient's label rows
    for p in problems:
        if p.patient:
            row_problems.setdefault(p.patient, []).append(p)
    if scan is not None:
        problems += [Problem("unreadable_file", p) for p in scan.problems]
    c = _Cohort(dicom_dir, Path(labels_csv or "(no labels)"), series, resolve_salt(salt), prefix,
                scan.skipped_by_patient if scan is not None else {}, mask_refs, set(row_problems),
                labels_unreadable=table_failed, images="NIfTI image" if nifti_layout is not None else "DICOM series")
    series_of = series_by_patient(scan)
    groups = {pid: g for pid, g in labels.groupby("patient_id", sort=False)}
    patients = sorted(set(series_of) | set(groups),
                      key=lambda p: (str(series_of[p][0].folder) if p in series_of else "", p))
    plans, rows, warnings, seen = [], [], [], {}
    for pid in patients:
        plan, row, own, warn = _check_patient(c, pid, series_of.get(pid, []), groups.get(pid))
        if exclude and pid in exclude:
            own.append(Problem("patient_in_other_cohort", f"{patient_folder(series_of[pid]) if pid in series_of else labels_csv}: "
                                                          f"{exclude[pid]}", pid))
            plan = None
        if row["patient"] in seen:
            own.append(Problem("pseudonym", f"{patient_folder(series_of[pid]) if pid in series_of else labels_csv}: "
                                            "pseudonym collision with another patient; choose another salt", pid))
            plan = None
        seen[row["patient"]] = pid
        if plan is not None:
            plans.append(plan)
        listed = row_problems.get(pid, []) + own  # its label rows' problems are listed already, with the table's
        row.update(problems=len(listed), problem_kinds=";".join(sorted({p.kind for p in listed})), warnings=len(warn))
        rows.append(row)
        problems += own
        warnings += warn
    plans.sort(key=lambda p: p.pseudonym)
    table = pd.DataFrame(rows, columns=CHECK_COLUMNS).sort_values("patient", ignore_index=True)
    skipped = [] if scan is None else [(p.relative_to(dicom_dir).as_posix(), k) for p, k in scan.skipped]
    summary = {
        "patients_labelled": len(groups),
        "patients_in_dicom": len(series_of),
        "patients_ready": len(plans),
        "series": 0 if scan is None else len(scan.series),
        "files": 0 if scan is None else scan.n_files,
        "files_skipped": {} if scan is None else scan.skipped_counts(),
        "labelled_slices": int(sum(len(p.indices) for p in plans)),
        **acquisition_summary([p.series for p in plans]),
        "problems": len(problems),
        "problems_by_kind": _by_kind(problems),
        "warnings": len(warnings),
        "warnings_by_kind": _by_kind(warnings),
        "seconds_header_scan": round(scan.seconds, 3) if scan is not None else 0.0,
        "seconds_total": round(time.perf_counter() - t0, 3),
    }
    return CohortCheck(plans, table, problems, summary, dicom_dir, skipped, warnings)


def unlabelled_rows(series_of: dict) -> pd.DataFrame:
    """The labels table of a cohort with no labels: one blank-instance row (every slice) per patient
    found, label "" (why: prediction selects series and slices exactly as a labelled cohort does)."""
    pids = list(series_of)
    return pd.DataFrame({"patient_id": pids, "instance": pd.array([pd.NA] * len(pids), dtype="Int64"),
                         "label": [""] * len(pids), "line": [0] * len(pids)})


def acquisition_summary(series: list[Series]) -> dict:
    """Study period (first and last month of StudyDate; no day reaches results/) and patients per
    scanner of the series used: the checklist's "data source and dates"."""
    months = sorted(f"{d[:4]}-{d[4:6]}" for d in (s.study_date.strip() for s in series)
                    if len(d) >= 6 and d[:6].isdigit())
    scanners: dict[str, int] = {}
    for s in series:
        name = s.scanner or "not stated"
        scanners[name] = scanners.get(name, 0) + 1
    return {"study_period": [months[0], months[-1]] if months else None,
            "scanners": dict(sorted(scanners.items()))}


def log_check(check: CohortCheck) -> None:
    """The check's findings in the log (which may name files; results/ never does)."""
    s = check.summary
    log.info("cohort check: %d files, %d series, %d labelled patients, %d ready, %d labelled slices; header scan %.1fs",
             s["files"], s["series"], s["patients_labelled"], s["patients_ready"], s["labelled_slices"],
             s["seconds_header_scan"])
    log_skipped(check.skipped, check.dicom_dir)
    log_warnings(check.warnings)
    for p in check.problems:
        log.error("%s", p)
    if check.problems:
        log.error("%s", problems_message(check.problems).splitlines()[0].rstrip(":"))


def write_check(check: CohortCheck, table_csv, summary_json, plan_json=None) -> None:
    """The per-patient table and the summary (pseudonymised, for results/), and the plan ingest reads.

    The plan names DICOM files and PatientIDs, so it belongs outside results/ (the workflow keeps it
    under private/).
    """
    paths = [table_csv, summary_json] + ([plan_json] if plan_json is not None else [])
    with atomic_paths(*paths) as tmps:
        check.table.to_csv(tmps[0], index=False, lineterminator="\n")
        tmps[1].write_text(json.dumps(check.summary, indent=2) + "\n")
        if plan_json is not None:
            plan = {"dicom_dir": str(check.dicom_dir), "summary": check.summary,
                    "skipped": [list(x) for x in check.skipped], "patients": [p.to_dict() for p in check.plans]}
            tmps[2].write_text(json.dumps(plan) + "\n")


def read_plan(path) -> tuple[list[IngestPlan], dict]:
    """The plans written by :func:`write_check`, and the rest of the plan file (summary, skipped files)."""
    d = json.loads(Path(path).read_text())
    return [IngestPlan.from_dict(p) for p in d.pop("patients")], d



# --------------------------------------------------------------------------- ingest

def ingest(dicom_dir, labels_csv, mask_dir, out: dict, *, classes, field: int, salt: str, series: SeriesRule,
           percentiles, frames: dicom_scan.FrameRule | None = None, mask_names=None,
           prefix: str = PSEUDONYM_PREFIX, nifti_layout: nifti.Layout | None = None) -> dict:
    """Check the cohort (:func:`check_cohort`; every problem raised at once) and build the slice store.

    ``out`` maps images, masks, manifest, report to output paths. Returns the report (counts and
    timings). On any error nothing is left at the output paths.
    """
    t0 = time.perf_counter()
    check = check_cohort(dicom_dir, labels_csv, mask_dir, classes=classes, salt=salt, series=series, frames=frames,
                         mask_names=mask_names, prefix=prefix, nifti_layout=nifti_layout)
    log_check(check)
    raise_problems(check.problems)
    return build_store(check.plans, out, classes=classes, field=field, percentiles=percentiles,
                       skipped=check.summary["files_skipped"], t_plan=time.perf_counter() - t0)  # the check


def ingest_plan(plan_json, out: dict, *, classes, field: int, percentiles) -> dict:
    """Build the slice store from the plan the preflight (``cohort_check``) wrote; no header is read again."""
    t0 = time.perf_counter()
    plans, meta = read_plan(plan_json)
    log_skipped([tuple(x) for x in meta["skipped"]], meta["dicom_dir"])
    return build_store(plans, out, classes=classes, field=field, percentiles=percentiles,
                       skipped=meta["summary"]["files_skipped"], t_plan=time.perf_counter() - t0)
