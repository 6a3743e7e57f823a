"""Study A's statistics over all classifiers (pingouin, imported where used): ANOVA of the AUCs, the paper's
group numbers, paired AUC differences between formats, and the aAUC bar chart.

The paper grouped "the AUC of each model for each disease" by dataset and compared groups with a
one-way analysis of variance and unpaired post-hoc tests. Those rows are kept, labelled
``design = paper``: they treat the 24 (network, class) AUCs of a format as independent samples,
although the same networks appear in every format and the class AUCs of one model share its one
training run. The rows labelled ``repeated_measures`` are the analysis the design asks for. The
unit is the trained model, and what repeats across formats and fractions is the network: the
subject is the network, the dependent variable each model's aAUC (the mean of its class AUCs).
Class AUCs as subjects would count a model's deviation six times (error df 46 instead of 6 for
four networks; with no format effect and a network x format SD of 0.03, about half of such tests
came out "significant" at alpha 0.05, against 2-6% with the network as subject). So
- format within each fraction and fraction within each format: one-way repeated-measures ANOVA
  (pingouin ``rm_anova``, with the Greenhouse-Geisser corrected p);
- format x fraction: two-way repeated-measures ANOVA;
- post-hoc: paired t-tests between levels (pingouin ``pairwise_tests`` with ``subject``),
  Holm-corrected.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from anapart.io.files import pyplot, save_figure
from anapart.metrics.evaluate import paired_delta_aauc, probabilities

log = logging.getLogger("anapart.stats")

ANOVA_COLUMNS = ["design", "unit", "analysis", "subset", "source", "df_effect", "df_error", "F", "p", "p_gg", "eps",
                 "effect_size", "effect_size_kind", "n"]
PAPER, RM = "paper", "repeated_measures"
SUBJECT = "subject"
# The repeated-measures rows take the one test set as fixed: they ask whether these models differ on
# these patients. With patient x format effects shared by all networks they reject a true null of
# "no format effect for patients in general" in up to 44% of simulated studies
# (benchmarks/false_positives.py); mrmc.csv (RRRC) is the test of formats.
UNIT = {RM: "network (model aAUC; test patients fixed)", PAPER: "(network, class) AUC as independent samples"}


def format_pairs(formats) -> list[tuple[str, str]]:
    """Every pair of formats, smallest window first (seg112, seg224, ..., full), as the paper compared them."""
    def size(fmt: str) -> float:
        return float("inf") if fmt == "full" else float(fmt.removeprefix("seg"))

    return list(itertools.combinations(sorted(formats, key=size), 2))


def holm_by(table: pd.DataFrame, by, p: str = "p", out: str = "p_holm") -> pd.DataFrame:
    """``table`` with ``out``: Holm-adjusted ``p`` (statsmodels) within each family of rows sharing
    the ``by`` columns (all rows one family if ``by`` is empty); NaN p stay NaN and are not counted."""
    from statsmodels.stats.multitest import multipletests

    table = table.copy()
    table[out] = np.nan
    groups = table.groupby(list(by), dropna=False).groups.values() if len(by) else [table.index]
    for idx in groups:
        values = table.loc[idx, p].astype(float)
        ok = values.notna()
        if ok.any():
            table.loc[values.index[ok], out] = multipletests(values[ok].to_numpy(), method="holm")[1]
    return table


def auc_long(table: pd.DataFrame, classes) -> pd.DataFrame:
    """Wide model table (net, fmt, frac, auc_<class>…) -> one row per (model, class) with a defined AUC.

    ``subject`` is the network: what is measured repeatedly across formats and fractions (the class
    AUCs of one model share its training run, so they are not subjects of their own).
    """
    long = table.melt(id_vars=["net", "fmt", "frac"], value_vars=[f"auc_{c}" for c in classes],
                      var_name="cls", value_name="auc")
    long["cls"] = long["cls"].str.removeprefix("auc_")
    long["frac"] = long["frac"].astype(str)
    long[SUBJECT] = long["net"]
    return long.dropna(subset=["auc"]).reset_index(drop=True)


def _pcol(a: pd.DataFrame) -> str:
    return "p_unc" if "p_unc" in a else "p-unc"


def oneway(data: pd.DataFrame, between: str, analysis: str, subset: str) -> pd.DataFrame:
    """The paper's one-way ANOVA: the AUCs of each level as independent groups (none without two levels
    or without a residual degree of freedom)."""
    import pingouin as pg

    if data[between].nunique() < 2 or len(data) <= data[between].nunique():
        return pd.DataFrame(columns=ANOVA_COLUMNS)
    a = pg.anova(data=data, dv="auc", between=between, detailed=False)
    return pd.DataFrame({
        "design": PAPER, "unit": UNIT[PAPER], "analysis": analysis, "subset": subset, "source": a["Source"], "df_effect": a["ddof1"],
        "df_error": a["ddof2"], "F": a["F"], "p": a[_pcol(a)], "p_gg": np.nan, "eps": np.nan,
        "effect_size": a.get("np2", np.nan), "effect_size_kind": "np2", "n": len(data),
    })


def subject_means(data: pd.DataFrame, within) -> pd.DataFrame:
    """One value per subject and cell of ``within``: the mean of its rows (per-class AUCs of a
    model -> the model's aAUC). A repeated-measures design needs exactly one value per cell."""
    within = [within] if isinstance(within, str) else list(within)
    return data.groupby([SUBJECT, *within], as_index=False, observed=True)["auc"].mean()


def complete_subjects(data: pd.DataFrame, within) -> pd.DataFrame:
    """Keep the subjects measured at every level of ``within`` (a repeated-measures design needs them all)."""
    within = [within] if isinstance(within, str) else list(within)
    cells = data.groupby(within).ngroups
    full = data.groupby(SUBJECT)["auc"].transform("size") == cells
    return data[full]


def repeated(data: pd.DataFrame, within, analysis: str, subset: str) -> pd.DataFrame:
    """Repeated-measures ANOVA (pingouin ``rm_anova``) of the subjects' cell means (subject =
    network: each model's aAUC when ``data`` holds its class AUCs)."""
    import pingouin as pg

    factors = [within] if isinstance(within, str) else list(within)
    data = complete_subjects(subject_means(data, factors), factors)
    if any(data[f].nunique() < 2 for f in factors) or data[SUBJECT].nunique() < 2:
        return pd.DataFrame(columns=ANOVA_COLUMNS)
    try:
        a = pg.rm_anova(data=data, dv="auc", within=factors if len(factors) > 1 else factors[0], subject=SUBJECT,
                        detailed=True, correction=True)
    except ZeroDivisionError:  # pingouin's Mauchly test divides by zero for 2 subjects and 3 levels
        return _anova_rm_without_sphericity(data, factors, analysis, subset)
    if len(factors) == 1:
        effect = a[a["Source"] != "Error"]
        df_effect, df_error = effect["DF"], a.loc[a["Source"] == "Error", "DF"].iloc[0]
    else:
        effect, df_effect, df_error = a, a["ddof1"], a["ddof2"]
    return pd.DataFrame({
        "design": RM, "unit": UNIT[RM], "analysis": analysis, "subset": subset,
        "source": effect["Source"].str.replace(" * ", " x ", regex=False), "df_effect": df_effect,
        "df_error": df_error, "F": effect["F"], "p": effect[_pcol(effect)],
        "p_gg": effect["p_GG_corr"] if "p_GG_corr" in effect else np.nan,
        "eps": effect["eps"] if "eps" in effect else np.nan,
        "effect_size": effect["ng2"], "effect_size_kind": "ng2", "n": len(data),
    })


def _anova_rm_without_sphericity(data: pd.DataFrame, factors: list[str], analysis: str, subset: str) -> pd.DataFrame:
    """The same F test (statsmodels AnovaRM) where pingouin cannot run: two subjects (networks)
    cannot estimate the contrasts' covariance, so no sphericity correction or effect size."""
    from statsmodels.stats.anova import AnovaRM

    t = AnovaRM(data, "auc", SUBJECT, within=factors).fit().anova_table
    return pd.DataFrame({
        "design": RM, "unit": UNIT[RM], "analysis": analysis, "subset": subset,
        "source": [str(i).replace(":", " x ") for i in t.index], "df_effect": t["Num DF"].to_numpy(),
        "df_error": t["Den DF"].to_numpy(), "F": t["F Value"].to_numpy(), "p": t["Pr > F"].to_numpy(),
        "p_gg": np.nan, "eps": np.nan, "effect_size": np.nan, "effect_size_kind": "ng2", "n": len(data),
    })


def _pairwise(data: pd.DataFrame, factor: str, subset: str, paired: bool) -> pd.DataFrame:
    """Holm-corrected pairwise t-tests between the levels of ``factor``: paired on the subjects'
    cell means (subject = network, each model's aAUC) or, as the paper, unpaired on the rows; none
    without two levels or without a residual degree of freedom."""
    import pingouin as pg

    if paired:
        data = complete_subjects(subject_means(data, factor), factor)
    if data[factor].nunique() < 2 or len(data) <= data[factor].nunique() or (paired and data[SUBJECT].nunique() < 2):
        return pd.DataFrame()
    kw = {"within": factor, "subject": SUBJECT} if paired else {"between": factor}
    t = pg.pairwise_tests(data=data, dv="auc", padjust="holm", **kw)
    design = RM if paired else PAPER
    t.insert(0, "design", design)
    t.insert(1, "unit", UNIT[design])
    t.insert(2, "subset", subset)
    t.insert(3, "factor", factor)
    t = t.rename(columns={"p-unc": "p_unc", "p-corr": "p_corr", "p-adjust": "p_adjust"})
    if "p_corr" not in t:  # a single comparison: nothing to correct
        t["p_corr"], t["p_adjust"] = t["p_unc"], "holm"
    return t


def anova_tables(long: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All ANOVA rows (``ANOVA_COLUMNS``: repeated-measures on the models' aAUCs with the network
    as subject, and the paper's one-way rows on the class AUCs) and the Holm-corrected post-hoc
    tests (paired by network for the repeated-measures design, unpaired as the paper)."""
    rows, post = [], []
    for frac, sub in long.groupby("frac", sort=False):
        rows += [repeated(sub, "fmt", "format_within_fraction", f"frac={frac}"),
                 oneway(sub, "fmt", "format_within_fraction", f"frac={frac}")]
        post += [_pairwise(sub, "fmt", f"frac={frac}", paired=True), _pairwise(sub, "fmt", f"frac={frac}", paired=False)]
    for fmt, sub in long.groupby("fmt", sort=False):
        rows += [repeated(sub, "frac", "fraction_within_format", f"fmt={fmt}"),
                 oneway(sub, "frac", "fraction_within_format", f"fmt={fmt}")]
        post += [_pairwise(sub, "frac", f"fmt={fmt}", paired=True), _pairwise(sub, "frac", f"fmt={fmt}", paired=False)]
    rows.append(repeated(long, ["fmt", "frac"], "format_x_fraction", "all"))
    rows = [r for r in rows if len(r)]
    post = [p for p in post if len(p)]
    anova = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=ANOVA_COLUMNS)
    posthoc = pd.concat(post, ignore_index=True) if post else pd.DataFrame()
    return anova[ANOVA_COLUMNS], posthoc


def model_key(path) -> tuple[str, str, int]:
    """(net, fmt, frac) of a per-model file laid out as ``.../{net}/{fmt}/f{frac}/<name>``."""
    parts = Path(path).parts
    return parts[-4], parts[-3], int(parts[-2].removeprefix("f"))


def read_model_tables(paths) -> dict[tuple[str, str, int], pd.DataFrame]:
    """Per-model CSVs laid out as ``results/<stage>/{net}/{fmt}/f{frac}/<name>.csv``, keyed by (net, fmt, frac)."""
    return {model_key(path): pd.read_csv(path) for path in paths}


def per_model_table(items: dict[tuple[str, str, int], object], row) -> pd.DataFrame:
    """One row per model, keyed (net, fmt, frac), in every study-A table's order: largest training
    fraction first, then format and network. ``row(item)`` gives the columns after net, fmt, frac."""
    rows = [{"net": net, "fmt": fmt, "frac": int(frac), **row(item)} for (net, fmt, frac), item in items.items()]
    return pd.DataFrame(rows).sort_values(["frac", "fmt", "net"], ascending=[False, True, True], ignore_index=True)


def model_table(metrics: dict[tuple[str, str, int], dict], classes) -> pd.DataFrame:
    """One row per model from its metrics.json: net, fmt, frac, aauc, sd, CI, accuracy, per-class AUC,
    then balanced accuracy, the most given class's share and the degenerate-model flag."""
    return per_model_table(metrics, lambda m: {
        "aauc": m["aauc"], "aauc_sd": m["aauc_sd"], "ci_low": m["aauc_ci"][0], "ci_high": m["aauc_ci"][1],
        "accuracy": m.get("accuracy"), **{f"auc_{c}": m["auc"].get(c) for c in classes},
        "balanced_accuracy": m.get("balanced_accuracy"), "top_predicted": m.get("top_predicted"),
        "top_predicted_share": m.get("top_predicted_share"), "degenerate": m.get("degenerate")})


def auc_groups(table: pd.DataFrame, classes) -> pd.DataFrame:
    """The paper's group numbers: mean ± SD (ddof 1) over all (network, class) AUCs of a format and
    fraction ("0.949 ± 0.052" is over the 4 x 6 = 24 AUCs of seg112 at 100%), next to the mean and
    SD of the networks' aAUCs."""
    long = auc_long(table, classes)
    g = long.groupby(["fmt", "frac"])["auc"].agg(n_auc="size", mean="mean", sd=lambda v: v.std(ddof=1))
    nets = table.assign(frac=table["frac"].astype(str)).groupby(["fmt", "frac"])["aauc"]
    g["n_networks"] = nets.size()
    g["aauc_mean"] = nets.mean()
    g["aauc_sd_networks"] = nets.std(ddof=1)
    out = g.reset_index()
    out["frac"] = out["frac"].astype(int)
    return out.sort_values(["frac", "fmt"], ascending=[False, True], ignore_index=True)


def auc_pairs(preds: dict[tuple[str, str, int], pd.DataFrame], patient_of: pd.Series, strata: dict, classes,
              formats, *, n_boot: int, seed: int, level: float = 0.95) -> pd.DataFrame:
    """Per network and fraction, ΔaAUC between two formats on the same test slices with a paired,
    class-stratified patient bootstrap CI and p (:func:`anapart.metrics.evaluate.paired_delta_aauc`);
    ``p_holm``: Holm over each fraction's family (every network x format pair)."""
    rows = []
    nets = sorted({k[0] for k in preds})
    fracs = sorted({k[2] for k in preds}, reverse=True)
    for net, frac in itertools.product(nets, fracs):
        for a, b in format_pairs(formats):
            if (net, a, frac) not in preds or (net, b, frac) not in preds:
                continue
            pa, pb = preds[(net, a, frac)], preds[(net, b, frac)]
            both = pa[["slice_id", "label"]].merge(pb[["slice_id", "label"]], on=["slice_id", "label"])
            if len(both) != len(pa) or len(both) != len(pb):
                raise ValueError(f"{net} f{frac}: {a} and {b} were not scored on the same test slices")
            pb = pb.set_index("slice_id").loc[pa["slice_id"]].reset_index()
            r = paired_delta_aauc(pa["label"], probabilities(pa, classes), probabilities(pb, classes),
                                  pa["slice_id"].map(patient_of).to_numpy(), classes, strata=strata, n_boot=n_boot,
                                  seed=seed, level=level)
            rows.append({"net": net, "frac": int(frac), "fmt_a": a, "fmt_b": b, **r,
                         "n_slices": len(pa), "n_patients": int(pa["slice_id"].map(patient_of).nunique())})
    columns = ["net", "frac", "fmt_a", "fmt_b", "delta_aauc", "ci_low", "ci_high", "p", "p_holm", "aauc_a", "aauc_b",
               "n_boot", "n_slices", "n_patients", "p_floor"]
    table = pd.DataFrame(rows, columns=[c for c in columns if c not in ("p_holm", "p_floor")])
    # the smallest p B resamples can give, (1 + 1) / (B + 1) two-sided: with B = 200 and 12 tests no
    # p_holm can go below 0.119, so "not significant" may only mean "too few resamples"
    table["p_floor"] = 2 / (table["n_boot"].astype(float) + 1)
    return holm_by(table, ["frac"])[columns]


def bar_chart(groups: pd.DataFrame, formats, fractions, out_png) -> None:
    """The paper's Fig. 6: mean AUC per format and fraction, error bars ± SD over all (network,
    class) AUCs (the paper's "0.949 ± 0.052"), from :func:`auc_groups`."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    width = 0.8 / max(len(formats), 1)
    x = np.arange(len(fractions))
    for i, fmt in enumerate(formats):
        sub = groups[groups["fmt"] == fmt].set_index("frac").reindex([int(f) for f in fractions])
        ax.bar(x + (i - (len(formats) - 1) / 2) * width, sub["mean"], width, yerr=sub["sd"].fillna(0),
               capsize=3, label=fmt)
    ax.set_xticks(x, [f"{f}%" for f in fractions])
    ax.set_xlabel("training data kept")
    ax.set_ylabel("mean AUC ± SD over (network, class)")
    ax.set_ylim(0.4, 1.05)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.legend(fontsize=8, ncol=len(formats))
    fig.tight_layout()
    save_figure(fig, out_png)
