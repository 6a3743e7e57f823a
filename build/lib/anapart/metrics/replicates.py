"""Study A over replicates: K folds x R repeats of the patient split x training seeds.

Why: one split and one seed is one draw of the test patients and of the training randomness. With
K folds every patient is predicted once per repeat by a model that never saw them; the OR analysis
(:mod:`anapart.metrics.mrmc_formats`) of those pooled out-of-fold predictions (all patients as
cases) is the primary analysis of a replicate run, one per (repeat, seed). The spread of its
estimate over repeats and over seeds is reported beside it, never a t-test over folds: the folds'
training sets overlap, so their results are correlated and such a test is anti-conservative
(Nadeau & Bengio 2003, Machine Learning 52:239-281).

Pooling compares scores of K different models of one network (one per fold) in one ROC curve; the
models share the design and the training-set size, which is what the pooled AUC estimates
(the usual pooled cross-validation AUC, slightly pessimistic when the folds' models calibrate
differently).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from anapart.io.files import pyplot, save_figure
from anapart.metrics.cam_stats import cam_tests
from anapart.metrics.contrasts import turn
from anapart.metrics.evaluate import read_model_metrics
from anapart.metrics.mrmc_formats import format_mrmc
from anapart.metrics.stats import model_key, model_table

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


def replicate_mrmc(pooled: dict, patient_of: pd.Series, classes, alpha: float = 0.05) -> pd.DataFrame:
    """The OR analysis of each (repeat, seed)'s pooled out-of-fold predictions, ``repeat, seed`` first."""
    tables = [format_mrmc(models, patient_of, classes, alpha=alpha).assign(repeat=r, seed=s)
              for (r, s), models in sorted(pooled.items())]
    table = pd.concat(tables, ignore_index=True)
    return table[KEY + [c for c in table.columns if c not in KEY]]


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


def replicate_auc_table(paths, classes) -> pd.DataFrame:
    """Every replicate classifier's metrics.json as one row: repeat, fold, seed, then the single
    split's auc.csv columns (:func:`anapart.metrics.stats.model_table`)."""
    by_rep: dict = {}
    for path in paths:
        by_rep.setdefault(replicate_of(path), []).append(path)
    tables = [model_table(read_model_metrics(ps), classes).assign(repeat=r, fold=k, seed=s)
              for (r, k, s), ps in sorted(by_rep.items())]
    table = pd.concat(tables, ignore_index=True)
    lead = ["repeat", "fold", "seed"]
    return table[lead + [c for c in table.columns if c not in lead]]


def spread_figure(table: pd.DataFrame, figure: str, analysis: str, out, primary: str | None = None,
                  label=None) -> None:
    """Each format contrast's estimate and 95% CI per fraction, one point per (repeat, seed); the
    primary replicate's first. Shows how much a conclusion moves with the split and the seed.
    ``primary`` ("a - b"): contrasts read its way (:func:`anapart.metrics.contrasts.turn`);
    ``label(repeat, seed)``: the legend text (default "repeat r, seed s")."""
    plt = pyplot()
    t = table[(table["figure"] == figure) & (table["analysis"] == analysis) & (table["contrast"] != "all formats")]
    if primary is not None and len(t):
        cols = ["contrast", "estimate", "ci_low", "ci_high"]
        rows = [turn(c, float(e), float(lo), float(hi), primary) for c, e, lo, hi in t[cols].itertuples(index=False)]
        t = t.assign(**dict(zip(cols, map(list, zip(*rows)))))
    label = label or (lambda r, s: f"repeat {r}, seed {s}")
    contrasts = sorted(t["contrast"].unique())
    fracs = sorted(t["frac"].unique(), reverse=True)
    reps = sorted({(r, s) for r, s in zip(t["repeat"], t["seed"])})
    fig, axes = plt.subplots(1, max(len(fracs), 1), figsize=(4.2 * max(len(fracs), 1), 1.0 + 0.9 * len(contrasts)),
                             squeeze=False, sharey=True)
    for ax, frac in zip(axes[0], fracs):
        for j, (r, s) in enumerate(reps):
            g = t[(t["frac"] == frac) & (t["repeat"] == r) & (t["seed"] == s)].set_index("contrast").reindex(contrasts)
            y = np.arange(len(contrasts)) + (j - (len(reps) - 1) / 2) * 0.8 / max(len(reps), 1)
            ax.errorbar(g["estimate"], y, xerr=[g["estimate"] - g["ci_low"], g["ci_high"] - g["estimate"]],
                        fmt="o", ms=3, capsize=2, color=f"C{j}", label=label(r, s) if ax is axes[0][0] else None)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(f"{frac}% of training set")
        ax.set_xlabel(f"{figure} difference ({analysis}, 95% CI)")
    axes[0][0].set_yticks(range(len(contrasts)), contrasts)
    fig.legend(loc="lower center", ncol=max(1, min(len(reps), 4)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, out)


def replicate_cam_tests(pooled: dict, patient_of: pd.Series, formats) -> pd.DataFrame:
    """:func:`anapart.metrics.cam_stats.cam_tests` of each (repeat, seed)'s pooled Grad-CAM scores,
    ``repeat, seed`` first."""
    tables = [cam_tests(models, patient_of, formats).assign(repeat=r, seed=s) for (r, s), models in sorted(pooled.items())]
    table = pd.concat(tables, ignore_index=True)
    return table[KEY + [c for c in table.columns if c not in KEY]]
