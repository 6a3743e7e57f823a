"""Study B, Methods "Statistical analysis", per patient: every method's scores with exact intervals,
and one paired test per claim of the paper.

Why: the paper scored patches, and a patient with many patches weighs more; a patient has one stage,
so the unit is the patient (stage = argmax of the mean of its patches' probabilities, as
:func:`anapart.staging.ensemble.patient_predictions`). With 14 test patients the percentile bootstrap
of a perfect score is 1.000-1.000; proportions get exact Clopper-Pearson intervals and the AUC
DeLong's (:mod:`anapart.metrics.intervals`). The paper's four claims (CLAHE helps, Table 3; transfer
learning beats the basic CNN; the ensemble beats every single model; the ensemble beats radiomics
and TNM staging, Table 5) are each tested on the same patients: exact McNemar on the per-patient
calls and paired DeLong on the AUCs of the patients' mean advanced-stage probability. One claim is
declared primary (``staging.primary``); the others are secondary, Holm over all of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from anapart.metrics.evaluate import patient_weights, percentile_ci, predicted
from anapart.metrics.intervals import auc_delong, mcnemar_exact, paired_delong, proportion
from anapart.staging.ensemble import patient_predictions

METRIC_COLUMNS = ["method", "unit", "metric", "stage", "value", "ci_low", "ci_high", "k", "n", "interval",
                  "simulated"]
CLAIM_COLUMNS = ["role", "claim", "family", "a", "b", "test", "n_patients", "accuracy_a", "accuracy_b", "a_only",
                 "b_only", "auc_a", "auc_b", "estimate", "ci_low", "ci_high", "p", "p_holm", "simulated", "note"]


def _calls(frame: pd.DataFrame, classes) -> dict[str, np.ndarray]:
    """truth, call and (if any) advanced-stage score of one method's units."""
    out = {"truth": frame["label"].to_numpy(), "call": frame["predicted"].to_numpy()}
    col = f"p_{classes[-1]}"
    if col in frame:
        out["score"] = frame[col].to_numpy(dtype=float)
    return out


def _f1_ci(truth, call, stage, strata, units, level, n_boot, seed) -> tuple[float, float]:
    """Stratified patient-bootstrap percentile CI of one stage's F1; NaN when every resample gives
    the same value (a perfect F1 has no spread to resample)."""
    w = patient_weights(units, strata, n_boot, seed)
    tp = (w * ((call == stage) & (truth == stage))).sum(1)
    fp = (w * ((call == stage) & (truth != stage))).sum(1)
    fn = (w * ((call != stage) & (truth == stage))).sum(1)
    f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1e-12), np.nan)
    lo, hi = percentile_ci(f1[np.isfinite(f1)], level)
    return (float("nan"), float("nan")) if lo == hi else (lo, hi)


def unit_metrics(truth, call, score, classes, *, exact: bool, level: float = 0.95, units=None, n_boot: int = 0,
                 seed: int = 0) -> list[dict]:
    """Accuracy, per-stage sensitivity, specificity, precision and F1, and the AUC of ``score``.

    ``exact``: intervals (Clopper-Pearson, DeLong, a patient bootstrap for F1) for independent units
    (patients); patches of one patient are not independent, so their rows carry values only."""
    truth, call = np.asarray(truth), np.asarray(call)
    rows = []

    def add(metric, stage, k, n, interval="Clopper-Pearson"):
        p = proportion(k, n, level)
        rows.append({"metric": metric, "stage": stage, "value": p["value"], "k": k, "n": n,
                     **({"ci_low": p["ci_low"], "ci_high": p["ci_high"], "interval": interval} if exact else
                        {"interval": "none (patches of a patient are not independent)"})})

    add("accuracy", "", int((truth == call).sum()), len(truth))
    for c in classes:
        pos, said = truth == c, call == c
        add("sensitivity", c, int((pos & said).sum()), int(pos.sum()))
        add("specificity", c, int((~pos & ~said).sum()), int((~pos).sum()))
        add("precision", c, int((pos & said).sum()), int(said.sum()))
        tp, fp, fn = int((pos & said).sum()), int((~pos & said).sum()), int((pos & ~said).sum())
        f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else float("nan")
        row = {"metric": "f1", "stage": c, "value": f1, "k": np.nan, "n": len(truth),
               "interval": "none (patches of a patient are not independent)"}
        if exact:
            strata = dict(zip(units, truth))
            lo, hi = _f1_ci(truth, call, c, strata, np.asarray(units), level, n_boot, seed)
            row.update(ci_low=lo, ci_high=hi, interval="stratified patient bootstrap (percentile)"
                       if np.isfinite(lo) else "none: every bootstrap resample gives the same F1")
        rows.append(row)
    if score is not None:
        a = auc_delong(truth == classes[-1], score, level)
        rows.append({"metric": "auc", "stage": classes[-1], "value": a["value"], "k": np.nan, "n": len(truth),
                     **({"ci_low": a["ci_low"], "ci_high": a["ci_high"], "interval": a["interval"]} if exact
                        else {"interval": "none (patches of a patient are not independent)"})})
    return rows


def patient_level(preds: dict[str, pd.DataFrame], classes, tnm: dict[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """Per method, one row per test patient: ``label``, ``predicted`` and the mean probabilities; the
    clinicians' TNM stage (``tnm``: patient -> stage) as a method without a score."""
    out = {name: patient_predictions(p, classes) for name, p in preds.items()}
    if tnm:
        first = next(iter(out.values()))
        have = first[first["patient"].isin(list(tnm))]
        out["TNM staging"] = have[["patient", "label"]].assign(predicted=have["patient"].map(tnm))
    return out


def metrics_table(preds: dict[str, pd.DataFrame], classes, *, tnm: dict[str, str] | None = None,
                  tnm_simulated: bool = False, level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every method's per-patient metrics with intervals, and the same per patch beside them."""
    rows = []
    patients = patient_level(preds, classes, tnm)
    for name, pp in patients.items():
        c = _calls(pp, classes)
        for r in unit_metrics(c["truth"], c["call"], c.get("score"), classes, exact=True, level=level,
                              units=pp["patient"].to_numpy(), n_boot=n_boot, seed=seed):
            rows.append({"method": name, "unit": "patient", **r})
        if name == "TNM staging":  # each patch of a patient carries the patient's TNM stage
            patch = next(iter(preds.values()))
            patch = patch[patch["patient"].isin(list(tnm))]
            truth, call, score = patch["label"].to_numpy(), patch["patient"].map(tnm).to_numpy(), None
        else:
            patch = preds[name].assign(predicted=lambda f: predicted(f, classes))
            truth, call, score = patch["label"].to_numpy(), patch["predicted"].to_numpy(), \
                patch[f"p_{classes[-1]}"].to_numpy(dtype=float)
        for r in unit_metrics(truth, call, score, classes, exact=False):
            rows.append({"method": name, "unit": "patch", **r})
    out = pd.DataFrame(rows).assign(simulated=lambda f: tnm_simulated & (f["method"] == "TNM staging"))
    return out.reindex(columns=METRIC_COLUMNS)


def claims(names, models, *, main: str, basic: str | None = "basic_cnn") -> list[tuple[str, str, str, str]]:
    """The paper's claims among the methods present: (claim, family, a, b), a claimed better than b."""
    names = set(names)
    out = []
    other = "raw" if main == "clahe" else "clahe"
    for m in models:  # Table 3: CLAHE vs raw patches, each transfer network
        arms = {main: m, other: f"ablation/{m}"}
        if arms["raw"] in names and arms["clahe"] in names:
            out.append((f"CLAHE better than raw: {m}", "CLAHE (Table 3)", arms["clahe"], arms["raw"]))
    if basic in names:
        out += [(f"transfer learning better than the basic CNN: {m}", "transfer learning", m, basic)
                for m in models if m in names]
    out += [(f"ensemble better than {s}", "ensemble vs single models", "ensemble", s)
            for s in [*models, basic] if s in names]
    out += [(f"ensemble better than {b}", "ensemble vs baselines (Table 5)", "ensemble", b)
            for b in ("radiomics", "TNM staging") if b in names]
    return out


def claims_table(patients: dict[str, pd.DataFrame], classes, claim_list, primary: tuple[str, str, str] | None,
                 level: float = 0.95, simulated=frozenset()) -> pd.DataFrame:
    """One row per (claim, test) on the patients both methods scored: exact McNemar on the calls and
    (where both have a score) paired DeLong on the AUC. ``primary`` = (a, b, test): that row is the
    primary claim (first; no multiplicity adjustment); every other row is secondary, Holm over all
    of them (``p_holm``). ``simulated``: methods whose calls were generated, not measured (the
    demo's TNM reading); a claim involving one is marked."""
    from statsmodels.stats.multitest import multipletests

    rows = []
    for claim, family, a, b in claim_list:
        pa, pb = patients[a].set_index("patient"), patients[b].set_index("patient")
        both = pa.index.intersection(pb.index)
        pa, pb = pa.loc[both], pb.loc[both]
        truth = pa["label"].to_numpy()
        ok_a, ok_b = pa["predicted"].to_numpy() == truth, pb["predicted"].to_numpy() == truth
        base = {"claim": claim, "family": family, "a": a, "b": b, "n_patients": len(both),
                "simulated": a in simulated or b in simulated,
                "accuracy_a": float(ok_a.mean()), "accuracy_b": float(ok_b.mean())}
        m = mcnemar_exact(ok_a, ok_b)
        rows.append({**base, "test": "exact McNemar (per-patient calls)", "a_only": m["a_only"], "b_only": m["b_only"],
                     "estimate": float(ok_a.mean() - ok_b.mean()), "p": m["p"],
                     "note": "estimate: accuracy a - b; a_only / b_only: patients only a / only b staged right"})
        col = f"p_{classes[-1]}"
        if col in pa and col in pb:
            pos = truth == classes[-1]
            d = paired_delong(pos, pa[col].to_numpy(float), pb[col].to_numpy(float), level)
            rows.append({**base, "test": "paired DeLong (AUC of the mean advanced-stage probability)",
                         "auc_a": auc_delong(pos, pa[col].to_numpy(float))["value"],
                         "auc_b": auc_delong(pos, pb[col].to_numpy(float))["value"], "estimate": d["diff"],
                         "ci_low": d["ci_low"], "ci_high": d["ci_high"], "p": d["p"],
                         "note": "estimate: AUC a - AUC b" + (
                             "; fewer than 2 patients of a stage: no DeLong variance, no p-value" if np.isnan(d["se"])
                             else "" if d["se"] > 0 else "; DeLong's variance is 0 (e.g. both AUCs 1): no interval")})
    out = pd.DataFrame(rows).reindex(columns=CLAIM_COLUMNS)
    out["role"] = "secondary"
    if primary is not None:
        a, b, test = primary
        hit = (out["a"] == a) & (out["b"] == b) & out["test"].str.startswith({"mcnemar": "exact McNemar",
                                                                              "delong": "paired DeLong"}[test])
        if not hit.any():
            raise ValueError(f"staging.primary: no claim '{a}' better than '{b}' with test {test} among the methods "
                             f"run ({sorted(set(out['a']) | set(out['b']))})")
        out.loc[hit, "role"] = "primary"
    sec = (out["role"] == "secondary") & out["p"].notna()
    if sec.any():
        out.loc[sec, "p_holm"] = multipletests(out.loc[sec, "p"].astype(float), method="holm")[1]
    return pd.concat([out[out["role"] == "primary"], out[out["role"] != "primary"]], ignore_index=True)


def best_single(histories: dict[str, pd.DataFrame], candidates) -> tuple[str, float]:
    """The single model with the best validation accuracy after its last epoch (ties: the first in
    ``candidates``), chosen on validation patients, never on test patients. (The accuracy is over
    validation patches, as the training curves are: a choice among models, not a claim.)"""
    scored = [(float(histories[m]["val_accuracy"].iloc[-1]), -i, m) for i, m in enumerate(candidates)
              if m in histories and "val_accuracy" in histories[m] and len(histories[m])]
    if not scored:
        raise ValueError("staging.primary.b: best_single needs validation patients "
                         "(staging.split.validation_fraction > 0) and the models' history.csv")
    acc, _, name = max(scored)
    return name, acc
