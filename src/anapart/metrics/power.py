"""Power and sample size of a two-modality MRMC study from a pilot's Obuchowski-Rockette components.

Why: a pilot that "shows nothing" still estimates how much figures of merit vary over readers
(networks) and cases (patients); from those one can say how many of each a study needs to detect a
given difference. Following Hillis SL, Obuchowski NA, Berbaum KS (2011), "Power estimation for
multireader ROC methods: an updated and unified approach", Acad Radiol 18:129-142:

- the pilot's OR components at its K* cases: Var, Cov1, Cov2, Cov3 (case-sampling (co)variances of
  the FOMs) and VarTR = MS(T:R) - Var + Cov1 + max(Cov2 - Cov3, 0) (their eq. 9), truncated at 0;
- the case-sampling components scale with 1/K: at K planned cases they are (K*/K) x the pilot's;
- for J readers and effect d (difference of the reader-averaged FOMs of the two modalities):

  RRRC: D = VarTR + (K*/K)(Var - Cov1 + (J-1) max(Cov2 - Cov3, 0)), ncp = J d^2 / (2 D), statistic
        noncentral F(1, df2, ncp) with Hillis' df2 = D^2 / [(VarTR + (K*/K)(Var - Cov1 - max(Cov2 - Cov3,
        0)))^2 / (J-1)] at the *planned* J and K;
  FRRC: D = (K*/K)(Var - Cov1 + (J-1) max(Cov2 - Cov3, 0)), noncentral chi-square(1, ncp);
  RRFC: D = VarTR + (K*/K)(Var - Cov1 - max(Cov2 - Cov3, 0)), noncentral F(1, J-1, ncp).

Power = P(statistic > its (1 - alpha) quantile under the null). RRRC power is not monotone in K (as K
grows df2 falls towards J - 1 and the critical value rises), so the smallest K for a target power
is found by evaluating every K up to a limit, and "not reachable" reports the best power seen.
RJafroc's SsPowerGivenJKOrVarComp is the same except its FRRC uses F(1, K-1) (docs/planning.md).

Study B's paired proportions: Connor RJ (1987), "Sample size for testing differences in proportions
for the paired-sample design", Biometrics 43:207-211, and the exact conditional McNemar power by
enumeration beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from anapart.metrics.intervals import mcnemar_p

ANALYSES = ("RRRC", "FRRC", "RRFC")
FRRC_DF = ("chi2", "cases-1")


@dataclass(frozen=True)
class Components:
    """A pilot's OR components at its ``cases`` (K*) cases. ``var_tr`` as estimated (may be < 0;
    truncated at 0 where used)."""
    var_tr: float
    var: float
    cov1: float
    cov2: float
    cov3: float
    cases: int

    @classmethod
    def from_fit(cls, fit: dict) -> "Components":
        """From an :func:`anapart.metrics.mrmc.or_analysis` result of two modalities."""
        n_mod = len(fit["design"]["modalities"])
        if n_mod != 2:
            raise ValueError(f"power is for two modalities; the pilot has {n_mod}: choose two")
        c = fit["components"]
        var_tr = c["MS(T:R)"] - c["Var"] + c["Cov1"] + max(c["Cov2"] - c["Cov3"], 0.0)  # Hillis 2011 eq. 9
        return cls(float(var_tr), float(c["Var"]), float(c["Cov1"]), float(c["Cov2"]), float(c["Cov3"]),
                   int(fit["design"]["n_cases"]))

    @classmethod
    def from_dict(cls, d: dict) -> "Components":
        """From ``{"var_tr", "var", "cov1", "cov2", "cov3", "cases"}`` (ValueError naming what is wrong)."""
        keys = ("var_tr", "var", "cov1", "cov2", "cov3", "cases")
        missing = [k for k in keys if k not in d]
        if missing:
            raise ValueError(f"components: missing key(s) {missing} (need {list(keys)})")
        extra = sorted(set(d) - set(keys))
        if extra:
            raise ValueError(f"components: unknown key(s) {extra} (need {list(keys)})")
        try:
            vals = {k: float(d[k]) for k in keys}
        except (TypeError, ValueError):
            raise ValueError(f"components: every value must be a number, got {d}") from None
        if not all(np.isfinite(list(vals.values()))):
            raise ValueError(f"components: every value must be finite, got {d}")
        if vals["cases"] < 2 or vals["cases"] != int(vals["cases"]):
            raise ValueError(f"components: cases (the pilot's K*) must be an integer >= 2, got {d['cases']}")
        return cls(**{**vals, "cases": int(vals["cases"])})

    def as_dict(self) -> dict:
        return asdict(self)


def _terms(comp: Components, readers, cases):
    """VarTR (truncated), the scaled case terms at (J, K): numerator-side D parts."""
    J, K = np.asarray(readers, float), np.asarray(cases, float)
    scale = comp.cases / K
    c23 = max(comp.cov2 - comp.cov3, 0.0)
    var_tr = max(comp.var_tr, 0.0)
    return J, K, scale, c23, var_tr


def power(comp: Components, readers, cases, effect: float, alpha: float = 0.05, analysis: str = "RRRC",
          frrc_df: str = "chi2") -> dict:
    """Power of the two-sided test of equal FOMs at ``readers`` (J) and ``cases`` (K), each a number or
    an array (broadcast). Returns ``power``, ``ncp``, ``df2`` (inf: chi-square), ``critical_value``
    (of the F or chi-square statistic), with ``reason`` where the variance is not > 0. ``frrc_df``:
    ``chi2`` (Hillis 2011, the FRRC test of :func:`anapart.metrics.mrmc.or_test`) or ``cases-1``
    (RJafroc's F(1, K - 1))."""
    if frrc_df not in FRRC_DF:
        raise ValueError(f"frrc_df must be one of {FRRC_DF}, not {frrc_df!r}")
    if analysis not in ANALYSES:
        raise ValueError(f"analysis must be one of {ANALYSES}, not {analysis!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    J, K, scale, c23, var_tr = _terms(comp, readers, cases)
    if np.any(J < 2) or np.any(K < 2):
        raise ValueError(f"need >= 2 readers and >= 2 cases, got readers={readers}, cases={cases}")
    if analysis == "RRRC":
        den = var_tr + scale * (comp.var - comp.cov1 + (J - 1) * c23)
        ms_tr = var_tr + scale * (comp.var - comp.cov1 - c23)  # E[MS(T:R)] at (J, K)
        with np.errstate(divide="ignore", invalid="ignore"):
            df2 = np.where(ms_tr > 0, den ** 2 / (ms_tr ** 2 / (J - 1)), np.inf)
    elif analysis == "FRRC":
        den = scale * (comp.var - comp.cov1 + (J - 1) * c23)
        df2 = np.broadcast_to(np.inf if frrc_df == "chi2" else K - 1, np.broadcast(J, K).shape).astype(float)
    else:
        den = var_tr + scale * (comp.var - comp.cov1 - c23)
        df2 = np.broadcast_to(J - 1, np.broadcast(J, K).shape).astype(float)
    den, df2 = np.broadcast_arrays(np.asarray(den, float), np.asarray(df2, float))
    ok = den > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ncp = np.where(ok, J * effect ** 2 / (2 * np.where(ok, den, 1.0)), np.nan)
    chi = np.isinf(df2)
    finite_df = np.where(chi, 1.0, df2)
    crit = np.where(chi, stats.chi2.isf(alpha, 1), stats.f.isf(alpha, 1, finite_df))
    nc = np.where(ok, ncp, 0.0)
    pw = np.where(chi, stats.ncx2.sf(crit, 1, nc), stats.ncf.sf(crit, 1, finite_df, nc))
    pw = np.where(nc > 0, pw, alpha)  # no effect: the size (scipy's ncf at ncp 0 is unreliable)
    pw = np.where(ok, pw, np.nan)
    scalar = np.ndim(readers) == 0 and np.ndim(cases) == 0
    out = {"analysis": analysis, "readers": readers, "cases": cases, "effect": float(effect), "alpha": alpha,
           "power": pw, "ncp": ncp, "df2": df2, "critical_value": crit,
           "statistic": "chi2(1)" if analysis == "FRRC" and frrc_df == "chi2" else "F(1, df2)"}
    if scalar:
        out = {k: (float(v) if isinstance(v, np.ndarray) else v) for k, v in out.items()}
        out["reason"] = None if ok else f"variance of the planned difference is not > 0 (D = {float(den):.3g})"
    return out


def cases_for_power(comp: Components, readers: int, target: float, effect: float, alpha: float = 0.05,
                    analysis: str = "RRRC", max_cases: int = 5000, frrc_df: str = "chi2") -> dict:
    """The smallest K <= ``max_cases`` whose power reaches ``target`` at ``readers`` (every K from 2
    evaluated: RRRC power is not monotone in K). Not reachable: ``max_power`` and ``at_cases``, and
    for RRRC/RRFC the limit as K grows (VarTR alone: more cases cannot remove reader variability)."""
    if not 0 < target < 1:
        raise ValueError(f"target power must be in (0, 1), not {target}")
    if max_cases < 2:
        raise ValueError(f"max_cases must be >= 2, not {max_cases}")
    ks = np.arange(2, int(max_cases) + 1)
    res = power(comp, readers, ks, effect, alpha, analysis, frrc_df)
    pw = np.nan_to_num(res["power"], nan=-1.0)
    base = {"analysis": analysis, "readers": int(readers), "target_power": target, "effect": float(effect),
            "alpha": alpha, "max_cases": int(max_cases)}
    hit = np.flatnonzero(pw >= target)
    if hit.size:
        i = int(hit[0])
        return {**base, "reachable": True, "cases": int(ks[i]), "power": float(pw[i]), "ncp": float(res["ncp"][i]),
                "df2": float(res["df2"][i]), "critical_value": float(res["critical_value"][i])}
    i = int(np.argmax(pw))
    out = {**base, "reachable": False, "cases": None, "max_power": float(pw[i]) if pw[i] >= 0 else float("nan"),
           "at_cases": int(ks[i])}
    if analysis in ("RRRC", "RRFC") and comp.var_tr > 0:  # K -> inf: only VarTR is left
        ncp = readers * effect ** 2 / (2 * comp.var_tr)
        crit = stats.f.isf(alpha, 1, readers - 1)
        out["power_as_cases_grow"] = float(stats.ncf.sf(crit, 1, readers - 1, ncp))
    return out


def power_table(comp: Components, readers, cases, effect: float, alpha: float = 0.05,
                analysis: str = "RRRC") -> pd.DataFrame:
    """Power over the grid ``readers`` x ``cases`` (one row per pair)."""
    J, K = np.meshgrid(np.asarray(readers, int), np.asarray(cases, int), indexing="ij")
    res = power(comp, J.ravel(), K.ravel(), effect, alpha, analysis)
    return pd.DataFrame({"analysis": analysis, "readers": J.ravel(), "cases": K.ravel(), "effect": effect,
                         "alpha": alpha, "power": res["power"], "ncp": res["ncp"], "df2": res["df2"],
                         "critical_value": res["critical_value"]})


# ------------------------------------------------------------------ paired proportions (study B)

def mcnemar_connor(p10: float, p01: float, power: float = 0.8, alpha: float = 0.05) -> dict:
    """Connor (1987) sample size of a two-sided McNemar test: n = [z_{a/2} sqrt(psi) + z_b
    sqrt(psi - delta^2)]^2 / delta^2, psi = p10 + p01 (discordant), delta = p10 - p01, rounded up.
    Not reachable (``n`` None) when delta = 0."""
    for name, v in (("p10", p10), ("p01", p01)):
        if not 0 <= v <= 1:
            raise ValueError(f"{name} must be a proportion in [0, 1], not {v}")
    psi, delta = p10 + p01, p10 - p01
    if psi > 1:
        raise ValueError(f"discordant proportions sum to {psi} > 1")
    if delta == 0:
        return {"n": None, "reachable": False, "psi": psi, "delta": delta,
                "reason": "no difference between the discordant proportions: no sample size detects it"}
    za, zb = stats.norm.isf(alpha / 2), stats.norm.isf(1 - power)
    n = (za * np.sqrt(psi) + zb * np.sqrt(psi - delta ** 2)) ** 2 / delta ** 2
    return {"n": int(np.ceil(n - 1e-9)), "n_exact_value": float(n), "reachable": True, "psi": psi, "delta": delta,
            "reason": None}


def mcnemar_exact_power(n: int, p10: float, p01: float, alpha: float = 0.05, mid_p: bool = False) -> float:
    """Power of the two-sided exact conditional McNemar test (binomial on the discordant pairs; with
    ``mid_p`` the mid-p version) at ``n`` pairs, by enumeration over the number of discordant pairs m
    ~ Bin(n, p10 + p01) and the split b ~ Bin(m, p10 / (p10 + p01))."""
    psi = p10 + p01
    if psi == 0:
        return 0.0
    q = p10 / psi
    total = 0.0
    for m in range(1, n + 1):
        pm = stats.binom.pmf(m, n, psi)
        if pm < 1e-15:
            continue
        b = np.arange(m + 1)
        pvals = np.array([mcnemar_p(int(x), int(m - x), mid_p) for x in b])
        total += pm * float(stats.binom.pmf(b[pvals <= alpha], m, q).sum())
    return total
