"""General contrasts of an Obuchowski-Rockette analysis, and a pair of modalities on its own.

Why: the format x fraction interaction (the data-cost claim) is not a pair of modalities but a
contrast over four (format, fraction) cells; and a pairwise comparison judged against the error
term of every modality of the study assumes each varies equally across readers (Hillis 2007; Boik
1981). Built on :func:`anapart.metrics.mrmc.or_test`; tested in tests/metrics/test_mrmc_contrast.py
(Van Dyke's published pair, the global F over an orthonormal contrast basis, a hand computation).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from anapart.metrics.mrmc import or_test



def sub_design(theta: np.ndarray, cov: np.ndarray, keep) -> tuple[np.ndarray, np.ndarray]:
    """FOMs and covariance of the modalities ``keep`` (row indices of ``theta``) only, in that order:
    an OR analysis on its own modalities (Hillis 2007; Boik 1981), whose error term MS(T:R) and
    covariances come from the compared modalities alone, not from every modality of the study."""
    t, r = theta.shape
    keep = list(keep)
    cells = np.concatenate([np.arange(m * r, (m + 1) * r) for m in keep])
    return theta[keep], cov[np.ix_(cells, cells)]


def or_contrast(theta: np.ndarray, cov: np.ndarray, weights, alpha: float = 0.05,
                convention: str = "reference") -> dict:
    """Estimate, SE, df, CI and p of the contrast ``sum_i c_i * mean_j theta_ij`` (``weights`` = c,
    one per modality, summing to 0) under RRRC (Hillis df, t test) and FRRC (normal).

    Why: a comparison that is not a pair of modalities -- the format x fraction interaction
    (seg112 - full)@25% - (seg112 - full)@100% over four (format, fraction) cells -- needs the OR
    variance of a general contrast. Derivation (OR model theta_ij = mu + tau_i + R_j + (tau R)_ij +
    e_ij with Var(e) = Var, Cov1 same reader, Cov2 same modality, Cov3 neither): with sum c = 0 the
    reader effects cancel and sum_{i != i'} c_i c_i' = -c'c, so
        Var(c' theta_bar) = (c'c / r) [s2_TR + Var - Cov1 + (r - 1)(Cov2 - Cov3)];
    E MS(T:R) = s2_TR + Var - Cov1 - (Cov2 - Cov3), hence RRRC
        Var = (c'c / r) [MS(T:R) + r max(Cov2 - Cov3, 0)]
    with Hillis' df2 = [MS(T:R) + r max(Cov2 - Cov3, 0)]^2 / {MS(T:R)^2 / ((t - 1)(r - 1))} (the
    denominator of the global F); FRRC (s2_TR = 0 for fixed readers, no MS(T:R))
        Var = (c'c / r) [Var - Cov1 + (r - 1)(Cov2 - Cov3)],
    with max(Cov2 - Cov3, 0) there under ``convention="reference"`` (as :func:`or_test`).
    For c = (1, -1) these are the pairwise 2/r forms of :func:`or_test` in the same convention; the
    mean over an orthonormal basis of contrasts of t^2 is the global F (both are tests)."""
    theta = np.asarray(theta, dtype=float)
    t, r = theta.shape
    c = np.asarray(weights, dtype=float)
    if c.shape != (t,):
        raise ValueError(f"contrast needs {t} weights (one per modality), got {c.size}")
    if abs(c.sum()) > 1e-9 * max(1.0, np.abs(c).sum()) or not np.any(c):
        raise ValueError(f"contrast weights {c.tolist()} must be non-zero and sum to 0")
    comps = or_test(theta, cov, list(range(t)), list(range(r)), alpha, convention)["components"]
    est = float(c @ theta.mean(axis=1))
    cc = float(c @ c)
    ms_tr, var, cov1, cov2, cov3 = (comps[k] for k in ("MS(T:R)", "Var", "Cov1", "Cov2", "Cov3"))
    out = {}
    den = ms_tr + r * max(cov2 - cov3, 0.0)
    if den > 0:
        df = den ** 2 / (ms_tr ** 2 / ((t - 1) * (r - 1))) if ms_tr > 0 else np.inf
        se = float(np.sqrt(cc / r * den))
        out["rrrc"] = _contrast_row(est, se, float(df), alpha, None)
    else:
        out["rrrc"] = _contrast_row(est, np.nan, np.nan, alpha,
                                    f"denominator MS(T:R) + r*max(Cov2-Cov3,0) = {den:.3g} is not > 0")
    reference = convention == "reference"
    den_f = var - cov1 + (r - 1) * (max(cov2 - cov3, 0.0) if reference else cov2 - cov3)
    if den_f > 0:
        out["frrc"] = _contrast_row(est, float(np.sqrt(cc / r * den_f)), np.inf, alpha, None)
    else:
        form = "max(Cov2-Cov3,0)" if reference else "(Cov2-Cov3)"
        out["frrc"] = _contrast_row(est, np.nan, np.nan, alpha,
                                    f"denominator Var - Cov1 + (r-1){form} = {den_f:.3g} is not > 0")
    return out


def _contrast_row(est: float, se: float, df: float, alpha: float, reason) -> dict:
    if reason is not None:
        return {"estimate": est, "se": np.nan, "df": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan,
                "reason": reason}
    q = stats.norm.ppf(1 - alpha / 2) if np.isinf(df) else stats.t.ppf(1 - alpha / 2, df)
    lo, hi = est - q * se, est + q * se
    z = abs(est / se)
    p = 2 * (stats.norm.sf(z) if np.isinf(df) else stats.t.sf(z, df))
    return {"estimate": est, "se": se, "df": df, "ci_low": float(lo), "ci_high": float(hi), "p": float(p),
            "reason": None}
