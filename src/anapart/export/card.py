"""MODEL_CARD.md of a model package: what the model is for, what it was trained and tested on,
how well it did with intervals, how it was chosen, and what it cannot tell.

Every number comes from the workflow's own outputs (the classifier's ``metrics.json``, the split,
the cohort check's summary); nothing is typed in. A synthetic cohort is said so at the top.
"""

from __future__ import annotations


def _fmt(v, nd: int = 3) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if f != f else f"{f:.{nd}f}"


def metrics_lines(m: dict, classes) -> list[str]:
    """One table of a metrics.json: aAUC with its interval, per-class AUC, sensitivity, specificity."""
    lo, hi = (m.get("aauc_ci") or [None, None])[:2]
    level = int(round(100 * float(m.get("ci_level", 0.95))))
    lines = [f"- patients {m.get('n_test_patients', 'n/a')}, slices {m.get('n_test_slices', 'n/a')}",
             f"- aAUC {_fmt(m.get('aauc'))} ({level}% CI {_fmt(lo)}-{_fmt(hi)}; {m.get('ci_method', '')}, "
             f"{m.get('n_boot', 'n/a')} resamples); chance 0.5",
             f"- balanced accuracy {_fmt(m.get('balanced_accuracy'))} (chance {_fmt(m.get('balanced_accuracy_chance'))})",
             f"- Brier {_fmt(m.get('brier'))}, top-label ECE {_fmt(m.get('ece'))} ({m.get('ece_bins', 'n/a')} bins)",
             "", "| class | AUC | sensitivity | specificity |", "|---|---|---|---|"]
    for c in classes:
        lines.append(f"| {c} | {_fmt((m.get('auc') or {}).get(c))} | {_fmt((m.get('sensitivity') or {}).get(c))} "
                     f"| {_fmt((m.get('specificity') or {}).get(c))} |")
    return lines


def model_card(descriptor: dict, counts: dict, check: dict, metrics: dict, *, intended_use: str,
               config_files=()) -> str:
    """The card's markdown (see the module docstring)."""
    classes = descriptor["classes"]
    clf = descriptor["classifiers"][0]
    pre = descriptor["preprocessing"]
    synthetic = descriptor["synthetic"]
    title = f"# Model card: {clf['net']} on {clf['format']} crops, {clf['fraction']}% of the training patients"
    out = [title, ""]
    if synthetic:
        out += ["> **Synthetic.** This model was trained and tested on anapart's embedded synthetic phantom "
                "cohort, not on patients. Its numbers say that the pipeline works, nothing about "
                "nasopharyngeal MRI. Do not apply it to patients.", ""]
    out += ["## Intended use", "", intended_use.strip(), "",
            f"Input: one {pre['series']['orientation']} MRI series per patient"
            + (f" whose SeriesDescription matches '{pre['series']['description']}'" if pre["series"]["description"]
               else "") + f", at least {pre['series']['min_slices']} slices. Output: per slice and per patient "
            f"the probabilities of {', '.join(classes)}.", ""]
    out += ["## Training cohort", ""]
    for side in ("training", "test"):
        c = counts[side]
        per = ", ".join(f"{k} {v}" for k, v in c["patients_per_class"].items())
        out.append(f"- {side}: {c['patients']} patients ({per}), {c['slices']} slices")
    period = check.get("study_period")
    scanners = check.get("scanners") or {}
    out += [f"- development cohort (training and test): study months {period[0]} to {period[1]}" if period
            else "- development cohort: study months not stated in the image headers",
            "- scanners (patients): " + (", ".join(f"{k} ({v})" for k, v in scanners.items()) or "not stated"),
            "- patients per class are the patient's stratum in the split (its lesion class, normal if none)", ""]
    out += ["## Test metrics (internal test patients, never trained on)", ""] + metrics_lines(metrics, classes) + [""]
    if "external" in metrics:
        out += ["## External metrics (another site, never used for training or choice)", ""]
        out += metrics_lines(metrics["external"], classes) + [""]
    else:
        out += ["## External metrics", "", "None: the study had no external cohort. Validate the model on your own "
                "patients first (`anapart predict`, then `anapart evaluate`).", ""]
    out += ["## How the model was chosen", "",
            f"Named before the run in the config (`package.net`, `package.format`, `package.fraction`; unset they "
            f"are the first of `classify.nets`, the first format of the primary contrast and the largest training "
            f"fraction). It was not picked for its test or external score. The segmentation model that cuts the "
            f"crops is the workflow's choice by held-out Dice ({descriptor['segmentation']['meta'].get('arch')}). "
            f"A slice with no predicted region is cropped around the training prior centre "
            f"({', '.join(_fmt(v, 1) for v in descriptor['segmentation']['prior_center'])} px at field {pre['field']}).",
            "", "## Preprocessing", "",
            f"Slices resampled to {pre['field']} px, intensities scaled per series between the "
            f"{pre['intensity_percentiles'][0]}th and {pre['intensity_percentiles'][1]}th percentiles, crops of "
            f"{', '.join(f'{k} {v}/512' for k, v in pre['crop_sizes'].items())} of the field, classifier input "
            f"{clf['meta'].get('input_size')} px normalised by {clf['meta'].get('normalize')}.", "",
            "## Limitations", "",
            "- Intervals are over the test patients of one study; they do not cover another site's patients, "
            "scanners or protocols. The external rows, where present, are one other site.",
            "- Slice probabilities of one patient are not independent; the patient is the unit of every interval.",
            "- The series rule, field and intensity scaling above are part of the model: a series they do not "
            "select is refused, not guessed.",
            "- Probabilities are not recalibrated; check the Brier score and ECE on your own patients.",
            "- Not a medical device; not for diagnosis.", "",
            "## Provenance", "",
            f"- anapart {descriptor['anapart_version']}; requirements.lock sha256 "
            f"{descriptor['requirements_lock_sha256']}",
            f"- config: config.yaml in this package (merged{' from ' + ', '.join(map(str, config_files)) if config_files else ''}; "
            "no salt, no path)", ""]
    return "\n".join(out)
