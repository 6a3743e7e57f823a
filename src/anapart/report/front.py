"""The report's front page: both studies' primary endpoints first, in words, then a glossary, the
provenance and the workflow's description.

Why: a reader opening ``report.html`` must see what the study found (or did not) before anything
else, on a laptop screen, without scrolling: per endpoint the contrast in words, the estimate, the
interval at its stated level, p, alpha, a verdict in words, what it rests on (networks, patients,
how many models are degenerate) and, on generated data, that the numbers describe the workflow and
not clinical performance. Snakemake's report centres its content pane vertically, so a page taller
than the screen (the rule graph beside the text is ~1,800 px) opens mid-page with its top out of
reach; the page's first block is a style rule that aligns the pane to the top (the browser test in
tests/workflow checks the headline's box lies in the 1366x768 viewport).
"""

from __future__ import annotations

import html
import math
import re

import yaml

from anapart.metrics import fold_shared
from anapart.metrics.mrmc_formats import figure_name, parse_interaction
from anapart.report import provenance as P

NAN = float("nan")
HEADLINE_ID = "anapart-headline"

# Snakemake's content pane: ``grow flex items-center justify-center h-screen overflow-auto`` centres
# a tall page so its top is above the pane, unreachable by scrolling. Align it to the top instead.
STYLE = f"""\
.. raw:: html

   <style>
   div.grow.flex.items-center.justify-center.h-screen {{ align-items: flex-start; justify-content: flex-start; }}
   div.prose.max-w-lg {{ max-width: 46rem; width: 46rem; }}
   #{HEADLINE_ID} {{ border: 2px solid #0072B2; border-radius: 6px; padding: 0.2rem 0.8rem; margin-bottom: 0.8rem; }}
   #{HEADLINE_ID} p {{ margin: 0.35rem 0; }}
   .anapart-banner {{ background: #FFF3CD; border-left: 6px solid #E69F00; padding: 0.2rem 0.6rem; }}
   </style>
"""

GLOSSARY = [
    ("aAUC", "average area under the ROC curve: the mean of the one-vs-rest AUCs of the classes (0.5 = chance, "
             "1 = perfect separation)."),
    ("full, seg112, seg224", "study A's image formats: the whole slice; a 112- or 224-pixel square cut around the "
                             "region the segmentation model found, resized to the network input."),
    ("RRRC / FRRC", "multi-reader multi-case analysis (Obuchowski-Rockette) with random networks and random "
                    "patients (RRRC: generalises to other networks of the kind) or fixed networks (FRRC)."),
    ("chance-corrected (Grad-CAM)", "the share of a Grad-CAM map's bright area inside the lesion minus the share "
                                    "a map spread at random would get; 0 = no better than chance."),
    ("degenerate model", "a classifier that gives one class to at least 95% of the test slices (auc.csv, "
                         "column degenerate): its AUC says little."),
    ("alpha", "the significance level an endpoint is judged at; study A's co-primary endpoints share the "
              "study's alpha by Holm's step-down (the smallest p judged at alpha / k for k endpoints)."),
    ("exact McNemar", "the paired test of two methods' right/wrong calls on the same patients."),
]


def _esc(text) -> str:
    """Text from tables, safe inside reStructuredText (no markup characters acted on)."""
    return re.sub(r"([*`_|\\])", r"\\\1", str(text))


def _num(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return NAN
    return f


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _level(row, fallback: float) -> float:
    lvl = _num(row.get("ci_level", NAN))
    return lvl if math.isfinite(lvl) else fallback


def interval_text(row, fallback_level: float) -> str:
    """The interval at the level the table states (column ``ci_level``); without that column the
    level the run computed it at, said to be unmatched when it is not 1 - 2 * alpha / 2."""
    lo, hi = _num(row.get("ci_low")), _num(row.get("ci_high"))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no interval"
    level = _level(row, fallback_level)
    pct = f"{100 * level:.1f}".rstrip("0").rstrip(".")
    alpha = _num(row.get("alpha"))
    stated = "ci_level" in row and math.isfinite(_num(row.get("ci_level")))
    if not stated and math.isfinite(alpha) and abs((1 - level) - alpha) > 1e-9:
        return f"{pct}% interval {lo:+.3f} to {hi:+.3f} (its level is not matched to alpha {alpha:g}; the verdict reads p)"
    return f"{pct}% CI {lo:+.3f} to {hi:+.3f}"


def verdict(row, first: str, second: str) -> str:
    """The table's verdict (column ``verdict``) or, without it, p against alpha, in words."""
    v = row.get("verdict")
    if isinstance(v, str) and v.strip():
        return v.strip()
    p, alpha, est = _num(row.get("p")), _num(row.get("alpha")), _num(row.get("estimate"))
    if not math.isfinite(est):
        return "none, no estimate"
    if not math.isfinite(p):
        return "none, no p-value"
    if not math.isfinite(alpha):
        return "none, no alpha"
    if p < alpha:
        return f"shown at alpha {alpha:g}: {first} {'above' if est > 0 else 'below'} {second}"
    return f"not shown at alpha {alpha:g}"




def study_a_lines(table, auc, n_test: tuple[int, int], ci_level: float) -> list[str]:
    """One paragraph per primary row of primary.csv (discrimination, then interpretability)."""
    out = []
    for _, r in table[table["role"].astype(str).str.startswith("primary")].iterrows():
        r = r.to_dict()
        inter = parse_interaction(r["contrast"])
        a, b = inter[:2] if inter else (s.strip() for s in str(r["contrast"]).split(" - "))
        frac = int(_num(r["frac"])) if math.isfinite(_num(r.get("frac"))) else None
        fracs = list(inter[2:]) if inter else [frac] if frac is not None else None
        rows = auc[auc["fmt"].isin([a, b]) & (auc["frac"].isin(fracs) if fracs else True)]
        nets = sorted(rows["net"].unique())
        deg = int(rows["degenerate"].astype(str).str.lower().eq("true").sum()) if "degenerate" in rows else 0
        fig = _esc(figure_name(r["figure"]))
        if inter:
            what = (f"data cost: {fig} difference {a} minus {b} at {inter[2]}% of the training set minus the "
                    f"same difference at {inter[3]}% (format x fraction interaction; {_esc(r['analysis'])})")
        elif str(r["role"]).startswith("primary (interp"):
            what = (f"Grad-CAM {_esc(r['figure'])} score of {a} minus {b} (each patient's mean score; networks "
                    f"and patients random (OR-RRRC); models of cam.fractions)")
        else:
            analysis = {"RRRC": "networks and patients random (RRRC)",
                        "FRRC": "these networks fixed, patients random (FRRC)"}.get(r["analysis"], _esc(r["analysis"]))
            what = f"{fig} of {a} minus {b}, models trained on {frac}% of the training set; {analysis}"
            if r.get("estimator") == "within-fold":
                what += "; within-fold AUCs averaged over every repeat and seed"
                why = str(r.get("note", ""))  # the row's reason, as anapart.metrics.fold_shared wrote it
                if fold_shared.NOTE in why or fold_shared.ZERO in why:
                    what += ", with what a fold's networks share in its variance"
                elif fold_shared.SKIPPED in why:
                    what += " (too few folds to estimate what a fold's networks share: conditional on them)"
        est = _num(r["estimate"])
        if math.isfinite(est):
            num = f"**{est:+.3f}** ({interval_text(r, ci_level)}"
            num += f", {_p(_num(r['p']))}" if math.isfinite(_num(r["p"])) else ", no p-value"
            num += f", alpha {_num(r['alpha']):g})" if math.isfinite(_num(r.get("alpha"))) else ")"
        else:
            num = "**no estimate**"
        note = str(r.get("note")) if isinstance(r.get("note"), str) else ""
        why = (f" ({_esc(note.split(';')[0].removeprefix('no p-value: '))})"
               if not math.isfinite(_num(r["p"])) and note else "")
        if r.get("estimator") == "within-fold":  # the replicates: every patient, not the single split's test set
            reps = _num(r.get("n_replicates"))
            rests = (f"Rests on {len(nets)} network(s) ({', '.join(_esc(n) for n in nets)}), every patient tested "
                     f"once in each of {int(reps) if math.isfinite(reps) else 'the'} replicates (repeats x seeds) "
                     f"by a model that never saw them.")
        else:
            rests = (f"Rests on {len(nets)} network(s) ({', '.join(_esc(n) for n in nets)}), {n_test[0]} test "
                     f"patients ({n_test[1]} slices); degenerate models: {deg} of {len(rows)}.")
        out.append(f"*{_esc(r['role']).capitalize()}* — {what}: {num}. "
                   f"**Verdict: {_esc(verdict(r, a, b))}{why}.** {rests}")
    return out


def study_b_line(claims, alpha: float = 0.05) -> str:
    """The declared primary claim of study B (first row of claims.csv)."""
    prim = claims[claims["role"] == "primary"]
    if prim.empty:
        return "No primary claim in claims.csv."
    r = prim.iloc[0].to_dict()
    if not math.isfinite(_num(r.get("alpha"))):
        r["alpha"] = alpha
    est = _num(r["estimate"])
    auc = "AUC" in str(r.get("test"))  # DeLong and the permutation test compare AUCs, McNemar accuracies
    num = (f"AUC {_num(r.get('auc_a')):.2f} vs {_num(r.get('auc_b')):.2f}, AUC difference **{est:+.3f}** " if auc else
           f"accuracy {_num(r['accuracy_a']):.2f} vs {_num(r['accuracy_b']):.2f}, difference **{est:+.3f}** ")
    num += (f"({interval_text(r, 0.95)}, " + (_p(_num(r["p"])) if math.isfinite(_num(r["p"])) else "no p-value")
            + f", alpha {_num(r['alpha']):g})")
    sim = " The comparison involves a simulated method (the demo's TNM reading)." if str(
        r.get("simulated")).lower() == "true" else ""
    return (f"*Primary claim* — {_esc(r['a'])} better than {_esc(r['b'])} at staging patients III vs IVa "
            f"({_esc(r['test'])}): {num}. **Verdict: "
            f"{_esc(verdict(r, str(r['a']), str(r['b'])))}.** Rests on {int(_num(r['n_patients']))} test patients."
            + sim)


def banner(cohort_synthetic: bool, staging_on: bool, staging_synthetic: bool) -> str:
    """The "synthetic" notice: which study's numbers come from generated phantoms."""
    if cohort_synthetic and (not staging_on or staging_synthetic):
        return ("**Synthetic demo.** Every number on this page comes from generated phantom images: it describes "
                "the workflow, not clinical performance.")
    if staging_on and staging_synthetic:
        return ("**Study B ran on generated phantoms** (asked for by ``staging.enabled: true``): its numbers "
                "describe the workflow, not clinical performance. Study A's cohort is the one configured.")
    if cohort_synthetic:
        return ("**Study A ran on generated phantoms**: its numbers describe the workflow, not clinical "
                "performance.")
    return ""


def _indent(text: str, n: int = 3) -> str:
    return "\n".join((" " * n + line) if line else "" for line in text.splitlines())


def page(*, table, auc, n_test, ci_level, config: dict, prov: dict, template: str, claims=None,
         sample_size: str | None = None) -> str:
    """The whole front page (reStructuredText; Snakemake renders its Jinja and docutils)."""
    cohort_synth = config["cohort"]["source"] == "synthetic"
    stg = config.get("staging", {})
    staging_on = claims is not None
    staging_synth = stg.get("cohort", {}).get("source") == "synthetic"
    parts = []
    b = banner(cohort_synth, staging_on, staging_synth)
    if b:
        parts.append(f".. container:: anapart-banner\n\n{_indent(b, 3)}")
    parts.append("**Study A (anatomical partition) — primary endpoints**, declared before the run in "
                 "``stats.primary`` (``primary.csv``)")
    parts += study_a_lines(table, auc, n_test, ci_level)
    if staging_on:
        parts.append("**Study B (LA-NPC staging) — primary claim**, declared before the run in ``staging.primary`` "
                     "(``claims.csv``)")
        parts.append(study_b_line(claims))
    else:
        parts.append("**Study B (LA-NPC staging)**: not run in this configuration (``staging.enabled``; it needs "
                     "``staging.cohort`` to name real data, or a synthetic study A).")
    # OPTIONAL SLOT (helper "power"): the sample-size sentence, shown when its file exists.
    if sample_size:
        parts.append(_esc(sample_size.strip()))
    parts.append("Every other comparison is secondary (exploratory).")
    head = "\n\n".join(parts)
    out = [STYLE, f".. container::\n   :name: {HEADLINE_ID}\n\n{_indent(head)}", ""]
    out.append("**Glossary.** " + " ".join(f"*{_esc(k)}*: {_esc(v)}" for k, v in GLOSSARY))
    out.append("")
    out.append(template.rstrip() + "\n")
    out.append(provenance_rst(prov, config))
    return "\n".join(out)


def provenance_rst(prov: dict, config: dict) -> str:
    """The provenance section: software, citations, the merged configuration (public: no salt, no
    absolute path)."""
    cites = [f"- Study A: {P.STUDY_A}", f"- Study B: {P.STUDY_B}"]
    data = config["cohort"].get("citation")
    if data:
        cites.append(f"- Data set: {_esc(data)}")
    conf = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100)
    folded = ("<details><summary><strong>Merged configuration</strong> of this run (config/config.yaml with "
              "every --configfile over it; salts and absolute paths replaced): click to open</summary>"
              f"<pre style='font-size: 11px; line-height: 1.3'>{html.escape(conf)}</pre></details>")
    return "\n".join([
        "", "**Provenance.** " + _esc(P.software_line(prov)), "",
        "**Papers rebuilt and data cited.**", "", *cites, "", ".. raw:: html", "", _indent(folded, 3), ""])
