"""The labels table (``patient_id, label[, instance]``): every bad row named by its line, at once."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from anapart.cohort.problems import Problem, raise_problems

# Separators a spreadsheet may have used instead of commas (a European-locale Excel writes ';').
OTHER_SEPARATORS = (";", "\t", "|")


def check_labels(path: str | os.PathLike, classes) -> tuple[pd.DataFrame, list[Problem]]:
    """Read the labels table: ``patient_id, label`` and optionally ``instance`` (blank = every slice).

    Returns the valid rows as a frame with ``patient_id`` (str), ``instance`` (Int64 or <NA>),
    ``label``, ``line`` (1-based line in the file), and one problem per bad row.
    """
    path = Path(path)
    empty = pd.DataFrame({"patient_id": pd.Series(dtype=str), "instance": pd.array([], dtype="Int64"),
                          "label": pd.Series(dtype=str), "line": pd.Series(dtype=int)})
    if not path.is_file():
        return empty, [Problem("labels", f"{path}: labels table does not exist")]
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline().lstrip("\ufeff")
    sep = next((sep for sep in OTHER_SEPARATORS if {"patient_id", "label"} <= {c.strip() for c in header.split(sep)}
                and not {"patient_id", "label"} <= {c.strip() for c in header.split(",")}), None)
    if sep is not None:  # one clear message, not one per row that fails to parse (or a parser error)
        return empty, [Problem("labels", f"{path}: labels table is separated by {sep!r}, not commas; save it "
                                         "as comma-separated values (header patient_id,label[,instance])")]
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        return empty, [Problem("labels", f"{path}: could not read labels table as CSV ({e})")]
    df.columns = [c.strip() for c in df.columns]
    missing = {"patient_id", "label"} - set(df.columns)
    if missing:
        return empty, [Problem("labels", f"{path}: labels table lacks column(s) {sorted(missing)}; has {list(df.columns)}")]
    found: list[tuple[int, Problem]] = []
    df["line"] = np.arange(len(df)) + 2  # 1-based, after the header line
    df["patient_id"] = df["patient_id"].str.strip()
    df["label"] = df["label"].str.strip()
    bad = pd.Series(False, index=df.index)
    for i in df.index[df["patient_id"] == ""]:
        found.append((df.at[i, "line"], Problem("labels", f"{path} line {df.at[i, 'line']}: empty patient_id")))
        bad[i] = True
    for i in df.index[~df["label"].isin(list(classes))]:
        found.append((df.at[i, "line"], Problem("labels", f"{path} line {df.at[i, 'line']}: unknown class "
                                                          f"'{df.at[i, 'label']}' (known classes: {', '.join(classes)})",
                                                df.at[i, "patient_id"])))
        bad[i] = True
    if "instance" in df.columns:
        inst = df["instance"].str.strip()
        for i in inst.index[(inst != "") & ~inst.str.fullmatch(r"\d+")]:
            found.append((df.at[i, "line"], Problem("labels", f"{path} line {df.at[i, 'line']}: instance '{inst[i]}' "
                                                              "is not a whole number", df.at[i, "patient_id"])))
            bad[i] = True
        df["instance"] = pd.array([int(v) if v.isdigit() else pd.NA for v in inst], dtype="Int64")
    else:
        df["instance"] = pd.array([pd.NA] * len(df), dtype="Int64")
    dup = df.duplicated(["patient_id", "instance"], keep="first") & ~bad
    for i in df.index[dup]:
        found.append((df.at[i, "line"], Problem("labels", f"{path} line {df.at[i, 'line']}: duplicate label row for "
                                                          "the same patient and instance", df.at[i, "patient_id"])))
        bad[i] = True
    problems = [p for _, p in sorted(found, key=lambda lp: lp[0])]  # file order; stable within a line
    return df.loc[~bad, ["patient_id", "instance", "label", "line"]].reset_index(drop=True), problems


def read_labels(path: str | os.PathLike, classes) -> pd.DataFrame:
    """:func:`check_labels` that raises every problem of the table at once."""
    df, problems = check_labels(path, classes)
    raise_problems(problems)
    return df
