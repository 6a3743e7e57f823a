"""A cohort's problems: each names its file or CSV line, and a check reports all of them at once."""

from __future__ import annotations

from dataclasses import dataclass

from anapart.io.errors import IngestError


@dataclass
class Problem:
    """One problem of the cohort: ``text`` names the file (or CSV line); ``kind`` is a short code that
    may be written under results/ (the text may not: paths can hold patient names)."""

    kind: str
    text: str
    patient: str | None = None  # PatientID (never written under results/)

    def __str__(self) -> str:
        return self.text


MAX_LISTED = 20  # problems quoted in an error message; the log lists all of them


def problems_message(problems: list) -> str:
    """``N problems, first 20: ...`` (one per line), the one-line reason a failed check gives."""
    n = len(problems)
    head = f"{n} problem{'s' if n != 1 else ''}" + (f", first {MAX_LISTED}" if n > MAX_LISTED else "")
    return head + ":\n  " + "\n  ".join(str(p) for p in problems[:MAX_LISTED])


def raise_problems(problems: list) -> None:
    if problems:
        raise IngestError(problems_message(problems))
