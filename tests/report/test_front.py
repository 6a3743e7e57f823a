"""The report's front page (anapart.report.front): verdicts in words from p and alpha, the interval
at the level its table states, what each endpoint rests on, the synthetic banner, the optional
sample-size sentence, and a page docutils renders without a message, with the headline element."""

import math
import re

import pandas as pd
import pytest
from docutils.core import publish_parts

from anapart.report import front

PRIMARY = {"role": "primary", "endpoint": "discrimination", "frac": 25, "figure": "aauc", "analysis": "RRRC",
           "contrast": "seg112 - full", "estimate": 0.268, "ci_low": 0.028, "ci_high": 0.508, "p": 0.0317,
           "alpha": 0.025, "note": "single split"}
CFG = {"cohort": {"source": "synthetic", "pseudonym_salt": "<secret>"}, "staging": {"cohort": {"source": "synthetic"}}}
PROV = {"anapart": "0.1.0", "commit": "not a git checkout", "lock_sha256": "ab" * 32,
        "packages": {"torch": "2.0", "snakemake": "9.0"}}


def _auc(degenerate=(True, False, True, False, False, False)):
    rows = [{"net": n, "fmt": f, "frac": fr, "degenerate": d}
            for (n, f, fr), d in zip([("a", "seg112", 25), ("b", "seg112", 25), ("a", "full", 25), ("b", "full", 25),
                                      ("a", "full", 100), ("b", "seg224", 25)], degenerate)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("p", "alpha", "est", "words"), [
    (0.0317, 0.025, 0.268, "not shown at alpha 0.025"),
    (0.01, 0.025, 0.268, "shown at alpha 0.025: seg112 above full"),
    (0.01, 0.025, -0.1, "shown at alpha 0.025: seg112 below full"),
    (0.025, 0.025, 0.1, "not shown at alpha 0.025"),  # p must be below alpha
    (math.nan, 0.025, 0.1, "none, no p-value"),
    (0.01, 0.025, math.nan, "none, no estimate"),
])
def test_verdict_in_words_from_p_and_alpha(p, alpha, est, words):
    assert front.verdict({"p": p, "alpha": alpha, "estimate": est}, "seg112", "full") == words


def test_the_tables_own_verdict_is_printed_as_it_is():
    row = {**PRIMARY, "verdict": "not shown (RRRC, alpha 0.025)"}
    assert front.verdict(row, "seg112", "full") == "not shown (RRRC, alpha 0.025)"


def test_interval_at_its_stated_level_never_95_beside_another_alpha():
    assert front.interval_text({**PRIMARY, "ci_level": 0.975}, 0.95) == "97.5% CI +0.028 to +0.508"
    # without a ci_level column the 95% interval beside alpha 0.025 is not called a "95% CI"
    text = front.interval_text(PRIMARY, 0.95)
    assert "95% CI" not in text and "not matched to alpha 0.025" in text
    assert front.interval_text({**PRIMARY, "alpha": 0.05}, 0.95) == "95% CI +0.028 to +0.508"
    assert front.interval_text({**PRIMARY, "ci_low": math.nan}, 0.95) == "no interval"


def test_study_a_line_counts_networks_patients_and_degenerate_models():
    (line,) = front.study_a_lines(pd.DataFrame([PRIMARY]), _auc(), (15, 88), 0.95)
    # the primary's models: seg112 and full at 25% (4 of the 6 rows), 2 of them degenerate
    assert "degenerate models: 2 of 4" in line
    assert "2 network(s) (a, b), 15 test patients (88 slices)" in line
    assert "**+0.268**" in line and "p = 0.032" in line and "alpha 0.025" in line
    assert "Verdict: not shown at alpha 0.025" in line


def test_a_replicated_primary_rests_on_every_patient_not_the_single_split():
    row = {**PRIMARY, "estimator": "within-fold", "n_replicates": 6}
    (line,) = front.study_a_lines(pd.DataFrame([row]), _auc(), (15, 88), 0.95)
    assert "every patient tested once in each of 6 replicates" in line
    assert "15 test patients" not in line and "degenerate models" not in line  # the single split's counts


def test_the_data_cost_co_primary_names_both_fractions_and_counts_their_models():
    row = {**PRIMARY, "role": "primary (data cost)", "contrast": "(seg112 - full)@25 - (seg112 - full)@100",
           "frac": math.nan, "estimate": 0.05, "ci_low": -0.02, "ci_high": 0.12, "p": 0.2, "ci_level": 0.9833}
    first, second = front.study_a_lines(pd.DataFrame([PRIMARY, row]), _auc(), (15, 88), 0.95)
    assert "seg112 minus full at 25% of the training set minus the same difference at 100%" in second
    # seg112 and full at 25% and 100%: 5 of the 6 rows, 2 degenerate; the first line is unchanged
    assert "degenerate models: 2 of 5" in second and "degenerate models: 2 of 4" in first
    assert "**+0.050**" in second and "p = 0.200" in second


def test_study_b_names_the_auc_difference_when_its_primary_test_is_not_mcnemar():
    base = {"role": "primary", "a": "ensemble", "b": "TNM", "accuracy_a": 0.8, "accuracy_b": 0.7, "p": 0.04,
            "alpha": 0.05, "ci_low": 0.01, "ci_high": 0.2, "n_patients": 30}
    mc = front.study_b_line(pd.DataFrame([{**base, "test": "exact McNemar", "estimate": 0.1}]))
    assert "accuracy 0.80 vs 0.70, difference **+0.100**" in mc
    dl = front.study_b_line(pd.DataFrame([{**base, "test": "paired DeLong (AUC of the mean advanced-stage "
                                                           "probability)", "estimate": 0.07, "auc_a": 0.9,
                                           "auc_b": 0.83}]))
    assert "AUC 0.90 vs 0.83, AUC difference **+0.070**" in dl and "accuracy" not in dl


def test_banner_names_what_is_synthetic():
    assert "Synthetic demo" in front.banner(True, True, True)
    real_a_phantom_b = front.banner(False, True, True)
    assert "Study B ran on generated phantoms" in real_a_phantom_b
    assert front.banner(False, True, False) == "" and front.banner(False, False, True) == ""


def _page(**kw):
    claims = pd.DataFrame([{"role": "primary", "a": "ensemble", "b": "resnet50", "test": "exact McNemar",
                            "n_patients": 42, "accuracy_a": 0.81, "accuracy_b": 0.74, "estimate": 0.07,
                            "ci_low": math.nan, "ci_high": math.nan, "p": 0.2, "simulated": False}])
    args = dict(table=pd.DataFrame([PRIMARY]), auc=_auc(), n_test=(15, 88), ci_level=0.95, config=CFG, prov=PROV,
                template="The workflow.", claims=claims)
    return front.page(**{**args, **kw})


def test_page_renders_without_docutils_messages_and_has_the_headline_element():
    html = publish_parts(_page(sample_size="A study of 120 patients detects 0.05 with 80% power."),
                         writer="html", settings_overrides={"report_level": 1})["html_body"]
    assert 'id="anapart-headline"' in html
    assert not re.search(r"System Message|\((INFO|WARNING|ERROR|SEVERE)/\d\)", html)
    head = html[html.index('id="anapart-headline"'):html.index("Glossary")]
    for words in ("Synthetic demo", "Study A", "Study B", "ensemble better than resnet50", "42 test patients",
                  "not shown at alpha 0.05", "120 patients"):  # the optional sample-size slot
        assert words in head, words
    assert "Li S, Hua HL" in html and "Huang J, He R" in html and "s44196-021-00026-9" in html
    assert "&lt;secret&gt;" in html  # the merged public config, escaped


def test_without_study_b_or_sample_size_the_page_says_so():
    page = _page(claims=None, sample_size=None)
    assert "not run in this configuration" in page and "120 patients" not in page


def test_data_set_citation_only_when_configured():
    assert "Data set:" not in _page()
    cited = _page(config={**CFG, "cohort": {**CFG["cohort"], "citation": "Buda M et al. 2019"}})
    assert "Data set: Buda M et al. 2019" in cited
