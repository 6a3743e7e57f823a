"""``results/tables/sample_size.csv``: how many test patients (and networks) the next study needs.

Why: a run that cannot show its primary endpoint still estimates how its figures of merit vary over
networks and patients. Each format contrast of the primary figure is one two-format OR analysis of
this run (the single split, or every replicate's within-fold AUCs averaged, as the primary), its
components (:class:`anapart.metrics.power.Components`) the pilot; for the primary analysis (RRRC or
FRRC) the smallest number of test patients reaching each target power, at the observed effect and
at the effect declared in ``stats.power.effect``, with the run's networks and with each of
``stats.power.networks``. The primary contrast is planned at the level it is judged at; the
secondary contrasts at ``stats.power.alpha``. Study B: the patients needed for its declared primary
claim, from the observed discordant proportions (Connor 1987, with the exact McNemar power at that
size), or from the paired AUC difference's standard error (normal approximation, variance ~ 1/n).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from anapart.metrics.contrasts import orient_contrast
from anapart.metrics.mrmc import mean_ovr_auc, or_analysis
from anapart.metrics.mrmc_formats import class_auc, figure_name, readings
from anapart.metrics.power import Components, cases_for_power, mcnemar_connor, mcnemar_exact_power

COLUMNS = ["study", "source", "role", "frac", "figure", "analysis", "contrast", "alpha", "effect_kind", "effect",
           "networks", "target_power", "patients_needed", "power_at_needed", "reachable", "max_power",
           "at_patients", "pilot_networks", "pilot_patients", "var_tr", "var", "cov1", "cov2", "cov3", "note"]


def _fom(figure: str, classes):
    if figure == "aauc":
        return mean_ovr_auc("label", {c: f"p_{c}" for c in classes})
    cls = figure[len("auc_"):]
    if cls not in classes:
        raise ValueError(f"stats.primary.figure {figure!r}: no class {cls!r} among {list(classes)}")
    return class_auc("label", cls, f"p_{cls}")


def pilot_components(preds: dict, patient_of: pd.Series, classes, frac: int, a: str, b: str,
                     figure: str, figures: dict | None = None) -> tuple[Components, float, int]:
    """The two-format OR components of one fraction (formats ``a``, ``b``), the observed a - b of
    the network-averaged figure, and the number of networks. ``figures``: the figures of merit by
    name when the analysis has its own (the replicates' within-fold AUCs); else the plain AUCs."""
    data = readings(preds, patient_of, frac)
    data = data[data["modality"].isin([a, b])]
    fom = figures[figure] if figures is not None else _fom(figure, classes)
    fit = or_analysis(data, reader="reader", modality="modality", case="case", truth="label", score=None,
                      fom=fom, cov="jackknife", case_truth=False)
    fom = fit["fom"].mean(axis=1)
    return Components.from_fit(fit), float(fom.loc[a] - fom.loc[b]), len(fit["design"]["readers"])


UNPLANNED = "fold-shared variance not planned (it shrinks with folds x repeats, not patients): optimistic"


def study_a_table(preds: dict, patient_of: pd.Series, classes, primary: dict, plan: dict, *, source: str,
                  primary_alpha: float, figures: dict | None = None, replicated: bool = False) -> pd.DataFrame:
    """One row per (fraction, contrast, effect kind, networks, target power) for the primary figure
    and analysis; the primary contrast first. ``plan``: ``stats.power`` (effect, targets, networks,
    alpha, max_patients). ``replicated``: every row notes that the primary's fold-shared variance
    (anapart.metrics.fold_shared) is not in the plan."""
    figure, analysis = primary["figure"], primary["analysis"]
    pa, pb = (s.strip() for s in primary["contrast"].split(" - "))
    formats = sorted({k[1] for k in preds})
    fracs = sorted({int(k[2]) for k in preds}, reverse=True)
    rows = []
    for frac, (x, y) in itertools.product(fracs, itertools.combinations(formats, 2)):
        contrast, sign = orient_contrast(f"{x} - {y}", primary["contrast"])
        a, b = (x, y) if sign > 0 else (y, x)
        is_primary = int(frac) == int(primary["fraction"]) and {a, b} == {pa, pb}
        alpha = primary_alpha if is_primary else float(plan["alpha"])
        base = {"study": "A", "source": source, "role": "primary" if is_primary else "secondary", "frac": int(frac),
                "figure": figure, "analysis": analysis, "contrast": contrast, "alpha": alpha}
        try:
            comp, observed, n_nets = pilot_components(preds, patient_of, classes, frac, a, b, figure, figures)
        except ValueError as e:
            rows.append({**base, "note": f"no OR analysis: {' '.join(str(e).split())}"})
            continue
        pilot = {"pilot_networks": n_nets, "pilot_patients": comp.cases, "var_tr": comp.var_tr, "var": comp.var,
                 "cov1": comp.cov1, "cov2": comp.cov2, "cov3": comp.cov3}
        nets = list(dict.fromkeys([n_nets, *map(int, plan["networks"])]))
        effects = [("observed", observed), ("declared", float(plan["effect"]))]
        for (kind, effect), j, target in itertools.product(effects, nets, plan["targets"]):
            r = cases_for_power(comp, j, float(target), effect, alpha, analysis, int(plan["max_patients"]))
            note = "networks of this run" if j == n_nets else ""
            if not r["reachable"] and "power_as_cases_grow" in r:
                note = "; ".join(x for x in (note, f"network x format variance caps the power at "
                                                   f"{r['power_as_cases_grow']:.3f} with {j} networks") if x)
            rows.append({**base, **pilot, "effect_kind": kind, "effect": effect, "networks": j,
                         "target_power": float(target), "patients_needed": r["cases"],
                         "power_at_needed": r.get("power"), "reachable": r["reachable"],
                         "max_power": r.get("max_power"), "at_patients": r.get("at_cases"), "note": note})
    out = pd.DataFrame(rows).reindex(columns=COLUMNS)
    if replicated:
        out["note"] = [f"{n}; {UNPLANNED}" if isinstance(n, str) and n else UNPLANNED for n in out["note"]]
    return pd.concat([out[out["role"] == "primary"], out[out["role"] != "primary"]], ignore_index=True)


def study_b_rows(claims: pd.DataFrame, targets, alpha: float = 0.05, level: float = 0.95) -> pd.DataFrame:
    """Patients needed for study B's declared primary claim (the ``primary`` row of claims.csv).

    McNemar (exact or mid-p): Connor (1987) from the observed discordant proportions, with the
    exact conditional power at that n beside it. An AUC test (DeLong, permutation): the normal
    approximation n = n* (z_{1-alpha/2} + z_power)^2 SE*^2 / d^2 from the DeLong SE* at the n* patients
    (read from the paired DeLong row's interval at ``level``)."""
    prim = claims[claims["role"] == "primary"]
    if prim.empty:
        return pd.DataFrame(columns=COLUMNS)
    r = prim.iloc[0]
    n_star = int(r["n_patients"])
    base = {"study": "B", "source": "results/staging/tables/claims.csv", "role": "primary",
            "contrast": f"{r['a']} - {r['b']}", "alpha": alpha, "effect_kind": "observed", "pilot_patients": n_star}
    rows = []
    test = str(r["test"])
    for target in targets:
        target = float(target)
        if "McNemar" in test:
            p10, p01 = r["a_only"] / n_star, r["b_only"] / n_star
            c = mcnemar_connor(p10, p01, target, alpha)
            mid = test.startswith("mid-p")
            note = (f"McNemar, Connor (1987) from the observed discordant proportions {r['a_only']:.0f}/{n_star} "
                    f"(only a right) and {r['b_only']:.0f}/{n_star} (only b right); power_at_needed: the exact "
                    f"{'mid-p ' if mid else ''}McNemar test's power at that size, by enumeration")
            if c["delta"] <= 0:  # the claim is "a better than b": an effect the other way plans nothing
                rows.append({**base, "analysis": "McNemar (Connor 1987)", "effect": c["delta"], "target_power": target,
                             "reachable": False, "note": "the observed discordant pairs do not favour a: at the "
                                                         "observed effect no number of patients shows the claim"})
                continue
            exact = mcnemar_exact_power(c["n"], p10, p01, alpha, mid_p=mid)
            rows.append({**base, "analysis": "McNemar (Connor 1987)", "effect": c["delta"], "target_power": target,
                         "patients_needed": c["n"], "power_at_needed": exact, "reachable": True, "note": note})
        else:
            dl = claims[(claims["a"] == r["a"]) & (claims["b"] == r["b"])
                        & claims["test"].str.startswith("paired DeLong")]
            d = float(dl["estimate"].iloc[0]) if len(dl) else float("nan")
            se = (float(dl["ci_high"].iloc[0] - dl["ci_low"].iloc[0]) / (2 * stats.norm.isf((1 - level) / 2))
                  if len(dl) else float("nan"))
            ok = np.isfinite(d) and np.isfinite(se) and d > 0 and se > 0  # the claim: AUC a > AUC b
            n = (int(np.ceil(n_star * ((stats.norm.isf(alpha / 2) + stats.norm.isf(1 - target)) * se / d) ** 2))
                 if ok else None)
            rows.append({**base, "analysis": "paired AUC difference (normal approximation)", "effect": d,
                         "target_power": target, "patients_needed": n, "reachable": ok,
                         "note": ("DeLong SE at the pilot's patients scaled by sqrt(n*/n)" if ok else
                                  "no AUC difference in the claim's direction, or no DeLong SE, to plan from")})
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def sentence(table: pd.DataFrame, networks: int = 4, target: float = 0.8) -> str:
    """The front page's one sentence: the primary contrast, the declared effect, ``target`` power,
    with ``networks`` networks (or the run's when that is not in the table)."""
    p = table[(table["study"] == "A") & (table["role"] == "primary") & (table["effect_kind"] == "declared")
              & (table["target_power"] == target)]
    if p.empty:
        return "Sample size: the primary contrast could not be analysed (results/tables/sample_size.csv says why)."
    row = p[p["networks"] == networks]
    row = (row if len(row) else p).iloc[0]
    what = (f"To detect {row['effect']:+.3g} {figure_name(row['figure'])} ({row['contrast']}, {int(row['frac'])}% of the training "
            f"data, {row['analysis']}, alpha {row['alpha']:g}) with {target:.0%} power")
    if row["reachable"]:
        return (f"{what}: {int(row['patients_needed'])} test patients with {int(row['networks'])} networks "
                f"(this run: {int(row['pilot_patients'])} test patients, {int(row['pilot_networks'])} networks).")
    return (f"{what}: not reachable with {int(row['networks'])} networks (at most {row['max_power']:.0%} power, "
            f"at {int(row['at_patients'])} test patients); more networks are needed.")
