# Shared by all rule files -- the conda environment, scheduling priorities, the private folder,
# the feature switches, the pretrained-weights paths, and the message a finished run prints.
# Study A's settings and helpers are in common_partition.smk, study B's in common_staging.smk
# (both included below); the warm worker's start/stop is in worker.smk.
import os
import re

ENV = "../../envs/anapart.yaml"
# Scheduling on a few local cores: study A's chain to the crops decides when its 36 classifiers can
# start, so it goes first; the classifiers next; study B (independent of study A) fills free cores.
PRIORITY = {"critical": 100, "train": 50}
# Files that name DICOM paths or PatientIDs (the ingest plan): never under results/, git-ignored.
PRIVATE_DIR = "private"


def staging_on(cfg):
    """Study B runs on its phantom only beside a synthetic study A cohort, or when asked for by name
    (``staging.enabled: true``); with a real study A cohort, ``auto`` keeps it off until
    ``staging.cohort`` names real data (a phantom study B never sits unlabelled beside real results).
    """
    enabled = cfg["staging"]["enabled"]
    if enabled == "auto":
        return (
            cfg["staging"]["cohort"]["source"] != "synthetic"
            or cfg["cohort"]["source"] == "synthetic"
        )
    return bool(enabled)


# Feature switches: every optional part of the DAG is one entry here, read through on(name), so a
# rule file never re-derives a switch from config (each value is a schema-checked config key).
_EXT = config["cohort"]["external"]
SWITCHES = {
    # The demo's synthetic external site goes with the synthetic main cohort only: a user's own
    # cohort gets an external cohort only from their own folder (source: dicom or nifti).
    "external": _EXT is not None
    and (
        _EXT["source"] in ("dicom", "nifti")
        or config["cohort"]["source"] == "synthetic"
    ),
    "staging": staging_on(config),
    "staging.basic_cnn": bool(config["staging"]["basic_cnn"]["enabled"]),
    "staging.compare_clahe": bool(config["staging"]["compare_clahe"]),
    "staging.radiomics": bool(config["staging"]["radiomics"]["enabled"]),
    "cam.reviewers": bool(config["cam"]["reviewers_dir"]),
    "warm_worker": bool(config["warm_worker"]),
    # folds >= 2: study A's classifiers again over K folds x repeats x seeds (replicates.smk)
    "replicates": int(config["replicates"]["folds"]) >= 2,
}


def on(name):
    """Whether the optional part ``name`` of the DAG is on (a key of SWITCHES)."""
    if name not in SWITCHES:
        raise KeyError(f"unknown feature switch {name!r}; known: {sorted(SWITCHES)}")
    return SWITCHES[name]


# --------------------------------------------------------------- what rule params may show
# Snakemake's report prints every rule's params: no pseudonym salt and no absolute input path may be
# among them. Scripts read the salt from the config (anapart.cohort.pseudonyms.salt_of) and a user
# cohort's folders from their inputs; params carry only a fingerprint (the rerun trigger).
from anapart.cohort.pseudonyms import salt_fingerprint, salt_of
from anapart.learn import (
    weights as W,
)  # no torch import: only paths (and timm when a name is new)


def salt_params(cohort):
    """``salt=`` of a job that pseudonymises ``cohort`` (a key of anapart.cohort.pseudonyms.SALT_KEYS)."""
    return {"of": cohort, "fingerprint": salt_fingerprint(salt_of(config, cohort))}


def public_config(cfg):
    """``cfg`` without its salts, and with absolute paths replaced (for params that need it whole)."""
    if isinstance(cfg, dict):
        return {
            k: ("<secret>" if k == "pseudonym_salt" and v else public_config(v))
            for k, v in cfg.items()
        }
    if isinstance(cfg, list):
        return [public_config(v) for v in cfg]
    if isinstance(cfg, str) and os.path.isabs(cfg):
        return "<absolute path>"
    return cfg


include: "common_partition.smk"
include: "common_staging.smk"
include: "common_report.smk"


# --------------------------------------------------------------- fail at start-up on what the config can tell
def config_problems():
    """Problems a job would meet hours later: network names timm does not have, a classifier without
    a Grad-CAM layer. One line each, naming the key and the value."""
    nets = {
        "classify.nets": NETS,
        **({"staging.models": STG_MODELS} if on("staging") else {}),
    }
    problems = W.network_problems(nets, cache=".snakemake/anapart/networks.json")
    layers = config["cam"]["target_layers"]
    problems += [
        f"cam.target_layers: no entry for '{n}' (in classify.nets); name the layer Grad-CAM maps, "
        f"e.g. {n}: blocks.4 (config/config.yaml lists the demo's)"
        for n in NETS
        if n not in layers
    ]
    prim = config["stats"]["primary"]
    bad = [f for f in prim["contrast"].split(" - ") if f not in FORMATS]
    if bad:
        problems.append(
            f"stats.primary.contrast: '{prim['contrast']}' names {bad[0]!r}, not one of classify.formats {FORMATS}"
        )
    if prim["fraction"] not in FRACTIONS:
        problems.append(
            f"stats.primary.fraction: {prim['fraction']} is not one of split.fractions {FRACTIONS}"
        )
    if prim["figure"] != "aauc" and prim["figure"][4:] not in config["classes"]:
        problems.append(
            f"stats.primary.figure: '{prim['figure']}' is neither aauc nor auc_<class> of classes"
        )
    rep = config["replicates"]
    if rep["folds"] == 1 and (rep["repeats"] > 1 or len(rep["seeds"] or [0]) > 1):
        problems.append(
            "replicates: repeats and seeds replicate a K-fold grid; set replicates.folds >= 2 "
            "(4 is the paper's 3:1) or leave repeats 1 and one seed"
        )
    if on("replicates") and (
        REP_PRIMARY[0] not in REP_REPEATS or REP_PRIMARY[1] not in REP_SEEDS
    ):
        problems.append(
            f"replicates.primary: repeat {REP_PRIMARY[0]}, seed {REP_PRIMARY[1]} is not in the grid "
            f"(repeats 0..{len(REP_REPEATS) - 1}, seeds {REP_SEEDS})"
        )
    return problems


if (
    workflow.is_main_process
):  # cluster jobs re-read the Snakefile: checked once, at the start
    _problems = config_problems()
    if _problems:
        raise ValueError("config:\n  " + "\n  ".join(_problems))


# --------------------------------------------------------------- pretrained weights (both studies)

# One weights folder per run (classify.pretrained and staging.train.pretrained may both name it,
# spelled alike or not: folders are compared as resolved paths; the first spelling names the files).
_WEIGHT_FOLDERS = {}
for _f in (
    W.folder_of(config["classify"]["pretrained"]),
    W.folder_of(STG["train"]["pretrained"]) if on("staging") else None,
):
    if _f is not None:
        _WEIGHT_FOLDERS.setdefault(_f.resolve(), _f)
if len(_WEIGHT_FOLDERS) > 1:
    raise ValueError(
        f"classify.pretrained and staging.train.pretrained name different weights folders "
        f"{sorted(str(f) for f in _WEIGHT_FOLDERS)}; use one folder for both"
    )
# relative to the working directory: the weights rule's output pattern is printed in the report
WEIGHTS_DIR = os.path.relpath(next(iter(_WEIGHT_FOLDERS.values()), "resources/weights"))
WEIGHT_NETS = sorted(set(NETS) | set(STG_MODELS))


def weights_input(pretrained, net):
    """``{"weights": file}`` when ``pretrained`` names a folder (the one WEIGHTS_DIR names, however
    spelled): the job waits for rule weights."""
    if W.folder_of(pretrained) is None:
        return {}
    return {"weights": str(W.file_in_folder(WEIGHTS_DIR, net))}


def classify_weights(wildcards):
    return weights_input(config["classify"]["pretrained"], wildcards.net)


def staging_weights(wildcards):
    if wildcards.model not in STG_MODELS:  # the basic CNN trains from scratch
        return {}
    return weights_input(STG["train"]["pretrained"], wildcards.model)


def done_message(configfiles=()):
    """What a user reads when the run ends: where the main results are, and how to get the report
    (with this run's --configfile options, so the report describes this run)."""
    main = [
        "results/tables/primary.csv",
        "results/staging/tables/claims.csv",
        "results/tables/auc.csv",
        "results/tables/anova.csv",
        "results/tables/cam_scores.csv",
        "results/tables/cam_tests.csv",
        "results/tables/auc_groups.csv",
        "results/tables/auc_pairs.csv",
        "results/tables/mrmc.csv",
        "results/figures/aauc_bars.png",
        "results/tables/calibration.csv",
        "results/tables/auc_external.csv",
        "results/checklist.csv",
        "results/seg/selected.json",
        "results/staging/tables/table4_models.csv",
        "results/staging/tables/table5_comparison.csv",
        "results/staging/tables/patients.csv",
    ]
    present = [p for p in main if os.path.exists(p)]
    lines = ["", "anapart: done."]
    if present:
        lines.append("Main results:")
        lines += [f"  {p}" for p in present]
    extra = "".join(f" --configfile {c}" for c in configfiles)
    lines += [
        "Every table and figure with captions, as one HTML page (same snakemake as this run);",
        "its front page opens with both studies' primary endpoints:",
        f"  snakemake --report report.html{extra}",
        "",
    ]
    return "\n".join(lines)
