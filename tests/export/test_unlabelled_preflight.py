"""``anapart predict`` on a new cohort: the workflow's preflight with no labels table selects the
same series and plans every slice of it, under the site's salt."""

import pandas as pd

from anapart import CLASSES
from anapart.cohort.preflight import check_cohort
from anapart.cohort.pseudonyms import pseudonym
from support.common import series_rule


def test_a_cohort_without_labels_plans_every_slice_of_every_patient(cohort):
    check = check_cohort(cohort / "dicom", None, None, classes=CLASSES, salt="site-salt", series=series_rule(),
                         prefix="E")
    assert check.problems == []
    assert {p.patient_id for p in check.plans} == set(pd.read_csv(cohort / "labels.csv")["patient_id"])
    for p in check.plans:
        assert p.indices == list(range(len(p.series.slices))) and set(p.labels) == {""}
        assert p.pseudonym == pseudonym(p.patient_id, "site-salt", "E")


def test_a_series_the_rule_cannot_select_is_a_problem_per_patient(cohort):
    rule = series_rule()
    strict = type(rule)("FLAIR", rule.orientation, rule.min_slices)  # the package wants another sequence
    check = check_cohort(cohort / "dicom", None, None, classes=CLASSES, salt="s", series=strict, prefix="E")
    assert check.plans == []
    assert len({p.patient for p in check.problems}) == len(set(pd.read_csv(cohort / "labels.csv")["patient_id"]))
