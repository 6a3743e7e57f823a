"""The reporting checklist of a run: TRIPOD+AI / CLAIM items, each answered from this run's outputs.

Reviewers of a clinical AI paper check the reporting guidelines first. Every answer here is
composed from the configuration and from files the run wrote (counts from ``ingest.json`` and the
manifests, split sizes from the split lists, scores from the tables), and every row names the files
that hold the full answer; no number is typed in by hand. Item numbers: TRIPOD+AI (Collins et al.,
BMJ 2024) and CLAIM (Mongan et al., Radiology: AI 2020).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from anapart.learn import weights
from anapart.report.primary import headline

# No pandas at import time: the Snakefile imports this module for input_paths.

# key, item, TRIPOD+AI, CLAIM
ITEMS = [
    ("primary", "Primary endpoint (declared before the run)", "12e, 23a", "28, 29"),
    ("source", "Data source and dates", "5a, 5b, 6a", "7"),
    ("eligibility", "Eligibility", "6b", "8"),
    ("outcome", "Outcome and its labelling", "8a", "14, 16"),
    ("predictors", "Predictors (images) and preprocessing", "7, 9a", "9, 11"),
    ("sample_size", "Sample size", "10", "19"),
    ("missing", "Missing data", "11", "13"),
    ("splits", "Data partitions", "12a", "20, 21"),
    ("model", "Model and training", "12c", "22-26"),
    ("performance", "Performance, incl. calibration", "12e, 23a", "28, 29, 35"),
    ("external", "External validation", "16", "32"),
    ("limitations", "Limitations", "27b", "38"),
]
COLUMNS = ["item", "tripod_ai", "claim", "answer", "where"]


def _json(path) -> dict:
    return json.loads(Path(path).read_text())


def _counts(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"


def _period(check: dict) -> str:
    p = check.get("study_period")
    return f"{p[0]} to {p[1]}" if p else "not stated in the headers (no StudyDate)"


def _mean(table, col: str, **where) -> float:
    t = table
    for k, v in where.items():
        t = t[t[k] == v]
    return float(t[col].mean()) if len(t) else float("nan")


def build(paths: dict, config: dict):
    """The checklist table (``COLUMNS``) from the run's files in ``paths`` and the configuration.

    ``paths`` keys: check, ingest, manifest, patients, test, train (dict fraction -> list), crops_qc,
    selected, auc, calibration, primary; with an external cohort ext_check, ext_ingest, ext_qc, auc_external;
    with study B staging_table4, staging_ensemble. Returns a pandas DataFrame.
    """
    import pandas as pd

    cohort, classes = config["cohort"], list(config["classes"])
    check, ingest = _json(paths["check"]), _json(paths["ingest"])
    patients = pd.read_csv(paths["patients"])
    test = pd.read_csv(paths["test"])
    train = {int(f): pd.read_csv(p) for f, p in paths["train"].items()}
    qc = pd.read_csv(paths["crops_qc"])
    selected = _json(paths["selected"])
    auc = pd.read_csv(paths["auc"])
    cal = pd.read_csv(paths["calibration"])
    ext = "ext_ingest" in paths
    if ext:
        ext_check, ext_ingest = _json(paths["ext_check"]), _json(paths["ext_ingest"])
        ext_qc, auc_ext = pd.read_csv(paths["ext_qc"]), pd.read_csv(paths["auc_external"])
    staging = "staging_table4" in paths
    synthetic = cohort["source"] == "synthetic"
    cls_cfg, split = config["classify"], config["split"]
    top = max(int(f) for f in split["fractions"])
    n_pat, n_sl = ingest["n_patients"], ingest["n_slices"]
    where: dict[str, list[str]] = {}
    a: dict[str, str] = {}
    a["primary"] = (headline(pd.read_csv(paths["primary"]), config["evaluate"]["ci_level"]) + " Every other "
                    "comparison is secondary (results/tables/primary.csv: Holm over the family of the other format "
                    "contrasts).")
    where["primary"] = [paths["primary"]]

    source = ("the embedded synthetic DICOM cohort that the workflow generates (synthetic.seed "
              f"{config['synthetic']['seed']})" if synthetic else "a folder of DICOM series (cohort.dicom_dir)")
    a["source"] = (f"Development cohort: {source}; {check['files']} files, {check['series']} series of "
                   f"{check['patients_in_dicom']} patients; study dates {_period(check)}; scanners: "
                   f"{_counts(check.get('scanners', {}))}.")
    where["source"] = [paths["check"], "results/cohort/check.csv"]
    if ext:
        esrc = ("the synthetic external site (synthetic_external)" if cohort["external"]["source"] == "synthetic"
                else "a second DICOM folder (cohort.external.dicom_dir)")
        a["source"] += (f" External cohort: {esrc}; {ext_check['series']} series of {ext_check['patients_in_dicom']} "
                        f"patients; study dates {_period(ext_check)}; scanners: {_counts(ext_check.get('scanners', {}))}.")
        where["source"].append(paths["ext_check"])

    s = cohort["series"]
    a["eligibility"] = (f"Patients with a row in the labels table and exactly one series matching the series rule "
                        f"(description {s['description'] or 'any'}, orientation {s['orientation']}, at least "
                        f"{s['min_slices']} slices); only the labelled slices are used. {check['patients_labelled']} "
                        f"labelled patients, {check['patients_ready']} eligible and ingested.")
    where["eligibility"] = [paths["check"], "results/cohort/check.csv"]

    a["outcome"] = (f"Slice label, one of {len(classes)} classes ({', '.join(classes)}), from the labels table "
                    + ("(for the synthetic cohort: the generator's lesion type; tumour-free slices are 'normal')"
                       if synthetic else "(the reference standard of the study)")
                    + f". Slices per class: {_counts(ingest['classes'])}. Region masks on {ingest['region_masks']} "
                      f"slices, lesion masks on {ingest['lesion_masks']}.")
    where["outcome"] = [paths["ingest"], paths["manifest"]]

    sizes = config["crop"]["sizes"]
    a["predictors"] = (f"The pixels of one MR series per patient: rescaled, zero-padded to a square and resampled to "
                       f"{ingest['field']} px, each series scaled to [0, 1] by its "
                       f"{'/'.join(str(v) for v in cohort['intensity_percentiles'])} percentiles. Formats "
                       f"{', '.join(cls_cfg['formats'])} (squares of {', '.join(f'{k} {v}' for k, v in sizes.items())} "
                       f"px of a 512 field around the predicted region), network input "
                       f"{cls_cfg.get('input_size') or 'the native crop size'} px.")
    where["predictors"] = [paths["crops_qc"], "results/crops/{fmt}/index.csv"]

    per_class = patients.groupby("group").size().to_dict()
    a["sample_size"] = (f"No sample-size calculation: every eligible patient was used, {n_pat} patients "
                        f"({n_sl} slices); patients per stratum: {_counts(per_class)}."
                        + (f" External: {ext_ingest['n_patients']} patients ({ext_ingest['n_slices']} slices)."
                           if ext else ""))
    where["sample_size"] = [paths["ingest"], paths["patients"]] + ([paths["ext_ingest"]] if ext else [])

    fallback = int(qc["fallback"].astype(bool).sum())
    a["missing"] = (f"Complete cases: a patient with any problem stops the run (problems found: {check['problems']}); "
                    f"files skipped as not images of the cohort: {_counts(check.get('files_skipped', {}))}. "
                    f"{fallback} of {len(qc)} slices had an empty predicted region and were cropped at the training "
                    f"patients' median centre.")
    where["missing"] = [paths["check"], paths["crops_qc"]]
    if ext:
        a["missing"] += (f" External: {ext_check['problems']} problems, "
                         f"{int(ext_qc['fallback'].astype(bool).sum())} of {len(ext_qc)} slices on the fallback centre.")
        where["missing"].append(paths["ext_qc"])

    side = patients["split"].value_counts().to_dict()
    a["splits"] = (f"Patient-level split per stratum ({1 - split['test_fraction']:.0%} / {split['test_fraction']:.0%}, "
                   f"seed {split['seed']}): {side.get('train', 0)} training patients, {side.get('test', 0)} test "
                   f"patients ({len(test)} test slices); no patient on both sides (checked when the split is written). "
                   f"Nested training subsets: {', '.join(f'{f}% {len(t)} slices' for f, t in sorted(train.items(), reverse=True))}."
                   + (" The external cohort is never trained on, split, or used to select a model." if ext else ""))
    where["splits"] = [paths["patients"], paths["test"], *paths["train"].values()]

    n_models = len(auc)
    from_scratch = weights.parse(cls_cfg["pretrained"]) is False
    a["model"] = (f"Segmentation: {', '.join(config['segment']['archs'])} ({config['segment']['encoder']} encoder), "
                  f"selected: {selected['reason']}. Classifiers: {n_models} timm networks "
                  f"({', '.join(cls_cfg['nets'])}) x {len(cls_cfg['formats'])} formats x {len(split['fractions'])} "
                  f"fractions; {cls_cfg['optimizer']}, lr {cls_cfg['lr']}, {cls_cfg['epochs']} epoch(s), "
                  f"batch {cls_cfg['batch_size']}, weights: "
                  f"{'random initialisation' if from_scratch else 'ImageNet (pretrained)'}; seed {cls_cfg['seed']}; "
                  "no hyperparameter was tuned on the test or external data.")
    where["model"] = [paths["selected"], "results/classify/{net}/{fmt}/f{frac}/model.pt"]
    if staging:
        stg = config["staging"]
        backbone = "frozen backbones, new top" if stg["train"]["freeze_backbone"] else "fine-tuned end to end"
        basic = " and a basic CNN" if stg["basic_cnn"]["enabled"] else ""
        a["model"] += (f" Study B: {', '.join(stg['models'])} ({backbone}){basic}; soft voting of the transfer "
                       "models.")

    ci = int(round(100 * config["evaluate"]["ci_level"]))
    perf = "; ".join(f"{fmt} {_mean(auc, 'aauc', fmt=fmt, frac=top):.3f} (Brier {_mean(cal, 'brier', fmt=fmt, frac=top):.3f}, "
                     f"ECE {_mean(cal, 'ece', fmt=fmt, frac=top):.3f})" for fmt in cls_cfg["formats"])
    a["performance"] = (f"Discrimination: per-class one-vs-rest ROC AUC and their mean (aAUC) with a {ci}% patient "
                        f"bootstrap CI ({config['evaluate']['n_boot']} resamples); calibration: "
                        f"multi-class and per-class Brier score, top-label expected calibration error "
                        f"({config['evaluate']['calibration_bins']} bins), reliability diagrams; no "
                        f"recalibration. Mean over networks at {top}% on the internal test set: {perf}.")
    where["performance"] = [paths["auc"], paths["calibration"], "results/figures/reliability_{fmt}.png",
                            "results/tables/anova.csv"]
    if staging:
        ens = _json(paths["staging_ensemble"])
        a["performance"] += (f" Study B ensemble: accuracy {ens['accuracy']:.3f}, Brier {ens['brier']:.3f}, ECE "
                             f"{ens['ece']:.3f}.")
        where["performance"] += [paths["staging_table4"], "results/staging/figures/reliability.png"]

    if ext:
        per_fmt = "; ".join(f"{fmt} {_mean(auc_ext, 'aauc_internal', fmt=fmt, frac=top):.3f} -> "
                            f"{_mean(auc_ext, 'aauc_external', fmt=fmt, frac=top):.3f} (ECE external "
                            f"{_mean(cal, 'ece_external', fmt=fmt, frac=top):.3f})" for fmt in cls_cfg["formats"])
        a["external"] = " ".join([
            f"{ext_ingest['n_patients']} patients ({ext_ingest['n_slices']} slices) from another site or scanner,",
            "ingested with the same preprocessing and cropped by the selected segmentation model;",
            f"every classifier predicts it. Mean aAUC over networks at {top}%, internal -> external: {per_fmt};",
            f"mean difference over all {len(auc_ext)} models {auc_ext['delta'].mean():+.3f}."])
        where["external"] = [paths["auc_external"], "results/figures/external_vs_internal.png", paths["ext_ingest"]]
    else:
        a["external"] = "No external cohort was given (cohort.external): internal validation only."
        where["external"] = []

    lim = []
    if synthetic:
        lim.append("the cohort is synthetic: the numbers describe the workflow, not clinical performance")
    if from_scratch:
        lim.append(f"networks trained from scratch for {cls_cfg['epochs']} epoch(s) (no ImageNet weights)")
    lo, hi = auc.loc[auc["frac"] == top, ["ci_low", "ci_high"]].mean()
    lim.append(f"{side.get('test', 0)} test patients: the mean {ci}% CI of the aAUC at {top}% spans "
               f"{lo:.2f}-{hi:.2f}")
    lim.append("one external site" if ext else "no external validation")
    lim.append("slice-level labels and predictions (patients are the unit of the split and the bootstrap only)")
    text = "; ".join(lim) + "."
    a["limitations"] = text[0].upper() + text[1:]
    where["limitations"] = [paths["auc"]] + ([paths["auc_external"]] if ext else [])

    rows = [{"item": title, "tripod_ai": tripod, "claim": claim, "answer": a[key], "where": "; ".join(where[key])}
            for key, title, tripod, claim in ITEMS]
    bad = [r["item"] for r in rows if re.search(r"\bnan\b", r["answer"])]
    if bad:
        raise ValueError(f"checklist items {bad} have an undefined value; an input table is incomplete")
    return pd.DataFrame(rows, columns=COLUMNS)


def input_paths(*, fractions, external: bool, staging: bool) -> dict:
    """Where ``build`` reads each input in a run of the workflow (one place for the rule and the tests)."""
    p = {"check": "results/cohort/check.json", "ingest": "results/cohort/ingest.json",
         "manifest": "results/cohort/manifest.csv", "patients": "results/split/patients.csv",
         "test": "results/split/test.csv", "train": {int(f): f"results/split/train_f{int(f)}.csv" for f in fractions},
         "crops_qc": "results/crops/qc.csv", "selected": "results/seg/selected.json",
         "auc": "results/tables/auc.csv", "calibration": "results/tables/calibration.csv",
         "primary": "results/tables/primary.csv"}
    if external:
        p.update(ext_check="results/external/cohort/check.json", ext_ingest="results/external/cohort/ingest.json",
                 ext_qc="results/external/crops/qc.csv", auc_external="results/tables/auc_external.csv")
    if staging:
        p.update(staging_table4="results/staging/tables/table4_models.csv",
                 staging_ensemble="results/staging/ensemble/metrics.json")
    return p


def flat(paths: dict) -> dict[str, str]:
    """``input_paths`` as Snakemake's named inputs (the training lists as train_f<frac>)."""
    out = {k: v for k, v in paths.items() if k != "train"}
    out.update({f"train_f{f}": v for f, v in paths["train"].items()})
    return out


def unflat(named: dict) -> dict:
    """The inverse of :func:`flat`: Snakemake's named inputs back to ``build``'s paths."""
    out = {k: str(v) for k, v in named.items() if not k.startswith("train_f")}
    out["train"] = {int(k[len("train_f"):]): str(v) for k, v in named.items() if k.startswith("train_f")}
    return out
