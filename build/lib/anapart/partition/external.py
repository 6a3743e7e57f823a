"""Study A's external test cohort: each classifier's aAUC on another site's slices beside its internal one."""

from __future__ import annotations

import numpy as np
import pandas as pd

from anapart.io.files import pyplot, save_figure
from anapart.metrics.stats import model_table


def external_table(metrics: dict[tuple[str, str, int], dict], classes) -> pd.DataFrame:
    """One row per model for its external cohort: the columns of ``auc.csv`` (external values),
    then ``aauc_internal``, ``aauc_external`` and ``delta`` (external minus internal)."""
    internal = model_table(metrics, classes).set_index(["net", "fmt", "frac"])["aauc"]
    ext = {k: m["external"] for k, m in metrics.items()}
    table = model_table(ext, classes)
    key = list(zip(table["net"], table["fmt"], table["frac"]))
    table["aauc_internal"] = internal.loc[key].to_numpy()
    table["aauc_external"] = table["aauc"]
    table["delta"] = table["aauc_external"] - table["aauc_internal"]
    return table


def external_figure(table: pd.DataFrame, formats, fractions, out_png) -> None:
    """Internal vs external aAUC per format (panel) and training fraction: mean over networks
    ± SD, each network as a dot."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(formats), figsize=(3.2 * len(formats), 3.3), squeeze=False, sharey=True,
                             constrained_layout=True)
    x = np.arange(len(fractions))
    width = 0.38
    for ax, fmt in zip(axes[0], formats):
        sub = table[table["fmt"] == fmt]
        for k, (col, name) in enumerate((("aauc_internal", "internal test"), ("aauc_external", "external"))):
            g = sub.groupby("frac")[col].agg(["mean", "std"]).reindex([int(f) for f in fractions])
            pos = x + (k - 0.5) * width
            ax.bar(pos, g["mean"], width, yerr=g["std"].fillna(0), capsize=3, label=name, alpha=0.8)
            for i, f in enumerate(fractions):
                v = sub.loc[sub["frac"] == int(f), col].to_numpy()
                ax.plot(np.full(len(v), pos[i]), v, "k.", ms=3)
        ax.set_xticks(x, [f"{f}%" for f in fractions])
        ax.set_title(fmt, fontsize=9)
        ax.set_xlabel("training data kept")
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_ylim(0.3, 1.0)
    axes[0][0].set_ylabel("aAUC")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    save_figure(fig, out_png)
