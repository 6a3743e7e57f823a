"""Grad-CAM maps and an objective version of the paper's 0/0.25/0.5/0.75/1 CAM score.

The paper's readers scored how much of a map's bright area lies on the lesion. Here the bright
area is the map at or above ``threshold`` (maps are scaled to [0, 1] per image by
pytorch-grad-cam); the continuous score is the share of that area inside the lesion, binned to
the nearest quarter for the paper's scale; the pointing value is the share of the map's energy
(sum) on the lesion. Maps of crops are placed back on the slice through the crop window, so
every format is scored against the same slice-level lesion mask.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

log = logging.getLogger("anapart.cam")

SCALE = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


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
    size = cam_crop.shape[0]
    out = np.zeros((field, field), dtype=np.float32)
    ys, ye = max(y0, 0), min(y0 + size, field)
    xs, xe = max(x0, 0), min(x0 + size, field)
    if ys < ye and xs < xe:
        out[ys:ye, xs:xe] = cam_crop[ys - y0:ye - y0, xs - x0:xe - x0]
    return out


def resolve_layer(model: torch.nn.Module, path: str) -> torch.nn.Module:
    """A submodule by dotted path (``features.denseblock3``, ``blocks.4``), with a clear error."""
    module = model
    for part in path.split("."):
        if not hasattr(module, part) and not (part.isdigit() and isinstance(module, torch.nn.Sequential)):
            raise KeyError(f"target layer '{path}' not found in {type(model).__name__} (stopped at '{part}')")
        module = module[int(part)] if part.isdigit() and isinstance(module, torch.nn.Sequential) else \
            getattr(module, part)
    return module


def gradcam(model: torch.nn.Module, layer: torch.nn.Module, inputs: torch.Tensor, targets: list[int],
            batch_size: int = 32) -> np.ndarray:
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
    if maps.shape[-1] == size:
        return maps
    t = torch.from_numpy(maps)[:, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()


def score_maps(slice_maps: np.ndarray, lesions: np.ndarray, threshold: float) -> pd.DataFrame:
    rows = []
    for cam_map, les in zip(slice_maps, lesions):
        s = bright_share(cam_map, les, threshold)
        rows.append((binned(s), s, pointing(cam_map, les)))
    return pd.DataFrame(rows, columns=["score_binned", "score_continuous", "pointing"])


def cam_scores(model_path, crops_dir, cohort_dir, predictions_csv, *, target_layer: str, threshold: float,
               batch_size: int = 32, max_slices: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Grad-CAM scores of every correctly classified test lesion slice of one model.

    Returns the score table and, for figures, the slice-level maps keyed by slice_id.
    """
    from pathlib import Path

    from . import training
    from .classify import CropData, model_from_meta
    from .cohort import LESION_BIT, load_store

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
    cols = ["slice_id", "label", "score_binned", "score_continuous", "pointing"]
    if chosen.empty:
        return pd.DataFrame(columns=cols), {}
    data = CropData(crops_dir, chosen[["slice_id", "label"]], classes, meta["input_size"], meta["normalize"])
    inputs = data.inputs(np.arange(len(data)))
    layer = resolve_layer(model, target_layer)
    maps = gradcam(model, layer, inputs, [classes.index(c) for c in chosen["label"]], batch_size)
    index = pd.read_csv(Path(crops_dir) / "index.csv").set_index("slice_id")
    field = int(images.shape[-1])
    slice_maps, lesions = [], []
    for sid, m in zip(chosen["slice_id"], maps):
        w = index.loc[sid]
        crop_map = resize_maps(m[None], int(w["size"]))[0]
        slice_maps.append(to_slice(crop_map, int(w["y0"]), int(w["x0"]), field))
        lesions.append((masks[row_of[sid]] & LESION_BIT) > 0)
    scores = score_maps(np.stack(slice_maps), np.stack(lesions), threshold)
    out = pd.concat([chosen[["slice_id", "label"]], scores], axis=1)[cols]
    return out, dict(zip(chosen["slice_id"], slice_maps))


def overlay_figure(cohort_dir, scores: pd.DataFrame, maps: dict, title: str, out_png) -> None:
    """One example per class (the best-scored slice): the slice with the lesion outline, and its CAM."""
    from .cohort import LESION_BIT, load_store
    from .files import pyplot, save_figure

    plt = pyplot()

    manifest, images, masks = load_store(cohort_dir)
    row_of = dict(zip(manifest["slice_id"], manifest.index))
    picks = (scores.sort_values("score_continuous", ascending=False).groupby("label", sort=True).head(1)
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
        axes[1, j].set_xlabel(f"score {row.score_continuous:.2f}", fontsize=8)
    if len(picks) == 0:
        axes[0, 0].text(0.5, 0.5, "no correctly classified lesion slice", ha="center", va="center", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, out_png, dpi=100)


def summarize(scores: dict[tuple[str, str, int], pd.DataFrame]) -> pd.DataFrame:
    """Mean ± SD of the CAM scores per model (net, fmt, frac)."""
    rows = []
    for (net, fmt, frac), s in scores.items():
        s = s.apply(pd.to_numeric, errors="coerce") if len(s) == 0 else s
        rows.append({"net": net, "fmt": fmt, "frac": int(frac), "n": int(s["score_continuous"].notna().sum()),
                     "score_mean": s["score_continuous"].mean(), "score_sd": s["score_continuous"].std(ddof=1),
                     "binned_mean": s["score_binned"].mean(), "binned_sd": s["score_binned"].std(ddof=1),
                     "pointing_mean": s["pointing"].mean()})
    return pd.DataFrame(rows).sort_values(["frac", "fmt", "net"], ascending=[False, True, True], ignore_index=True)


def format_ttests(scores: dict[tuple[str, str, int], pd.DataFrame], pairs=(("seg112", "seg224"),
                  ("seg112", "full"), ("seg224", "full")), column: str = "score_binned") -> pd.DataFrame:
    """Independent t-tests (pingouin) of per-slice CAM scores between formats, networks pooled."""
    import pingouin as pg

    rows = []
    fracs = sorted({k[2] for k in scores}, reverse=True)
    for frac in fracs:
        pooled = {}
        for (net, fmt, f), s in scores.items():
            if f == frac:
                pooled.setdefault(fmt, []).append(pd.to_numeric(s[column], errors="coerce").dropna())
        pooled = {k: pd.concat(v) for k, v in pooled.items()}
        for a, b in pairs:
            if a not in pooled or b not in pooled or len(pooled[a]) < 2 or len(pooled[b]) < 2:
                continue
            t = pg.ttest(pooled[a], pooled[b], paired=False).iloc[0]
            rows.append({"frac": frac, "a": a, "b": b, "score": column, "mean_a": pooled[a].mean(),
                         "mean_b": pooled[b].mean(), "n_a": len(pooled[a]), "n_b": len(pooled[b]), "T": t["T"],
                         "dof": t["dof"], "p": t["p_val"], "cohen_d": t["cohen_d"]})
    return pd.DataFrame(rows)


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


def read_scores(paths) -> dict[tuple[str, str, int], pd.DataFrame]:
    """``results/cam/{net}/{fmt}/f{frac}/scores.csv`` files keyed by (net, fmt, frac)."""
    from pathlib import Path

    out = {}
    for path in paths:
        p = Path(path)
        out[(p.parts[-4], p.parts[-3], int(p.parts[-2].removeprefix("f")))] = pd.read_csv(p)
    return out
