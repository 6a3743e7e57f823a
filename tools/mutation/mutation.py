"""Mutation score of the modules whose numbers users publish (mutmut 3); on demand, never in pytest or CI.

    nice -n 10 .venv/bin/python tools/mutation/mutation.py [--children 2] [--survivors] [--sample N] [--remap]
        [stats evaluate ensemble cam cam_stats training split]

For each module (default: all of them, one after the other) ``mutmut run`` mutates the functions listed in
:data:`MODULES` and runs, for each mutant, the fast unit tests that call the mutated function (settings:
``[tool.mutmut]`` in pyproject.toml; mutmut works in ``mutants/``, git-ignored). Then it prints a table
row per module (mutants, not run, killed, survived, judged equivalent, score over the non-equivalent ones
with its 95% interval) and
the surviving mutants that are not listed as equivalent in ``tools/mutation/equivalent.txt`` (inspect
one with ``mutmut show NAME``). tools/mutation/MUTATION.md records the last run.

Where a full run does not fit the time at hand (each mutant costs a fresh pytest process: about 1-2 s on
an idle core, far more on a shared one), ``--sample N`` runs and scores a seeded random sample of N
mutants per module; the interval then says how far the module's score can be from the sample's.

Mutant numbers follow the source: after a change to a function, its mutants are renumbered, so the
equivalents list must be checked again (``mutmut show`` each listed name).
"""

from __future__ import annotations

import argparse
import fnmatch
import random
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Functions whose mutants count, per module. Left out: figures (roc_figure, bar_chart, confusion_*,
# overlay_figure), Grad-CAM itself and its model/store glue (gradcam, resolve_layer, cam_scores: checked
# by the workflow test on real artifacts), and the DICOM modules (cohort, preflight, store: ingest, not the split).
MODULES = {
    "stats": ("anapart.metrics.stats", ["format_pairs", "holm_by", "auc_long", "_pcol", "oneway", "subject_means",
                                "complete_subjects", "repeated", "_anova_rm_without_sphericity", "_pairwise",
                                "anova_tables", "read_model_tables", "per_model_table", "model_table", "auc_groups",
                                "auc_pairs"]),
    "evaluate": ("anapart.metrics.evaluate", ["auc_per_class", "aauc", "auc_weighted", "aauc_weighted", "patient_weights",
                                      "percentile_ci", "bootstrap_aauc_ci", "paired_delta_aauc",
                                      "evaluate_predictions", "probabilities", "argmax_class", "predicted"]),
    "ensemble": ("anapart.staging.ensemble", ["soft_vote", "stage_metrics", "evaluate_stages", "_row", "table_preprocessing",
                                      "table_by_stage", "tnm_metrics", "patient_predictions", "accuracy_ci",
                                      "mcnemar_p", "patient_table"]),
    "cam_scores": ("anapart.metrics.cam_scores", ["bright_share", "binned", "pointing", "to_slice", "clip_window",
                                                  "chance_level", "corrected", "common_share", "window_scores",
                                                  "score_maps"]),
    "gradcam": ("anapart.learn.gradcam", ["resize_maps"]),
    "cam_stats": ("anapart.metrics.cam_stats", ["summarize", "_row", "_fracs", "format_ttests", "network_ttests",
                                        "patient_means", "containment_df", "mixed_model", "mixed_tests", "holm",
                                        "cam_tests", "read_reviewer_scores", "agreement"]),
    "training": ("anapart.learn.training", ["resolve_device", "seed_everything", "set_threads", "build_optimizer",
                                      "build_scheduler", "_save_checkpoint", "fit", "predict", "save_model",
                                      "load_model", "ǁFitConfigǁfrom_config", "ǁFitConfigǁsignature"]),
    "split": ("anapart.cohort.split", ["patient_groups", "share_count", "_stratified_pick", "split_patients",
                                 "mark_validation", "training_subsets", "assert_no_leakage", "make_split", "split_staging", "assert_staging_disjoint"]),
}
DETECTED = {"killed", "timeout", "segfault"}  # a test failed, hung or crashed: the mutant was caught


def patterns(module: str, functions: list[str]) -> list[str]:
    return [f"{module}.x{f if f.startswith('ǁ') else '_' + f}__mutmut_*" for f in functions]


def equivalents() -> dict[str, str]:
    """``tools/mutation/equivalent.txt``: one ``mutant-name  reason`` per line (# comments)."""
    out = {}
    path = REPO / "tools" / "mutation" / "equivalent.txt"
    for line in path.read_text().splitlines() if path.exists() else []:
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, reason = line.partition(" ")
            out[name] = reason.strip()
    return out


def results() -> dict[str, str]:
    text = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout
    return dict(m.groups() for m in re.finditer(r"^\s+(\S+__mutmut_\d+): (.+)$", text, flags=re.M))


def sample_of(name: str, pats: list[str], status: dict[str, str], size: int | None, seed: int) -> list[str]:
    """The module's mutants, or a seeded random sample of ``size`` of them (the same names for the same
    source, size and seed, so a rerun after adding tests scores the same sample)."""
    mine = sorted(k for k in status if any(fnmatch.fnmatchcase(k, p) for p in pats))
    if size is None or size >= len(mine):
        return mine
    return sorted(random.Random(f"{seed}:{name}").sample(mine, size))


def summary(name: str, names: list[str], total: int, status: dict[str, str],
            equiv: dict[str, str]) -> tuple[str, list[str]]:
    """One table row; the score counts the mutants that were run, less the equivalent survivors, with a
    95% Wilson interval (the sampling error when ``names`` is a sample of the module's mutants)."""
    from statsmodels.stats.proportion import proportion_confint

    mine = {k: status[k] for k in names}
    not_run = sum(v == "not checked" for v in mine.values())
    killed = sum(v in DETECTED for v in mine.values())
    missed = sorted(k for k, v in mine.items() if v not in DETECTED and v != "not checked")
    eq = [k for k in missed if k in equiv]
    counted = killed + len(missed) - len(eq)
    score = 100.0 * killed / counted if counted else float("nan")
    low, high = (100.0 * b for b in proportion_confint(killed, counted, alpha=0.05, method="wilson")) \
        if counted else (float("nan"), float("nan"))
    size = f"{len(mine)}" if len(mine) == total else f"{len(mine)} of {total}"
    row = (f"| {name} | {size} | {not_run} | {killed} | {len(missed)} | {len(eq)} | {score:.1f}% "
           f"({low:.0f}-{high:.0f}%) |")
    return row, [f"{k}: {mine[k]}" for k in missed if k not in equiv]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", metavar="MODULE", help=f"any of {', '.join(MODULES)} (default: all)")
    ap.add_argument("--children", type=int, default=2, help="mutants tested side by side (default 2)")
    ap.add_argument("--report-only", action="store_true", help="summarise the last run, run nothing")
    ap.add_argument("--survivors", action="store_true",
                    help="rerun only the mutants the last run did not catch (after adding tests)")
    ap.add_argument("--sample", type=int, metavar="N",
                    help="run and score a seeded random sample of N mutants per module (for slow machines)")
    ap.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    ap.add_argument("--remap", action="store_true",
                    help="trace again which tests call each function (after large changes; verdicts are kept)")
    args = ap.parse_args()
    if args.remap:  # mutmut 3 traces only new tests otherwise, so a function's test list goes stale
        (REPO / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:  # checked here: argparse rejects an empty nargs="*" list against choices
        ap.error(f"unknown module(s) {unknown}; choose from {list(MODULES)}")
    rows, open_survivors = [], []
    for name in args.modules or list(MODULES):
        module, functions = MODULES[name]
        pats = patterns(module, functions)
        status = results()
        names = sample_of(name, pats, status, args.sample, args.seed)
        if not args.report_only:
            # a sample runs only what no earlier run caught (a killed mutant stays killed: tests only grow)
            targets = [k for k in names if status[k] not in DETECTED] if args.survivors or args.sample else pats
            print(f"== mutmut run: {name} ({module}, {len(functions)} functions, {len(targets)} names)", flush=True)
            if targets:
                subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.children),
                                *targets], cwd=REPO, check=True)
            status = results()
        total = len(sample_of(name, pats, status, None, args.seed))
        row, left = summary(name, names, total, status, equivalents())
        rows.append(row)
        open_survivors += left
    print("\n| module | mutants | not run | killed | survived | equivalent (of survived) "
          "| score of the non-equivalent (95% CI) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    if open_survivors:
        print("\nSurvivors not judged equivalent (mutmut show NAME):")
        print("\n".join(f"  {s}" for s in open_survivors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
