"""The choice of each patient's series: a :class:`SeriesRule` picks exactly one series per patient.

Both studies choose series with it (study A in :mod:`anapart.cohort.preflight`, study B in
:mod:`anapart.staging.patches`).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from anapart.cohort.problems import Problem
from anapart.io import dicom_scan
from anapart.io.dicom import Series

log = logging.getLogger("anapart.cohort")


SERIES_ORIENTATIONS = ("axial", "sagittal", "coronal", "any")


@dataclass(frozen=True)
class SeriesRule:
    """Which of a patient's series is *the* series: a SeriesDescription regex (case-insensitive, None =
    any), an orientation (axial | sagittal | coronal | any) and a minimum number of slices.

    Study A's rule is ``cohort.series``; study B has one per sequence (``staging.sequences``). A
    localizer never matches: ImageType LOCALIZER says so, and one without it (a few slices, usually
    of mixed orientations) fails ``min_slices`` and ``orientation``.
    """

    description: str | None
    orientation: str
    min_slices: int

    def __post_init__(self):
        if self.orientation not in SERIES_ORIENTATIONS:
            raise ValueError(f"series orientation '{self.orientation}' is not one of {SERIES_ORIENTATIONS}")
        if self.description:
            try:
                re.compile(self.description)
            except re.error as e:
                raise ValueError(f"series description '{self.description}' is not a regular expression ({e})") from e

    @classmethod
    def from_config(cls, d: dict, where: str = "cohort.series") -> "SeriesRule":
        missing = [k for k in ("description", "orientation", "min_slices") if k not in (d or {})]
        if missing:
            raise ValueError(f"config {where} lacks {missing}")
        return cls(d["description"] or None, d["orientation"], int(d["min_slices"]))

    @classmethod
    def for_sequence(cls, value) -> "SeriesRule":
        """A ``staging.sequences`` entry: a regex string is short for {description: regex, orientation: any,
        min_slices: 1}; a mapping may set orientation and min_slices as ``cohort.series`` does."""
        if isinstance(value, str):
            return cls(value, "any", 1)
        return cls(value.get("description") or None, value.get("orientation", "any"), int(value.get("min_slices", 1)))

    def matches(self, s: Series) -> bool:
        """Slices are counted as the files hold them (before cohort.frames), and a series whose
        orientation is unknown (no slice could be placed) is not excluded by it: a broken series that
        would be chosen is reported, not silently passed over."""
        if s.localizer or s.n_images < self.min_slices:
            return False
        if self.orientation != "any" and s.orientation_label not in (self.orientation, "unknown"):
            return False
        return not self.description or re.search(self.description, s.description, re.IGNORECASE) is not None

    def __str__(self) -> str:
        desc = f"description ~ /{self.description}/" if self.description else "any description"
        return f"{desc}, orientation {self.orientation}, at least {self.min_slices} slices"


def describe_series(s: Series, root) -> str:
    """One candidate, as the errors list it: folder (relative to the DICOM folder), SeriesNumber,
    StudyDate, description, orientation, slices (what a user needs to find it in a viewer)."""
    try:
        where = s.folder.relative_to(root).as_posix()
    except ValueError:
        where = str(s.folder)
    extra = (", localizer" if s.localizer else "") + (f", {len(s.problems)} problem(s)" if s.problems else "")
    return (f"'{where}' (series {s.series_number or '?'} of {s.study_date or '?'}, '{s.description}', "
            f"{s.orientation_label}, {len(s.slices)} slices{extra})")


def select_series(candidates: list[Series], rule: SeriesRule) -> list[Series]:
    """The candidates the rule matches, in folder order (exactly one is what a caller wants)."""
    return sorted((s for s in candidates if rule.matches(s)), key=lambda s: (str(s.folder), s.series_uid))


def patient_folder(series: list[Series]) -> Path:
    """The folder that holds all of a patient's series (what a problem without one file names)."""
    return Path(os.path.commonpath([str(s.folder) for s in series]))


def series_by_patient(scan: dicom_scan.Scan | None) -> dict[str, list[Series]]:
    """Each PatientID's series, in folder order."""
    out: dict[str, list[Series]] = {}
    if scan is not None:
        for s in sorted(scan.series.values(), key=lambda s: (str(s.folder), s.series_uid)):
            out.setdefault(s.patient_id, []).append(s)
    return out


def choose_series(cands: list[Series], rules: dict[str, SeriesRule], pid: str, root,
                  setting: str) -> tuple[dict[str, Series], list[Problem], list[Problem]]:
    """One patient's series per rule (study A: one rule, study B: one per sequence), with study A's and
    study B's shared checks.

    Returns (chosen series by rule name, problems, warnings). Problems: no series or several match a
    rule (listing the candidates), or the chosen series cannot be used. Warnings: the problems of the
    patient's series that are not used (they fail nothing, and are never silent) and the chosen
    series' slice gaps. ``setting`` names the config key of the rules in messages (a rule named ""
    is the key itself).
    """
    chosen, problems = {}, []
    listing = "; ".join(describe_series(s, root) for s in cands)
    folder = patient_folder(cands)
    for name, rule in rules.items():
        where = f"{setting}.{name}" if name else setting
        matching = select_series(cands, rule)
        if not matching:
            problems.append(Problem("no_matching_series", f"{folder}: no series matches the series rule ({where}: "
                                                          f"{rule}); candidates: {listing}", pid))
        elif len(matching) > 1:
            problems.append(Problem("several_matching_series",
                                    f"{folder}: {len(matching)} series match the series rule ({where}: {rule}); "
                                    f"make {where} stricter (e.g. its description). Candidates: {listing}", pid))
        else:
            chosen[name] = matching[0]
            problems += [Problem("series", p, pid) for p in matching[0].problems_as_used]
    used = {s.series_uid for s in chosen.values()}
    warnings = [Problem("unused_series_problem", f"{p} (in series '{s.description}', which is not used)", pid)
                for s in cands if s.series_uid not in used for p in s.problems]
    warnings += [Problem("slice_gap", w, pid) for s in chosen.values() for w in s.warnings]
    return chosen, problems, warnings


# --------------------------------------------------------------------------- logging (file names: logs only, never results/)

MAX_SKIPPED_LOGGED = 3  # example files per kind of skipped file


def log_warnings(warnings: list) -> None:
    """Each warning (it fails nothing, but may name a slice the user expected), then their count."""
    for w in warnings:
        log.warning("%s", w)
    if warnings:
        log.warning("%d warning%s (not fatal; see above)", len(warnings), "s" if len(warnings) != 1 else "")


def log_skipped(skipped: list, dicom_dir) -> None:
    """Counts per kind of skipped file, and the first few files of each kind (relative to the DICOM folder)."""
    if not skipped:
        return
    by_kind: dict[str, list[str]] = {}
    for rel, kind in skipped:
        by_kind.setdefault(kind, []).append(rel)
    log.info("skipped %d file(s) under %s: %s", len(skipped), dicom_dir,
             ", ".join(f"{len(v)} {dicom_scan.SKIP_KINDS.get(k, k)}" for k, v in sorted(by_kind.items())))
    for kind, files in sorted(by_kind.items()):
        more = f" and {len(files) - MAX_SKIPPED_LOGGED} more" if len(files) > MAX_SKIPPED_LOGGED else ""
        log.info("  skipped (%s): %s%s", kind, ", ".join(files[:MAX_SKIPPED_LOGGED]), more)
