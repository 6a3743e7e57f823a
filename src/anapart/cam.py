"""Grad-CAM maps and an objective, chance-corrected version of the paper's 0/0.25/0.5/0.75/1 CAM score.

The paper's readers scored how much of a map's bright area lies on the lesion. Here the bright
area is the map at or above ``threshold`` (maps are scaled to [0, 1] per image by
pytorch-grad-cam); the continuous score is the share of that area inside the lesion, binned to
the nearest quarter for the paper's scale; the pointing value is the share of the map's energy
(sum) on the lesion. Maps of crops are placed back on the slice through the crop window, so
every format is scored against the same slice-level lesion mask.

That share has a chance level: a map that carries no information (uniform over its window)
scores exactly the lesion's share of the scored area, the crop window's part inside the slice.
A lesion fills far more of a 112-pixel window than of the full slice, so raw scores favour small
windows whatever the model learned. Every score therefore comes with its ``chance`` and the
chance-corrected ``corrected = (score - chance) / (1 - chance)`` (0: no better than an
uninformative map, 1: all bright area on the lesion; its floor, a map wholly off the lesion, is
-chance / (1 - chance)). Every format is also scored inside one common window (the smallest
format's window, seg112, placed on the slice) on the same pixel grid, where all formats share one
chance level (``common_*`` columns); there every map is rescaled to [0, 1] within the window before
thresholding, the same rule for every format (:func:`common_share`).

Tests between formats use the right unit (:func:`cam_tests`): paired t-tests of the per-model mean
scores (the network is the unit), a mixed model on per-(patient, model) means with random network,
network x format (trained model) and patient effects, and the paper's pooled independent t-test on
slices, kept and labelled ``paper``.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger("anapart.cam")

SCALE = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
SCORE_COLUMNS = ["score_binned", "score_continuous", "pointing", "chance", "corrected", "common_score",
                 "common_chance", "common_corrected"]
TESTED = ("score_binned", "score_continuous", "corrected", "common_corrected")  # what the network-unit and mixed tests compare


def bright_share(cam: np.ndarray, lesion: np.ndarray, threshold: float) -> float:
    """Share of the map's bright area (cam >= threshold) that lies on the lesion; NaN if nothing is bright."""
    bright = cam >= threshold
    n = bright.sum()
    if n == 0:
        return float("nan")
    return float(np.logical_and(bright, lesion).sum() / n)


def binned(score: float) -> float:
    """The paper's reader scale: the nearest of 0, 0.25, 0.5, 0.75, 1."""
    if np.isnan(score):
        return float("nan")
    return float(SCALE[np.argmin(np.abs(SCALE - score))])


def pointing(cam: np.ndarray, lesion: np.ndarray) -> float:
    """Energy-based pointing game: the share of the map's total mass that falls on the lesion."""
    total = float(cam.sum())
    return float(cam[lesion.astype(bool)].sum() / total) if total > 0 else float("nan")


def to_slice(cam_crop: np.ndarray, y0: int, x0: int, field: int) -> np.ndarray:
    """Place a crop-sized map on a ``field`` x ``field`` slice at window (y0, x0); zero elsewhere.

    The inverse of :func:`anapart.crop.extract`: parts of the window outside the slice (padding)
    are dropped.
    """
    out = np.zeros((field, field), dtype=np.float32)
    ys, xs = clip_window(y0, x0, cam_crop.shape[0], field)
    if ys.start < ys.stop and xs.start < xs.stop:
        out[ys, xs] = cam_crop[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    return out


def clip_window(y0: int, x0: int, size: int, field: int) -> tuple[slice, slice]:
    """The part of window (y0, x0, size) that lies inside a ``field`` x ``field`` slice."""
    return slice(max(y0, 0), min(y0 + size, field)), slice(max(x0, 0), min(x0 + size, field))


def chance_level(lesion: np.ndarray, y0: int, x0: int, size: int) -> float:
    """What a map without information scores in this window: the lesion's share of the window's
    part inside the slice (a uniform map's bright area is that whole part)."""
    ys, xs = clip_window(y0, x0, size, lesion.shape[0])
    area = lesion[ys, xs]
    return float(area.mean()) if area.size else float("nan")


def corrected(score: float, chance: float) -> float:
    """(score - chance) / (1 - chance): 0 for an uninformative map, 1 for all bright area on the lesion."""
    if np.isnan(score) or np.isnan(chance) or chance >= 1:
        return float("nan")
    return float((score - chance) / (1 - chance))


FLAT = 1e-6  # a map whose range inside the common window is at most this share of its maximum is flat there


def common_share(slice_map: np.ndarray, lesion: np.ndarray, common: tuple[int, int, int], threshold: float) -> float:
    """Bright share inside the common window, the map rescaled to [0, 1] within that window first.

    Every format's map gets the same rule (seg112's map already spans [0, 1] in its window, while a
    full or seg224 map thresholded against its whole-map maximum often has no bright pixel there).
    A map flat inside the window (range at most ``FLAT`` of its maximum, or zero) has no bright
    area to place: NaN.
    """
    ys, xs = clip_window(*common, lesion.shape[0])
    part = np.asarray(slice_map[ys, xs], np.float64)
    if not part.size:
        return float("nan")
    lo, span = part.min(), np.ptp(part)
    if span <= FLAT * max(float(np.abs(slice_map).max()), 0.0):
        return float("nan")
    return bright_share((part - lo) / span, lesion[ys, xs], threshold)


def window_scores(slice_map: np.ndarray, lesion: np.ndarray, own: tuple[int, int, int],
                  common: tuple[int, int, int], threshold: float) -> dict:
    """Every score of one slice-level map: in its own crop window and in the common window.

    ``own`` and ``common`` are windows (y0, x0, size) on the slice; the map is zero outside its own
    window, so its bright share over the slice is its bright share in that window. The common
    score is :func:`common_share` (the map rescaled within the common window).
    """
    s = bright_share(slice_map, lesion, threshold)
    ch = chance_level(lesion, *own)
    cs = common_share(slice_map, lesion, common, threshold)
    cch = chance_level(lesion, *common)
    return {"score_binned": binned(s), "score_continuous": s, "pointing": pointing(slice_map, lesion), "chance": ch,
            "corrected": corrected(s, ch), "common_score": cs, "common_chance": cch, "common_corrected": corrected(cs, cch)}


def resolve_layer(model, path: str):
    """A submodule by dotted path (``features.denseblock3``, ``blocks.4``), with a clear error."""
    import torch

    module = model
    for part in path.split("."):
        if not hasattr(module, part) and not (part.isdigit() and isinstance(module, torch.nn.Sequential)):
            raise KeyError(f"target layer '{path}' not found in {type(model).__name__} (stopped at '{part}')")
        module = module[int(part)] if part.isdigit() and isinstance(module, torch.nn.Sequential) else \
            getattr(module, part)
    return module


def gradcam(model, layer, inputs, targets: list[int], batch_size: int = 32) -> np.ndarray:
    """Grad-CAM (pytorch-grad-cam) for each input and its target class: (n, H, W) in [0, 1]."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model.eval()
    maps = []
    with GradCAM(model=model, target_layers=[layer]) as cam:
        for b in range(0, len(inputs), batch_size):
            x = inputs[b:b + batch_size]
            t = [ClassifierOutputTarget(int(c)) for c in targets[b:b + batch_size]]
            maps.append(cam(input_tensor=x, targets=t))
    return np.concatenate(maps) if maps else np.zeros((0,) + tuple(inputs.shape[-2:]), np.float32)


def resize_maps(maps: np.ndarray, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    if maps.shape[-1] == size:
        return maps
    t = torch.from_numpy(maps)[:, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()


def score_maps(slice_maps: np.ndarray, lesions: np.ndarray, threshold: float, windows=None,
               common_windows=None) -> pd.DataFrame:
    """Scores of slice-level maps (:func:`window_scores`); windows default to the whole slice."""
    field = lesions.shape[-1]
    whole = (0, 0, field)
    windows = windows if windows is not None else [whole] * len(slice_maps)
    common_windows = common_windows if common_windows is not None else [whole] * len(slice_maps)
    rows = [window_scores(m, les, own, com, threshold)
            for m, les, own, com in zip(slice_maps, lesions, windows, common_windows)]
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def cam_scores(model_path, crops_dir, cohort_dir, predictions_csv, *, target_layer: str, threshold: float,
               common_index=None, batch_size: int = 32, max_slices: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Grad-CAM scores of every correctly classified test lesion slice of one model.

    ``common_index`` is the ``index.csv`` of the format whose window every format is also scored
    in (seg112); None scores the common window as the whole slice. Returns the score table and,
    for figures, the slice-level maps keyed by slice_id.
    """
    from pathlib import Path

    from . import training
    from .classify import CropData, model_from_meta
    from .store import LESION_BIT, load_store

    manifest, images, masks = load_store(cohort_dir)
    pred = pd.read_csv(predictions_csv)
    model, meta = training.load_model(model_path, model_from_meta)
    classes = meta["classes"]
    probs = pred[[f"p_{c}" for c in classes]].to_numpy()
    pred["predicted"] = np.array(classes)[probs.argmax(1)]
    row_of = dict(zip(manifest["slice_id"], manifest.index))
    has_lesion = manifest.set_index("slice_id")["has_lesion_mask"].astype(bool)
    chosen = pred[(pred["predicted"] == pred["label"]) & pred["slice_id"].map(has_lesion)].reset_index(drop=True)
    if max_slices is not None:
        chosen = chosen.iloc[:max_slices]
    cols = ["slice_id", "label", *SCORE_COLUMNS]
    if chosen.empty:
        return pd.DataFrame(columns=cols), {}
    data = CropData(crops_dir, chosen[["slice_id", "label"]], classes, meta["input_size"], meta["normalize"])
    inputs = data.inputs(np.arange(len(data)))
    layer = resolve_layer(model, target_layer)
    maps = gradcam(model, layer, inputs, [classes.index(c) for c in chosen["label"]], batch_size)
    index = pd.read_csv(Path(crops_dir) / "index.csv").set_index("slice_id")
    common = pd.read_csv(common_index).set_index("slice_id") if common_index is not None else None
    field = int(images.shape[-1])
    slice_maps, lesions, windows, common_windows = [], [], [], []
    for sid, m in zip(chosen["slice_id"], maps):
        w = index.loc[sid]
        own = (int(w["y0"]), int(w["x0"]), int(w["size"]))
        crop_map = resize_maps(m[None], own[2])[0]
        slice_maps.append(to_slice(crop_map, own[0], own[1], field))
        lesions.append((masks[row_of[sid]] & LESION_BIT) > 0)
        windows.append(own)
        c = common.loc[sid] if common is not None else None
        common_windows.append((int(c["y0"]), int(c["x0"]), int(c["size"])) if c is not None else (0, 0, field))
    scores = score_maps(np.stack(slice_maps), np.stack(lesions), threshold, windows, common_windows)
    out = pd.concat([chosen[["slice_id", "label"]], scores], axis=1)[cols]
    return out, dict(zip(chosen["slice_id"], slice_maps))


def overlay_figure(cohort_dir, scores: pd.DataFrame, maps: dict, title: str, out_png) -> None:
    """One example per class (the best-scored slice): the slice with the lesion outline, and its CAM."""
    from .store import LESION_BIT, load_store
    from .files import pyplot, save_figure

    plt = pyplot()

    manifest, images, masks = load_store(cohort_dir)
    row_of = dict(zip(manifest["slice_id"], manifest.index))
    picks = (scores.sort_values("corrected", ascending=False).groupby("label", sort=True).head(1)
             if len(scores) else scores)
    n = max(len(picks), 1)
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
    for j, row in enumerate(picks.itertuples()):
        r = row_of[row.slice_id]
        img = np.asarray(images[r], np.float32)
        les = (masks[r] & LESION_BIT) > 0
        for ax in axes[:, j]:
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.contour(les, levels=[0.5], colors=["red"], linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[1, j].imshow(maps[row.slice_id], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        axes[0, j].set_title(row.label, fontsize=9)
        axes[1, j].set_xlabel(f"score {row.score_continuous:.2f} (chance {row.chance:.2f})", fontsize=8)
    if len(picks) == 0:
        axes[0, 0].text(0.5, 0.5, "no correctly classified lesion slice", ha="center", va="center", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, out_png, dpi=100)


def summarize(scores: dict[tuple[str, str, int], pd.DataFrame]) -> pd.DataFrame:
    """Mean ± SD per model (net, fmt, frac) of the raw, chance and chance-corrected CAM scores, in
    each format's own window and in the common window (maps without a bright pixel are left out;
    ``n_common_flat`` counts the maps flat inside the common window, NaN there)."""
    rows = []
    for (net, fmt, frac), s in scores.items():
        s = s.reindex(columns=SCORE_COLUMNS).apply(pd.to_numeric, errors="coerce")
        ok = s["score_continuous"].notna()
        rows.append({"net": net, "fmt": fmt, "frac": int(frac), "n": int(ok.sum()),
                     "score_mean": s["score_continuous"].mean(), "score_sd": s["score_continuous"].std(ddof=1),
                     "binned_mean": s["score_binned"].mean(), "binned_sd": s["score_binned"].std(ddof=1),
                     "pointing_mean": s["pointing"].mean(),
                     "chance_mean": s.loc[ok, "chance"].mean(),
                     "corrected_mean": s["corrected"].mean(), "corrected_sd": s["corrected"].std(ddof=1),
                     "n_common": int(s["common_score"].notna().sum()),
                     "n_common_flat": int(s["common_score"].isna().sum()),
                     "common_score_mean": s["common_score"].mean(),
                     "common_chance_mean": s.loc[s["common_score"].notna(), "common_chance"].mean(),
                     "common_corrected_mean": s["common_corrected"].mean(),
                     "common_corrected_sd": s["common_corrected"].std(ddof=1)})
    return pd.DataFrame(rows).sort_values(["frac", "fmt", "net"], ascending=[False, True, True], ignore_index=True)


TEST_COLUMNS = ["unit", "frac", "score", "contrast", "fmt_a", "fmt_b", "estimate", "statistic", "statistic_kind",
                "df", "p", "p_holm", "n", "note"]


def _row(unit, frac, score, a, b, **kw) -> dict:
    return {"unit": unit, "frac": frac, "score": score, "contrast": f"{a} - {b}", "fmt_a": a, "fmt_b": b, **kw}


def _fracs(frame: pd.DataFrame) -> str:
    return "+".join(str(f) for f in sorted(frame["frac"].unique(), reverse=True))


def format_ttests(scores: dict[tuple[str, str, int], pd.DataFrame], pairs, column: str = "score_binned") -> pd.DataFrame:
    """The paper's test: independent t-tests (pingouin) of per-slice scores between formats,
    networks pooled, per fraction. Slices are not independent (the same slices in every format,
    several slices per patient, four networks), so these p-values are too small; kept as
    ``unit = paper`` to reproduce the paper, not to conclude from."""
    import pingouin as pg

    rows = []
    for frac in sorted({k[2] for k in scores}, reverse=True):
        pooled: dict[str, list] = {}
        for (net, fmt, f), s in scores.items():
            if f == frac:
                pooled.setdefault(fmt, []).append(pd.to_numeric(s[column], errors="coerce").dropna())
        pooled = {k: pd.concat(v) for k, v in pooled.items()}
        for a, b in pairs:
            xa, xb = pooled.get(a, pd.Series(dtype=float)), pooled.get(b, pd.Series(dtype=float))
            base = dict(estimate=xa.mean() - xb.mean(), statistic_kind="T", n=len(xa) + len(xb), p_holm=np.nan)
            if len(xa) < 2 or len(xb) < 2:
                rows.append(_row("paper", str(frac), column, a, b, statistic=np.nan, df=np.nan, p=np.nan,
                                 note="fewer than 2 scored slices in a format", **base))
                continue
            t = pg.ttest(xa, xb, paired=False).iloc[0]
            rows.append(_row("paper", str(frac), column, a, b, statistic=t["T"], df=t["dof"], p=t["p_val"],
                             note=f"independent t-test on slices, networks pooled (n {len(xa)} vs {len(xb)}); "
                                  "pseudo-replicated", **base))
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


def network_ttests(summary: pd.DataFrame, pairs, scores=TESTED) -> pd.DataFrame:
    """Paired t-tests (pingouin) between formats with the model as the unit: each model's mean
    score, paired by (network, fraction); Holm-corrected over the format pairs of each score."""
    import pingouin as pg

    rows = []
    for score in scores:
        col = "binned_mean" if score == "score_binned" else {"score_continuous": "score_mean"}.get(score, f"{score}_mean")
        wide = summary.pivot_table(index=["net", "frac"], columns="fmt", values=col)
        for a, b in pairs:
            pair = wide[[a, b]].dropna() if {a, b} <= set(wide.columns) else pd.DataFrame(columns=[a, b])
            base = dict(statistic_kind="T", n=len(pair), estimate=float((pair[a] - pair[b]).mean()) if len(pair) else np.nan)
            if len(pair) < 2:
                rows.append(_row("network", _fracs(summary), score, a, b, statistic=np.nan, df=np.nan, p=np.nan,
                                 note="fewer than 2 (network, fraction) pairs with scores in both formats", **base))
                continue
            t = pg.ttest(pair[a].to_numpy(), pair[b].to_numpy(), paired=True).iloc[0]
            rows.append(_row("network", _fracs(summary), score, a, b, statistic=t["T"], df=t["dof"], p=t["p_val"],
                             note=f"paired by (network, fraction): {len(pair)} pairs of model means", **base))
    return holm(pd.DataFrame(rows, columns=TEST_COLUMNS))


SPARSE_FROM = 200  # random-effect levels above which MixedLM's sparse solver is faster (same fit; 5x at 616 levels)


def patient_means(long: pd.DataFrame, value: str) -> pd.DataFrame:
    """Mean ``value`` per (patient, network, format, fraction), with its slice count ``n_slices``.

    The unit of :func:`mixed_model`: each model scores the test slices of every patient, so many
    slices of one patient under one model add no information about the model, only
    pseudo-replication (thousands of slice residuals would stand in for the few trained models).
    """
    d = long.dropna(subset=[value])
    g = d.groupby(["patient", "net", "fmt", "frac"], as_index=False, sort=True)
    return g[value].mean().merge(g.size().rename(columns={"size": "n_slices"}), on=["patient", "net", "fmt", "frac"])


def containment_df(data: pd.DataFrame) -> int:
    """Denominator df of a format contrast: (networks - 1) x (formats - 1), the df of the
    network x format stratum the contrast is judged against (SAS's containment method; exact for
    a balanced design, where the REML contrast is the repeated-measures one)."""
    return int((data["net"].nunique() - 1) * (data["fmt"].nunique() - 1))


def mixed_model(data: pd.DataFrame, value: str, pairs, reference: str):
    """``value ~ C(fmt) [+ C(frac)]`` with crossed random intercepts for network, trained model
    (network x format; and network x format x fraction when there are several fractions) and
    patient (statsmodels MixedLM, REML, lbfgs). Fit it on :func:`patient_means`.

    Each format is trained once per network, so a format contrast must be judged against how much
    trained models vary (the network x format component), not against slice or patient residuals:
    without that component a network x format deviation of SD 0.05 and no format effect at all
    gave z = -13.9 (p = 1e-43). statsmodels groups are independent blocks, so crossed effects are
    variance components inside one group that holds every row, the documented statsmodels idiom.

    Returns the fit, per format pair (estimate, t, p) of the fixed-effect contrast a - b (the
    fixed effects' covariance; p from t with :func:`containment_df` df, as the variance of the
    few models is estimated, not known), and the fit's warnings in words. statsmodels warns
    "MLE may be on the boundary" whenever a variance component is below 0.01 in absolute terms,
    i.e. any SD under 0.1 on these 0-1 scores, and when a component is really ~0 (likely with four
    networks): it is noted once, not treated as a failure (the components are in the note).
    """
    import warnings

    import statsmodels.formula.api as smf
    from scipy.stats import t as t_dist

    d = data.dropna(subset=[value]).assign(one=1, fmt=lambda x: x["fmt"].astype(str),
                                           frac=lambda x: x["frac"].astype(str), net=lambda x: x["net"].astype(str))
    several = d["frac"].nunique() > 1
    d["net_fmt"] = d["net"] + ":" + d["fmt"]
    formula = f"{value} ~ C(fmt, Treatment(reference='{reference}'))" + (" + C(frac)" if several else "")
    vc = {"network": "0 + C(net)", "network:format": "0 + C(net_fmt)", "patient": "0 + C(patient)"}
    if several:
        d["model"] = d["net_fmt"] + ":" + d["frac"]
        vc["model"] = "0 + C(model)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        levels = sum(d[c].nunique() for c in ("net", "net_fmt", "patient", *(("model",) if several else ())))
        fit = smf.mixedlm(formula, d, groups="one", re_formula="0", vc_formula=vc,
                          use_sparse=levels > SPARSE_FROM).fit(reml=True, method=["lbfgs"])
    fe = fit.fe_params
    cov = fit.cov_params().loc[fe.index, fe.index].to_numpy()
    df = containment_df(d)

    def coef(fmt: str) -> np.ndarray:
        v = np.zeros(len(fe))
        name = f"C(fmt, Treatment(reference='{reference}'))[T.{fmt}]"
        if fmt != reference:
            v[list(fe.index).index(name)] = 1.0
        return v

    out = {}
    for a, b in pairs:
        L = coef(a) - coef(b)
        est, se = float(L @ fe.to_numpy()), float(np.sqrt(L @ cov @ L))
        t = est / se if se > 0 else np.nan
        out[(a, b)] = (est, t, float(2 * t_dist.sf(abs(t), df)) if np.isfinite(t) and df > 0 else np.nan)
    warned = []
    for w in caught:
        text = ("statsmodels' 'MLE may be on the boundary' (some variance component < 0.01)"
                if "boundary" in str(w.message) else f"{type(w.message).__name__}: {str(w.message).splitlines()[0]}")
        if text not in warned:
            warned.append(text)
    return fit, out, warned


def mixed_tests(long: pd.DataFrame, pairs, scores=TESTED) -> pd.DataFrame:
    """Format contrasts from :func:`mixed_model`, fitted on the per-(patient, model) means of the
    per-slice scores (``long`` has net, fmt, frac, patient and the score columns);
    Holm-corrected over the format pairs of each score."""
    rows = []
    order = [f for p in pairs for f in p]
    for score in scores:
        d = patient_means(long, score) if len(long) else pd.DataFrame(columns=["patient", "net", "fmt", "frac", score])
        enough = d["fmt"].nunique() >= 2 and d["net"].nunique() >= 2 and d["patient"].nunique() >= 2
        note, results = "", {}
        if enough:
            present = sorted(set(d["fmt"]), key=order.index)
            try:
                fit, results, warned = mixed_model(d, score, [p for p in pairs if {*p} <= set(present)], present[-1])
                vcs = dict(zip(fit.model.exog_vc.names, np.asarray(fit.vcomp)))
                several = d["frac"].nunique() > 1
                note = (f"per-(patient, model) means of {int(d['n_slices'].sum())} slices; score ~ format"
                        f"{' + fraction' if several else ''} + (1|network) + (1|network:format)"
                        f"{' + (1|network:format:fraction)' if several else ''} + (1|patient), REML; t with "
                        f"{containment_df(d)} df (containment); var "
                        + ", ".join(f"{k} {v:.3g}" for k, v in vcs.items())
                        + f", residual {fit.scale:.3g}; converged {fit.converged}"
                        + (f"; {'; '.join(warned)}" if warned else ""))
            except (np.linalg.LinAlgError, ValueError) as e:
                note = f"mixed model failed: {e}"
        else:
            note = "needs scores of at least 2 formats, 2 networks and 2 patients"
        for a, b in pairs:
            est, t, p = results.get((a, b), (np.nan, np.nan, np.nan))
            n = int(d["fmt"].isin([a, b]).sum())
            rows.append(_row("mixed", _fracs(long) if len(long) else "", score, a, b, estimate=est, statistic=t,
                             statistic_kind="t", df=containment_df(d) if results else np.nan, p=p, n=n, note=note))
    return holm(pd.DataFrame(rows, columns=TEST_COLUMNS))


def holm(table: pd.DataFrame) -> pd.DataFrame:
    """Holm-adjusted p (statsmodels) within each (unit, frac, score) family of format pairs."""
    from .stats import holm_by

    return holm_by(table, ["unit", "frac", "score"])


def cam_tests(scores: dict[tuple[str, str, int], pd.DataFrame], patient_of: pd.Series, formats) -> pd.DataFrame:
    """All format comparisons of the CAM scores, each row labelled with its unit: ``network``
    (paired, model means), ``mixed`` (per-(patient, model) means, random network, network x format
    and patient effects), ``paper`` (the paper's pooled independent t-test on binned slice scores)."""
    from .stats import format_pairs

    pairs = format_pairs(formats)
    frames = [s.assign(net=net, fmt=fmt, frac=int(frac)) for (net, fmt, frac), s in scores.items() if len(s)]
    cols = ["net", "fmt", "frac", "slice_id", *SCORE_COLUMNS]
    long = pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
    long[SCORE_COLUMNS] = long[SCORE_COLUMNS].apply(pd.to_numeric, errors="coerce")
    long["patient"] = long["slice_id"].map(patient_of)
    if long["patient"].isna().any():
        raise KeyError(f"CAM scores of slice {long.loc[long['patient'].isna(), 'slice_id'].iloc[0]} are not in the manifest")
    out = pd.concat([network_ttests(summarize(scores), pairs), mixed_tests(long, pairs),
                     format_ttests(scores, pairs)], ignore_index=True)
    return out[TEST_COLUMNS]


def read_reviewer_scores(folder) -> pd.DataFrame:
    """Human scores: one CSV per reviewer (file stem = reviewer) with net, fmt, frac, slice_id, score (0-1)."""
    from pathlib import Path

    frames = []
    for path in sorted(Path(folder).glob("*.csv")):
        df = pd.read_csv(path)
        missing = {"net", "fmt", "frac", "slice_id", "score"} - set(df.columns)
        if missing:
            raise ValueError(f"{path}: reviewer table lacks column(s) {sorted(missing)}")
        bad = df[~df["score"].between(0, 1)]
        if len(bad):
            raise ValueError(f"{path} line {bad.index[0] + 2}: score {bad['score'].iloc[0]} is outside 0-1")
        frames.append(df.assign(reviewer=path.stem, frac=df["frac"].astype(int)))
    if not frames:
        raise ValueError(f"{folder}: no reviewer CSV files")
    return pd.concat(frames, ignore_index=True)


def agreement(reviews: pd.DataFrame, auto: pd.DataFrame) -> pd.DataFrame:
    """Inter-rater agreement: ICC(2,1) (pingouin's ICC(A,1)) among reviewers, and each reviewer vs the automatic binned score
    (ICC(2,1) and quadratic-weighted kappa on the 0/0.25/…/1 scale), over the maps both scored."""
    import pingouin as pg
    from sklearn.metrics import cohen_kappa_score

    key = ["net", "fmt", "frac", "slice_id"]
    auto = auto.assign(reviewer="automatic", score=auto["score_binned"])[key + ["reviewer", "score"]].dropna()
    rows = []

    def icc(data: pd.DataFrame) -> float:
        data = data.assign(item=data[key].astype(str).agg("|".join, axis=1))
        full = data.groupby("item").filter(lambda g: g["reviewer"].nunique() == data["reviewer"].nunique())
        if full["item"].nunique() < 3:
            return float("nan")
        t = pg.intraclass_corr(data=full, targets="item", raters="reviewer", ratings="score")
        types = t.set_index("Type")["ICC"]
        return float(types.get("ICC(A,1)", types.get("ICC2", float("nan"))))  # two-way random, absolute, single

    reviewers = sorted(reviews["reviewer"].unique())
    if len(reviewers) > 1:
        rows.append({"comparison": "reviewers", "raters": ", ".join(reviewers), "icc2": icc(reviews),
                     "kappa_quadratic": float("nan"), "n_items": int(reviews.groupby(key).ngroups)})
    for r in reviewers:
        pair = pd.concat([reviews[reviews["reviewer"] == r][key + ["reviewer", "score"]], auto])
        both = pair.groupby(key).filter(lambda g: len(g) == 2)
        wide = both.pivot_table(index=key, columns="reviewer", values="score")
        kappa = float("nan")
        if len(wide) >= 2:
            kappa = float(cohen_kappa_score((wide[r].map(binned) * 4).round().astype(int),
                                            (wide["automatic"] * 4).round().astype(int),
                                            labels=[0, 1, 2, 3, 4], weights="quadratic"))
        rows.append({"comparison": f"{r} vs automatic", "raters": f"{r}, automatic", "icc2": icc(both),
                     "kappa_quadratic": kappa, "n_items": len(wide)})
    return pd.DataFrame(rows)
