"""benchmarks/false_positives.py computes the FOMs and their patient jackknife in closed form; here
they are checked against the library's (anapart.metrics.mrmc.or_analysis with the within-fold and
pooled FOMs of anapart.metrics.mrmc_formats), so the benchmark measures what the workflow runs."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anapart.metrics.mrmc import jackknife_cov, or_analysis
from anapart.metrics.mrmc_formats import pooled_figures, within_fold_figures

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "false_positives.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("false_positives", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _long(bench, d):
    """The simulated data set as the workflow's long table: one row per (repeat, format, network, slice)."""
    rows = []
    reps, n_f, n_n, n_sl, n_cls = d["logits"].shape
    for r in range(reps):
        for j in range(n_f):
            for i in range(n_n):
                f = pd.DataFrame(d["logits"][r, j, i], columns=[f"p_{c}" for c in range(n_cls)])
                f["label"] = d["label"]
                f["case"] = d["pat_of"]
                f["fold"] = d["fold"][r][d["pat_of"]]
                rows.append(f.assign(repeat=r, seed=0, modality=bench.FORMATS[j], reader=bench.NETS[i]))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("within", [True, False])
def test_closed_form_foms_and_jackknife_are_the_library_ones(bench, within):
    params = {**bench.SIX, "counts": (4, 3, 3, 2, 2, 4), "folds": 2, "repeats": 2, "shift": (0.2, 0.2, 1.0)}
    d = bench.simulate(np.random.default_rng(3), **params)
    theta, jk = bench.foms(d, within=within)
    figs = (within_fold_figures if within else pooled_figures)(list(range(6)))
    fit = or_analysis(_long(bench, d), truth="label", score=None, fom=figs["aauc"], case_truth=False)
    order = [(m, r) for m in sorted(bench.FORMATS) for r in bench.NETS]  # or_analysis sorts modalities
    mine = {(bench.FORMATS[j], bench.NETS[i]): k for k, (j, i) in
            enumerate((j, i) for j in range(3) for i in range(4))}
    idx = [mine[c] for c in order]
    assert theta[idx] == pytest.approx(fit["fom"].loc[sorted(bench.FORMATS)].to_numpy().ravel(), abs=1e-12)
    assert jackknife_cov(jk[:, idx]) == pytest.approx(fit["cov"].to_numpy(), abs=1e-12)
