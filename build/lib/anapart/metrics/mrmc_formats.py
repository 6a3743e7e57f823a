"""Study A's formats as a multi-reader multi-case (MRMC) study: the trained networks are the
readers, the test patients the cases, the image formats (full, seg112, seg224) the modalities.

Why: a format comparison must hold for other networks one could have trained *and* other patients
one could have sampled, with the correlation that scoring the same patients induces between
models. The network-level paired tests (:mod:`anapart.metrics.stats`) treat the test set as fixed;
the per-network bootstrap treats the model as fixed. The Obuchowski-Rockette analysis with Hillis'
df (:func:`anapart.metrics.mrmc.or_analysis`) has both random sources: random networks and random
patients (``RRRC``, the primary analysis) and, for a conclusion about these networks only, fixed
networks (``FRRC``). Per training fraction and figure of merit -- each model's aAUC (mean
one-vs-rest AUC over the classes) and each class's one-vs-rest AUC -- the global test of "no format
effect" and every pairwise format difference with its 95% CI; covariances by the jackknife over
patients (a patient left out with all of their slices). ``p_holm``: Holm over the format pairs of
one (fraction, figure, analysis). A design the analysis cannot take (a class in fewer than two test
patients, fewer than two networks) gets a row with its reason and no p-value.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from anapart.metrics.mrmc import empirical_auc, mean_ovr_auc, or_analysis
from anapart.metrics.stats import holm_by

COLUMNS = ["frac", "figure", "analysis", "contrast", "estimate", "se", "ci_low", "ci_high", "p", "p_holm",
           "statistic", "value", "df1", "df2", "p_global", "n_networks", "n_patients", "reason"]
ANALYSES = {"rrrc": "RRRC (random networks, random patients)", "frrc": "FRRC (these networks, random patients)"}


def class_auc(label: str, cls: str, column: str):
    """FOM: the one-vs-rest AUC of ``label == cls`` vs the probability column of ``cls``."""
    def fom(frame: pd.DataFrame) -> float:
        return empirical_auc(frame[label].to_numpy() == cls, frame[column].to_numpy())

    fom.classes = [cls]
    return fom


def readings(preds: dict[tuple[str, str, int], pd.DataFrame], patient_of: pd.Series, frac: int) -> pd.DataFrame:
    """The long table of one fraction: one row per (network, format, test slice), its patient, label
    and class probabilities."""
    parts = [p.assign(reader=net, modality=fmt, case=p["slice_id"].map(patient_of).to_numpy())
             for (net, fmt, f), p in sorted(preds.items()) if f == frac]
    return pd.concat(parts, ignore_index=True)


def format_mrmc(preds: dict[tuple[str, str, int], pd.DataFrame], patient_of: pd.Series, classes,
                alpha: float = 0.05) -> pd.DataFrame:
    """One row per (fraction, figure of merit, analysis, format pair), plus a row per fraction,
    figure and analysis whose ``contrast`` is ``all formats`` (the global test)."""
    rows = []
    fracs = sorted({k[2] for k in preds}, reverse=True)
    figures = {"aauc": mean_ovr_auc("label", {c: f"p_{c}" for c in classes}),
               **{f"auc_{c}": class_auc("label", c, f"p_{c}") for c in classes}}
    for frac, (figure, fom) in itertools.product(fracs, figures.items()):
        data = readings(preds, patient_of, frac)
        base = {"frac": int(frac), "figure": figure, "n_networks": int(data["reader"].nunique()),
                "n_patients": int(data["case"].nunique())}
        try:
            result = or_analysis(data, reader="reader", modality="modality", case="case", truth="label",
                                 score=None, fom=fom, cov="jackknife", case_truth=False, alpha=alpha)
        except ValueError as e:  # every row of this design, each with the reason and no number
            formats = sorted(data["modality"].unique())
            for analysis in ANALYSES:
                for contrast in ["all formats", *(f"{a} - {b}" for a, b in itertools.combinations(formats, 2))]:
                    rows.append({**base, "analysis": analysis.upper(), "contrast": contrast, "reason": str(e)})
            continue
        for analysis in ANALYSES:
            test, pairs = result[analysis]["test"], result[analysis]["pairs"]
            common = {**base, "analysis": analysis.upper(), "statistic": test["statistic"], "value": test["value"],
                      "df1": test["df1"], "df2": test["df2"], "p_global": test["p"], "reason": test["reason"]}
            rows.append({**common, "contrast": "all formats", "p": test["p"]})
            for pr in pairs.itertuples():
                rows.append({**common, "contrast": f"{pr.modality_a} - {pr.modality_b}", "estimate": pr.estimate,
                             "se": pr.se, "ci_low": pr.ci_low, "ci_high": pr.ci_high,
                             "p": pr.p if test["reason"] is None or np.isfinite(pr.p) else np.nan})
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "p_holm"])
    pairs = table[table["contrast"] != "all formats"]
    held = holm_by(pairs, ["frac", "figure", "analysis"]) if len(pairs) else pairs.assign(p_holm=np.nan)
    table = table.join(held["p_holm"])
    return table[COLUMNS]
