"""Study A over replicates: K folds x R repeats of the patient split x training seeds.

Why: one split and one seed is one draw of the test patients, of the segmenter that made the
crops, of the 25%/50% training subsets and of the training randomness; a single split's estimate is
conditional on all of them. With K folds every patient is predicted once per repeat by a model that
never saw them. The primary analysis (:func:`averaged_mrmc`) is one OR analysis with the patients
as cases whose figure of merit of each (network, format) is its *within-fold* AUC (positive-negative
pairs of the same fold only: :func:`anapart.metrics.mrmc_formats.within_fold_auc`) averaged over
every repeat and seed -- the patients are the same in every replicate, so the replicates are
averaged, never one picked. Beside it, labelled sensitivity analyses: the pooled out-of-fold AUC
(one ROC curve over K fold-models; calibration differences between folds lower it, most for the
least stable format, so it leans towards the crops), and the Nadeau-Bengio corrected resampled t
over the R x K folds (:func:`fold_variance`), whose variance holds what every network of a fold
shares (one segmenter, one subset draw) and the patient jackknife cannot see. Per-replicate
analyses and their spread over repeats and seeds stay beside them; never a plain t-test over folds
(their training sets overlap: Nadeau & Bengio 2003, Machine Learning 52:239-281).
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as st

from anapart.io.figstyle import HIGHLIGHT, colour, display, pyplot, save_figure
from anapart.metrics.cam_stats import SCORE_COLUMNS, cam_tests, or_tests
from anapart.metrics.contrasts import turn
from anapart.metrics.evaluate import read_model_metrics
from anapart.metrics.mrmc_formats import (COLUMNS, format_mrmc, interaction_label, pooled_figures,
                                          within_fold_figures)
from anapart.metrics.mrmc import empirical_auc
from anapart.metrics.stats import format_pairs, model_key, model_table

KEY = ["repeat", "seed"]


def replicate_of(path) -> tuple[int, int, int]:
    """(repeat, fold, seed) of a per-model file laid out as
    ``.../r{repeat}/k{fold}/s{seed}/classify/{net}/{fmt}/f{frac}/<name>``."""
    parts = Path(path).parts
    r, k, s = parts[-8], parts[-7], parts[-6]
    if not (r.startswith("r") and k.startswith("k") and s.startswith("s")):
        raise ValueError(f"{path}: not a replicate path (.../r<repeat>/k<fold>/s<seed>/classify/...)")
    return int(r[1:]), int(k[1:]), int(s[1:])


def pool_out_of_fold(paths, folds: int) -> dict[tuple[int, int], dict[tuple[str, str, int], pd.DataFrame]]:
    """Per (repeat, seed) and model (net, fmt, frac): the K folds' test predictions in one table.

    Refuses a pool that lacks a fold or holds a slice twice: every patient must be predicted
    exactly once per repeat, seed and model, or the pooled analysis is not what it says."""
    parts: dict = {}
    for path in paths:
        repeat, fold, seed = replicate_of(path)
        parts.setdefault((repeat, seed), {}).setdefault(model_key(path), {})[fold] = pd.read_csv(path)
    pooled: dict = {}
    for rs, models in sorted(parts.items()):
        pooled[rs] = {}
        for model, by_fold in sorted(models.items()):
            if sorted(by_fold) != list(range(folds)):
                raise ValueError(f"repeat {rs[0]} seed {rs[1]} {model}: folds {sorted(by_fold)}, expected 0..{folds - 1}")
            table = pd.concat([by_fold[k].assign(fold=k) for k in range(folds)], ignore_index=True)
            twice = table["slice_id"][table["slice_id"].duplicated()]
            if len(twice):
                raise ValueError(f"repeat {rs[0]} seed {rs[1]} {model}: slice {twice.iloc[0]!r} is predicted by "
                                 "two folds (the folds' test sets overlap)")
            pooled[rs][model] = table
    return pooled


def replicate_mrmc(pooled: dict, patient_of: pd.Series, classes, alpha: float = 0.05,
                   interaction: tuple[str, str] | None = None, interaction_figure: str = "aauc") -> pd.DataFrame:
    """The within-fold OR analysis of each (repeat, seed)'s pooled out-of-fold predictions,
    ``repeat, seed`` first (the per-replicate results whose spread :func:`spread` reports)."""
    tables = [format_mrmc(models, patient_of, classes, alpha=alpha, figures=within_fold_figures(classes),
                          estimator="within-fold", interaction=interaction,
                          interaction_figure=interaction_figure).assign(repeat=r, seed=s)
              for (r, s), models in sorted(pooled.items())]
    table = pd.concat(tables, ignore_index=True)
    return table[KEY + [c for c in table.columns if c not in KEY]]


def stack_replicates(pooled: dict) -> dict:
    """Per model, every replicate's pooled out-of-fold table in one, with ``repeat`` and ``seed``."""
    out: dict = {}
    for (r, s), models in sorted(pooled.items()):
        for model, table in models.items():
            out.setdefault(model, []).append(table.assign(repeat=r, seed=s))
    return {m: pd.concat(v, ignore_index=True) for m, v in out.items()}


def averaged_mrmc(pooled: dict, patient_of: pd.Series, classes, alpha: float = 0.05,
                  interaction: tuple[str, str] | None = None, interaction_figure: str = "aauc") -> pd.DataFrame:
    """One OR analysis over every replicate (patients the cases, jackknife over patients): each
    (network, format)'s FOM averaged over repeats and seeds; ``estimator`` within-fold (primary)
    and pooled (sensitivity)."""
    stacked = stack_replicates(pooled)
    return pd.concat([format_mrmc(stacked, patient_of, classes, alpha=alpha, figures=figs(classes), estimator=name,
                                  interaction=interaction, interaction_figure=interaction_figure)
                      for name, figs in (("within-fold", within_fold_figures), ("pooled", pooled_figures))],
                     ignore_index=True)


def _fold_fom(frame: pd.DataFrame, classes, figure: str = "aauc") -> float:
    """``figure`` of one fold's predictions: the aAUC (mean one-vs-rest AUC over the classes the fold
    holds both ways) or ``auc_<class>``."""
    y = frame["label"].to_numpy()
    chosen = [c for c in classes if figure == "aauc" or figure == f"auc_{c}"]
    vals = [empirical_auc(y == c, frame[f"p_{c}"].to_numpy()) for c in chosen]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else np.nan


def fold_foms(pooled: dict, classes, figure: str = "aauc") -> pd.DataFrame:
    """``figure`` of every (repeat, fold, network, format, fraction), averaged over seeds."""
    rows = []
    for (r, s), models in pooled.items():
        for (net, fmt, frac), table in models.items():
            for k, g in table.groupby("fold"):
                rows.append({"repeat": r, "seed": s, "fold": int(k), "net": net, "fmt": fmt, "frac": int(frac),
                             "fom": _fold_fom(g, classes, figure)})
    d = pd.DataFrame(rows)
    return d.groupby(["repeat", "fold", "net", "fmt", "frac"], as_index=False)["fom"].mean()


def fold_contrasts(pooled: dict, classes, interaction: tuple[str, str] | None = None,
                   figure: str = "aauc") -> dict[tuple[int, str], np.ndarray]:
    """(fraction, contrast) -> R x K array of the network-averaged contrast of ``figure`` in each
    fold (seeds averaged): every format pair per fraction, and with ``interaction`` = (a, b) the
    data-cost contrast at the smallest fraction. Insertion order: fractions descending, then pairs."""
    ff = fold_foms(pooled, classes, figure)
    wide = ff.pivot_table(index=["repeat", "fold", "net"], columns=["fmt", "frac"], values="fom")
    fmts = sorted(ff["fmt"].unique())
    fracs = sorted(ff["frac"].unique(), reverse=True)
    out = {}

    def grid(per_net: pd.Series) -> np.ndarray:
        return per_net.groupby(level=["repeat", "fold"]).mean().unstack("fold").sort_index().to_numpy()

    for frac in fracs:
        for a, b in itertools.combinations(fmts, 2):
            out[(int(frac), f"{a} - {b}")] = grid(wide[(a, frac)] - wide[(b, frac)])
    if interaction is not None and len(fracs) >= 2:
        a, b = interaction
        lo, hi = min(fracs), max(fracs)
        out[(int(lo), interaction_label(a, b, lo, hi))] = grid(wide[(a, lo)] - wide[(b, lo)] - wide[(a, hi)]
                                                               + wide[(b, hi)])
    return out


def corrected_resampled_t(d: np.ndarray, folds: int, alpha: float = 0.05) -> dict:
    """Nadeau & Bengio (2003) corrected resampled t of J = R x K fold-level contrasts ``d``:
    Var = (1/J + n_test/n_train) S^2 with n_test/n_train = 1/(K-1); t with J-1 df. The 1/(K-1) term
    is what the overlap of the folds' training sets adds to the naive S^2/J."""
    d = np.asarray(d, float)
    d = d[np.isfinite(d)]
    j = len(d)
    est = float(d.mean()) if j else np.nan
    if j < 2 or folds < 2:
        return {"estimate": est, "se": np.nan, "df": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan,
                "reason": f"{j} fold-level contrast(s), {folds} fold(s): no resampled variance"}
    se = float(np.sqrt((1 / j + 1 / (folds - 1)) * d.var(ddof=1)))
    if not se > 0:
        return {"estimate": est, "se": se, "df": j - 1, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan,
                "reason": "fold-level contrasts all equal: no resampled variance"}
    q = st.t.ppf(1 - alpha / 2, j - 1)
    return {"estimate": est, "se": se, "df": j - 1, "ci_low": est - q * se, "ci_high": est + q * se,
            "p": float(2 * st.t.sf(abs(est / se), j - 1)), "reason": None}


def fold_variance(pooled: dict, classes, folds: int, alpha: float = 0.05,
                  interaction: tuple[str, str] | None = None) -> pd.DataFrame:
    """Sensitivity analysis (``estimator`` fold-variance): per fraction and format pair (and the
    data-cost interaction), the network-averaged aAUC contrast of each of the R x K folds (seeds
    averaged) and its corrected resampled t (:func:`corrected_resampled_t`). Its variance holds
    what the networks of one fold share (segmenter, crop windows, subset draw), which the patient
    jackknife does not; its networks are fixed (the spread between networks is not in it)."""
    n_nets = len({m[0] for models in pooled.values() for m in models})
    rows = []
    for (frac, contrast), per_fold in fold_contrasts(pooled, classes, interaction).items():
        res = corrected_resampled_t(per_fold.reshape(-1), folds, alpha)
        rows.append({"frac": int(frac), "figure": "aauc", "analysis": "corrected resampled t",
                     "estimator": "fold-variance", "contrast": contrast, "estimate": res["estimate"],
                     "se": res["se"], "ci_low": res["ci_low"], "ci_high": res["ci_high"], "p": res["p"],
                     "statistic": "t", "df1": 1, "df2": res["df"], "n_networks": n_nets,
                     "n_patients": np.nan, "ci_level": 1 - alpha,
                     "reason": res["reason"] or f"{per_fold.size} folds (R x K), networks averaged"})
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def replicate_summary(averaged: pd.DataFrame, per_replicate: pd.DataFrame, fold_var: pd.DataFrame,
                      primary: tuple[int, int], alpha: float = 0.05) -> pd.DataFrame:
    """``mrmc_spread.csv``: the averaged analysis (within-fold primary, pooled sensitivity) and the
    fold-variance rows, each within-fold row with the spread of the per-replicate estimates beside
    it (mean, SD over repeats, SD over seeds, share of replicates with p < alpha)."""
    keys = ["frac", "figure", "analysis", "contrast"]
    sp = spread(per_replicate, primary, alpha)
    sp = sp[keys + ["n_replicates", "n_repeats", "n_seeds", "mean_over_replicates", "sd_over_repeats",
                    "sd_over_seeds", "share_p_below_alpha"]].assign(estimator="within-fold")
    out = pd.concat([averaged, fold_var], ignore_index=True)
    return out.merge(sp, on=keys + ["estimator"], how="left")


def spread(table: pd.DataFrame, primary: tuple[int, int], alpha: float = 0.05) -> pd.DataFrame:
    """One row per (fraction, figure, analysis, contrast): the primary replicate's estimate, CI and
    p (repeat and seed declared before the run, never the best one), and beside it the mean of the
    estimate over every replicate, its SD over repeats (within a seed, averaged over seeds), its SD
    over seeds (within a repeat, averaged over repeats), and the share of replicates with p < alpha."""
    cols = ["frac", "figure", "analysis", "contrast"]
    rows = []
    for key, g in table.groupby(cols, sort=False):
        first = g[(g["repeat"] == primary[0]) & (g["seed"] == primary[1])]
        est = g["estimate"]  # NaN on the global rows ("all formats"): their F is not averaged
        row = dict(zip(cols, key))
        if len(first):
            f = first.iloc[0]
            row.update(estimate=f["estimate"], ci_low=f["ci_low"], ci_high=f["ci_high"], p=f["p"], p_holm=f["p_holm"])
        row.update(n_replicates=int(len(g)), n_repeats=int(g["repeat"].nunique()), n_seeds=int(g["seed"].nunique()),
                   mean_over_replicates=float(est.mean()) if est.notna().any() else np.nan,
                   sd_over_repeats=_within_sd(g.assign(_v=est), by="seed"),
                   sd_over_seeds=_within_sd(g.assign(_v=est), by="repeat"),
                   share_p_below_alpha=float((g["p"] < alpha).mean()) if g["p"].notna().any() else np.nan,
                   reason=first.iloc[0]["reason"] if len(first) else "primary replicate missing")
        rows.append(row)
    return pd.DataFrame(rows)


def _within_sd(g: pd.DataFrame, by: str) -> float:
    """Mean over groups ``by`` of the SD (ddof 1) of ``_v`` inside each group of two or more."""
    sds = [v["_v"].std(ddof=1) for _, v in g.groupby(by) if v["_v"].notna().sum() >= 2]
    return float(np.mean(sds)) if sds else np.nan


def replicate_auc_table(paths, classes, ci_level: float | None = None) -> pd.DataFrame:
    """Every replicate classifier's metrics.json as one row: repeat, fold, seed, then the single
    split's auc.csv columns (:func:`anapart.metrics.stats.model_table`), and ``ci_level`` (the
    level its intervals were computed at, ``evaluate.ci_level``) when given."""
    by_rep: dict = {}
    for path in paths:
        by_rep.setdefault(replicate_of(path), []).append(path)
    tables = [model_table(read_model_metrics(ps), classes).assign(repeat=r, fold=k, seed=s)
              for (r, k, s), ps in sorted(by_rep.items())]
    table = pd.concat(tables, ignore_index=True)
    if ci_level is not None:
        table["ci_level"] = ci_level
    lead = ["repeat", "fold", "seed"]
    return table[lead + [c for c in table.columns if c not in lead]]


def spread_figure(table: pd.DataFrame, figure: str, analysis: str, out, primary: str | None = None,
                  label=None) -> None:
    """Each format contrast's estimate and CI (at the table's ``ci_level``) per fraction, one point per (repeat, seed); the
    primary replicate's first. Shows how much a conclusion moves with the split and the seed.
    ``primary`` ("a - b"): contrasts read its way (:func:`anapart.metrics.contrasts.turn`);
    ``label(repeat, seed)``: the legend text (default "repeat r, seed s")."""
    plt = pyplot()
    t = table[(table["figure"] == figure) & (table["analysis"] == analysis) & (table["contrast"] != "all formats")
              & ~table["contrast"].astype(str).str.contains("@")]  # the interaction reads in its own units
    level = float(t["ci_level"].iloc[0]) if "ci_level" in t and len(t) and pd.notna(t["ci_level"].iloc[0]) else 0.95
    if primary is not None and len(t):
        cols = ["contrast", "estimate", "ci_low", "ci_high"]
        rows = [turn(c, float(e), float(lo), float(hi), primary) for c, e, lo, hi in t[cols].itertuples(index=False)]
        t = t.assign(**dict(zip(cols, map(list, zip(*rows)))))
    label = label or (lambda r, s: f"repeat {r}, seed {s}")
    contrasts = sorted(t["contrast"].unique())
    fracs = sorted(t["frac"].unique(), reverse=True)
    reps = sorted({(r, s) for r, s in zip(t["repeat"], t["seed"])})
    fig, axes = plt.subplots(1, max(len(fracs), 1), figsize=(4.2 * max(len(fracs), 1), 1.6 + 0.9 * len(contrasts)),
                             squeeze=False, sharey=True, sharex=True)  # one x-scale: panels compare by eye
    for ax, frac in zip(axes[0], fracs):
        for j, (r, s) in enumerate(reps):
            g = t[(t["frac"] == frac) & (t["repeat"] == r) & (t["seed"] == s)].set_index("contrast").reindex(contrasts)
            y = np.arange(len(contrasts)) + (j - (len(reps) - 1) / 2) * 0.8 / max(len(reps), 1)
            ax.errorbar(g["estimate"], y, xerr=[g["estimate"] - g["ci_low"], g["ci_high"] - g["estimate"]],
                        fmt="o", ms=4, capsize=2, color=colour(j), label=label(r, s) if ax is axes[0][0] else None)
        if primary in contrasts:  # the declared primary endpoint, shaded
            ax.axhspan(contrasts.index(primary) - 0.45, contrasts.index(primary) + 0.45, color=HIGHLIGHT, alpha=0.12,
                       lw=0)
        here = t[t["frac"] == frac]
        if here["estimate"].notna().sum() == 0:  # a failed fit: say why instead of an empty panel
            why = here["reason"].dropna().astype(str) if "reason" in here else pd.Series(dtype=str)
            ax.text(0.5, 0.5, "no estimate" + (f":\n{textwrap.fill(why.iat[0], 40)}" if len(why) else ""),
                    ha="center", va="center", fontsize=8, transform=ax.transAxes)
            ax.set_xlim(-1, 1)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(f"{frac}% of training set")
        ax.set_xlabel(f"{figure} difference ({analysis}, {100 * level:g}% CI)")
    axes[0][0].set_yticks(range(len(contrasts)), [display(c) + (" (primary)" if c == primary else "")
                                                  for c in contrasts])
    for tick, c in zip(axes[0][0].get_yticklabels(), contrasts):
        if c == primary:
            tick.set_fontweight("bold")
            tick.set_color(HIGHLIGHT)
    fig.legend(loc="lower center", ncol=max(1, min(len(reps), 4)), frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    save_figure(fig, out)


def replicate_cam_tests(pooled: dict, patient_of: pd.Series, formats, alpha: float = 0.05) -> pd.DataFrame:
    """:func:`anapart.metrics.cam_stats.cam_tests` of each (repeat, seed)'s pooled Grad-CAM scores,
    ``repeat, seed`` first; then the OR-RRRC rows of every replicate's scores together (``repeat``
    and ``seed`` = ``all``: each patient's mean score over every repeat and seed), the co-primary."""
    tables = [cam_tests(models, patient_of, formats, alpha=alpha).assign(repeat=r, seed=s)
              for (r, s), models in sorted(pooled.items())]
    frames = [t.assign(net=net, fmt=fmt, frac=int(frac)) for (net, fmt, frac), t in stack_replicates(pooled).items()
              if len(t)]
    if frames:
        long = pd.concat(frames, ignore_index=True)
        long[SCORE_COLUMNS] = long[SCORE_COLUMNS].apply(pd.to_numeric, errors="coerce")
        long["patient"] = long["slice_id"].map(patient_of)
        tables.append(or_tests(long, format_pairs(formats), alpha=alpha).assign(repeat="all", seed="all"))
    table = pd.concat(tables, ignore_index=True)
    return table[KEY + [c for c in table.columns if c not in KEY]]
