"""The paper's statistics with pingouin: ANOVA of per-class AUCs across formats and fractions.

The paper grouped "the AUC of each model for each disease" by dataset and compared groups with
analysis of variance; here every analysis uses the per-class AUCs of all networks:
- format within each fraction (the paper's P = 0.611 at 100%), one-way;
- fraction within each format, one-way;
- format × fraction, two-way;
- post-hoc pairwise t-tests for both one-way families, Holm-corrected.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pingouin as pg

log = logging.getLogger("anapart.stats")

ANOVA_COLUMNS = ["analysis", "subset", "source", "df_effect", "df_error", "F", "p", "np2", "n"]


def auc_long(table: pd.DataFrame, classes) -> pd.DataFrame:
    """Wide model table (net, fmt, frac, auc_<class>…) -> one row per (model, class) with a defined AUC."""
    long = table.melt(id_vars=["net", "fmt", "frac"], value_vars=[f"auc_{c}" for c in classes],
                      var_name="cls", value_name="auc")
    long["cls"] = long["cls"].str.removeprefix("auc_")
    long["frac"] = long["frac"].astype(str)
    return long.dropna(subset=["auc"]).reset_index(drop=True)


def oneway(data: pd.DataFrame, between: str, analysis: str, subset: str) -> pd.DataFrame:
    if data[between].nunique() < 2:
        return pd.DataFrame(columns=ANOVA_COLUMNS)
    a = pg.anova(data=data, dv="auc", between=between, detailed=False)
    return pd.DataFrame({
        "analysis": analysis, "subset": subset, "source": a["Source"], "df_effect": a["ddof1"],
        "df_error": a["ddof2"], "F": a["F"], "p": a["p_unc"] if "p_unc" in a else a["p-unc"],
        "np2": a.get("np2", np.nan), "n": len(data),
    })


def twoway(data: pd.DataFrame, factors=("fmt", "frac")) -> pd.DataFrame:
    if any(data[f].nunique() < 2 for f in factors):
        return pd.DataFrame(columns=ANOVA_COLUMNS)
    a = pg.anova(data=data, dv="auc", between=list(factors), detailed=True)
    pcol = "p_unc" if "p_unc" in a else "p-unc"
    resid = a.loc[a["Source"] == "Residual", "DF"].iloc[0]
    effects = a[a["Source"] != "Residual"]
    return pd.DataFrame({
        "analysis": "format_x_fraction", "subset": "all", "source": effects["Source"].str.replace(" * ", " x "),
        "df_effect": effects["DF"], "df_error": resid, "F": effects["F"], "p": effects[pcol],
        "np2": effects.get("np2", np.nan), "n": len(data),
    })


def anova_tables(long: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All ANOVA rows (``ANOVA_COLUMNS``) and the Holm-corrected post-hoc pairwise tests."""
    rows, post = [], []
    for frac, sub in long.groupby("frac", sort=False):
        rows.append(oneway(sub, "fmt", "format_within_fraction", f"frac={frac}"))
        post.append(_pairwise(sub, "fmt", f"frac={frac}"))
    for fmt, sub in long.groupby("fmt", sort=False):
        rows.append(oneway(sub, "frac", "fraction_within_format", f"fmt={fmt}"))
        post.append(_pairwise(sub, "frac", f"fmt={fmt}"))
    rows.append(twoway(long))
    anova = pd.concat([r for r in rows if len(r)], ignore_index=True) if any(len(r) for r in rows) else \
        pd.DataFrame(columns=ANOVA_COLUMNS)
    posthoc = pd.concat([p for p in post if len(p)], ignore_index=True) if any(len(p) for p in post) else \
        pd.DataFrame()
    return anova, posthoc


def _pairwise(data: pd.DataFrame, between: str, subset: str) -> pd.DataFrame:
    if data[between].nunique() < 2:
        return pd.DataFrame()
    t = pg.pairwise_tests(data=data, dv="auc", between=between, padjust="holm")
    t.insert(0, "subset", subset)
    t.insert(1, "factor", between)
    t = t.rename(columns={"p-unc": "p_unc", "p-corr": "p_corr", "p-adjust": "p_adjust"})
    if "p_corr" not in t:  # a single comparison: nothing to correct
        t["p_corr"], t["p_adjust"] = t["p_unc"], "holm"
    return t


def model_table(metrics: dict[tuple[str, str, int], dict], classes) -> pd.DataFrame:
    """One row per model from its metrics.json: net, fmt, frac, aauc, sd, CI, accuracy, per-class AUC."""
    rows = []
    for (net, fmt, frac), m in metrics.items():
        row = {"net": net, "fmt": fmt, "frac": int(frac), "aauc": m["aauc"], "aauc_sd": m["aauc_sd"],
               "ci_low": m["aauc_ci"][0], "ci_high": m["aauc_ci"][1], "accuracy": m.get("accuracy")}
        row.update({f"auc_{c}": m["auc"].get(c) for c in classes})
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["frac", "fmt", "net"], ascending=[False, True, True], ignore_index=True)


def bar_chart(table: pd.DataFrame, formats, fractions, out_png) -> None:
    """Mean aAUC over networks per format and fraction, ± SD over networks (the paper's Fig. 6)."""
    from .files import pyplot, save_figure

    plt = pyplot()

    g = table.groupby(["frac", "fmt"])["aauc"].agg(["mean", "std"]).reset_index()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    width = 0.8 / max(len(formats), 1)
    x = np.arange(len(fractions))
    for i, fmt in enumerate(formats):
        sub = g[g["fmt"] == fmt].set_index("frac").reindex([int(f) for f in fractions])
        ax.bar(x + (i - (len(formats) - 1) / 2) * width, sub["mean"], width, yerr=sub["std"].fillna(0),
               capsize=3, label=fmt)
    ax.set_xticks(x, [f"{f}%" for f in fractions])
    ax.set_xlabel("training data kept")
    ax.set_ylabel("mean aAUC over networks")
    ax.set_ylim(0.4, 1.0)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.legend(fontsize=8, ncol=len(formats))
    fig.tight_layout()
    save_figure(fig, out_png)
