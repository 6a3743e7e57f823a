"""Intervals and paired tests for small test sets, where the bootstrap fails.

Why: with 14 test patients all classified right, the percentile bootstrap resamples 14/14 every
time and prints a 95% CI of 1.000-1.000, a certainty no 14 patients can give. Proportions get exact
(Clopper-Pearson) intervals, which never collapse; an AUC gets DeLong's variance (a closed form,
no resampling) with a logit-scale interval that stays inside [0, 1]; two methods scored on the same
patients are compared by the exact McNemar test on their discordant calls and by the paired DeLong
test on their AUCs (DeLong, DeLong & Clarke-Pearson 1988).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from anapart.metrics.mrmc import delong_cov, empirical_auc


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of k successes in n trials (beta quantiles); (nan, nan) for n = 0."""
    if n <= 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo = float(stats.beta.ppf(a, k, n - k + 1)) if k > 0 else 0.0
    hi = float(stats.beta.ppf(1 - a, k + 1, n - k)) if k < n else 1.0
    return lo, hi


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (for comparison; Clopper-Pearson is what the tables print)."""
    if n <= 0:
        return float("nan"), float("nan")
    z = float(stats.norm.ppf(1 - (1 - level) / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def proportion(k: int, n: int, level: float = 0.95) -> dict:
    """``{"value", "ci_low", "ci_high", "k", "n"}`` with the Clopper-Pearson interval."""
    lo, hi = clopper_pearson(int(k), int(n), level)
    return {"value": k / n if n else float("nan"), "ci_low": lo, "ci_high": hi, "k": int(k), "n": int(n)}


def auc_delong(truth, score, level: float = 0.95) -> dict:
    """Empirical AUC with DeLong's standard error and a logit-scale interval (inside [0, 1]).

    At an AUC of exactly 0 or 1 DeLong's variance is 0 and the logit is infinite, so the interval
    falls back to a deliberately conservative one: Clopper-Pearson as if only min(n1, n0)
    independent positive-negative comparisons had been seen (the n1 * n0 pairs share their cases,
    so they are far fewer independent comparisons; with 6 positives a perfect AUC is 0.54-1.00).
    It is not continuous with DeLong's: with 7 + 7 cases, AUC 1.000 gets 0.590-1.000 while 0.980
    (one pair of 49 wrong) gets 0.739-0.999 from DeLong, whose variance shrinks towards the boundary
    faster than the truth does; ``interval`` names which one a row has."""
    truth, score = np.asarray(truth, int), np.asarray(score, float)
    n1, n0 = int(truth.sum()), int((1 - truth).sum())
    if n1 == 0 or n0 == 0:
        return {"value": float("nan"), "se": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    auc = empirical_auc(truth, score)
    se = float(np.sqrt(delong_cov(truth, score[:, None])[0, 0]))
    z = float(stats.norm.ppf(1 - (1 - level) / 2))
    if 0 < auc < 1 and se > 0:
        logit, d = np.log(auc / (1 - auc)), se / (auc * (1 - auc))
        lo, hi = 1 / (1 + np.exp(-(logit - z * d))), 1 / (1 + np.exp(-(logit + z * d)))
        method = "DeLong (logit scale)"
    else:  # all pairs ordered (or all reversed): the smaller group's size bounds the certainty
        m = min(n1, n0)
        lo, hi = clopper_pearson(int(round(auc * m)), m, level)
        method = "exact bound on min(n1, n0) comparisons (AUC at 0 or 1; conservative)"
    return {"value": float(auc), "se": se, "ci_low": float(lo), "ci_high": float(hi), "interval": method}


def mcnemar_exact(correct_a, correct_b) -> dict:
    """Exact McNemar test (two-sided binomial on the discordant pairs) of two methods' right/wrong
    calls on the same units; b = a right and b wrong, c = the reverse."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    n01, n10 = int(np.sum(a & ~b)), int(np.sum(~a & b))
    p = float(stats.binomtest(n01, n01 + n10, 0.5).pvalue) if n01 + n10 else 1.0
    return {"a_only": n01, "b_only": n10, "p": p}


def paired_delong(truth, score_a, score_b, level: float = 0.95) -> dict:
    """Paired DeLong test of AUC(a) - AUC(b) on the same units: difference, its SE and Wald CI, p."""
    truth = np.asarray(truth, int)
    scores = np.column_stack([np.asarray(score_a, float), np.asarray(score_b, float)])  # cases x methods
    if truth.sum() < 2 or len(truth) - truth.sum() < 2:  # DeLong's variance needs two of each
        return {"diff": float("nan"), "se": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
                "p": float("nan")}
    cov = delong_cov(truth, scores)
    diff = empirical_auc(truth, scores[:, 0]) - empirical_auc(truth, scores[:, 1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = np.sqrt(max(var, 0.0))
    z = float(stats.norm.ppf(1 - (1 - level) / 2))
    if se == 0:  # e.g. both AUCs 1: DeLong's variance is 0, which is no certainty; no interval
        return {"diff": float(diff), "se": 0.0, "ci_low": float("nan"), "ci_high": float("nan"),
                "p": 1.0 if diff == 0 else float("nan")}
    p = float(2 * stats.norm.sf(abs(diff) / se))
    return {"diff": float(diff), "se": float(se), "ci_low": float(diff - z * se), "ci_high": float(diff + z * se),
            "p": p}
