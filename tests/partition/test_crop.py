import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from anapart import CLASSES
from anapart.cohort.split import split_patients
from anapart.io.store import LESION_BIT, REGION_BIT, load_store
from anapart.io.windows import extract
from anapart.partition.crop import centroid, crop_size, make_crops, prior_center, to_slice_coords, window

SIZES = {"seg112": 112, "seg224": 224}


def test_crop_sizes_scale_with_field():
    assert crop_size("seg112", 512, SIZES) == 112
    assert crop_size("seg224", 512, SIZES) == 224
    assert crop_size("seg112", 128, SIZES) == 28
    assert crop_size("seg224", 128, SIZES) == 56
    assert crop_size("full", 128, SIZES) == 128
    with pytest.raises(ValueError, match=r"unknown image format 'seg999' \(known: full, seg112, seg224\)"):
        crop_size("seg999", 128, SIZES)


def test_the_format_registry_follows_crop_sizes():
    """A format added to crop.sizes is a partition format of its own (no code names it); 'full' cuts nothing."""
    from anapart.partition.crop import format_registry

    reg = format_registry({**SIZES, "seg160": 160})
    assert list(reg) == ["full", "seg112", "seg224", "seg160"]
    assert [reg[f].side(256) for f in reg] == [256, 56, 112, 80]  # N/512 of the field
    assert reg["seg160"].side(32) == 10 and reg["seg112"].side(32) == 8  # at least 8 pixels
    assert not reg["full"].crops and all(reg[f].crops for f in ("seg112", "seg224", "seg160"))


def test_known_centroid_gives_exact_window():
    mask = np.zeros((64, 64), bool)
    mask[10:20, 30:40] = True  # centre (14.5, 34.5)
    assert centroid(mask) == (14.5, 34.5)
    y0, x0 = window(centroid(mask), 8)
    assert (y0, x0) == (15 - 4, 35 - 4)  # half-pixel centres round up
    image = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    crop, padded = extract(image, y0, x0, 8)
    np.testing.assert_array_equal(crop, image[11:19, 31:39])
    assert padded == 0
    # the paper's seg112 on a 512 slice: 56 pixels each way from the centre
    big = np.zeros((512, 512), bool)
    big[200:301, 150:251] = True  # centre (250, 200)
    assert window(centroid(big), 112) == (250 - 56, 200 - 56)


def test_border_is_padded_not_shifted():
    image = np.arange(1, 17 * 17 + 1, dtype=np.float32).reshape(17, 17)
    y0, x0 = window((2.0, 3.0), 8)
    assert (y0, x0) == (-2, -1)
    crop, padded = extract(image, y0, x0, 8, pad_value=0.0)
    assert crop[4, 4] == image[2, 3]  # the centre stays the centre
    np.testing.assert_array_equal(crop[:2], 0)
    np.testing.assert_array_equal(crop[:, :1], 0)
    np.testing.assert_array_equal(crop[2:, 1:], image[0:6, 0:7])
    assert padded == 64 - 6 * 7
    # a window entirely outside is all padding
    out, padded = extract(image, 40, 40, 8)
    assert padded == 64 and not out.any()


def test_crop_to_slice_mapping_round_trips():
    rng = np.random.default_rng(0)
    mask = rng.random((40, 40)) < 0.1
    y0, x0 = 5, -3
    crop, _ = extract(mask.astype(np.uint8), y0, x0, 16)
    back = to_slice_coords(np.argwhere(crop), y0, x0)
    expected = {(y, x) for y, x in np.argwhere(mask) if y0 <= y < y0 + 16 and x0 <= x < x0 + 16}
    assert {tuple(p) for p in back} == expected


@pytest.fixture
def store(cohort, run_ingest, tmp_path):
    _, out = run_ingest(cohort, field=32)
    manifest, _, _ = load_store(out)
    patients = split_patients(manifest, 0.25, seed=0, classes=CLASSES)
    patients.to_csv(tmp_path / "patients.csv", index=False)
    return out, tmp_path / "patients.csv"


def _outs(tmp_path, formats):
    return {f: {k: tmp_path / "crops" / f / n for k, n in
                (("images", "images.npy"), ("index", "index.csv"), ("fingerprint", "fingerprint.json"))}
            for f in formats}


def test_make_crops_uses_prediction_and_falls_back_to_training_prior(store, tmp_path, caplog):
    cohort_dir, patients_csv = store
    manifest, images, masks = load_store(cohort_dir)
    n = len(manifest)
    # "prediction" = the true region, except every 4th slice where the model "found nothing"
    predicted = []
    for r in range(n):
        m = (masks[r] & REGION_BIT) > 0
        predicted.append((None, 0) if r % 4 == 0 else (centroid(m), int(m.sum())))
    formats = ["full", "seg112", "seg224"]
    with caplog.at_level("WARNING"):
        qc = make_crops(cohort_dir, patients_csv, predicted, _outs(tmp_path, formats), tmp_path / "qc.csv",
                        formats=formats, sizes=SIZES)
    empty = [r for r in range(n) if predicted[r][0] is None]
    assert empty and qc["fallback"].sum() == len(empty)
    assert "empty predicted region" in caplog.text
    prior = prior_center(manifest, masks, pd.read_csv(patients_csv), 32)
    idx = pd.read_csv(tmp_path / "crops" / "seg224" / "index.csv")
    size = crop_size("seg224", 32, SIZES)
    for r in empty:
        assert (idx.at[r, "y0"], idx.at[r, "x0"]) == window(prior, size)
    annotated = manifest.index[manifest["has_region_mask"]]
    predicted_ok = [r for r in annotated if r % 4 != 0]
    assert predicted_ok and (qc.loc[predicted_ok, "centroid_error_px"] == 0).all()  # prediction == truth
    assert (qc.loc[[r for r in annotated if r % 4 == 0], "centroid_error_px"] > 0).any()
    full = np.load(tmp_path / "crops" / "full" / "images.npy")
    np.testing.assert_array_equal(full, np.asarray(images))
    # each store's content fingerprint beside it: the hash of its bytes; 'full' is the cohort store's
    for f in formats:
        d = tmp_path / "crops" / f
        assert json.loads((d / "fingerprint.json").read_text()) == {"images.npy": {
            "bytes": (d / "images.npy").stat().st_size,
            "blake2b": hashlib.blake2b((d / "images.npy").read_bytes(), digest_size=32).hexdigest()}}
    assert (json.loads((tmp_path / "crops/full/fingerprint.json").read_text())["images.npy"]["blake2b"]
            == hashlib.blake2b((cohort_dir / "images.npy").read_bytes(), digest_size=32).hexdigest())
    seg = np.load(tmp_path / "crops" / "seg112" / "images.npy")
    k = crop_size("seg112", 32, SIZES)
    assert seg.shape == (n, k, k)
    r = int(annotated[0])
    i = pd.read_csv(tmp_path / "crops" / "seg112" / "index.csv").iloc[r]
    np.testing.assert_array_equal(seg[r], extract(np.asarray(images[r]), i.y0, i.x0, k)[0])
    # the lesion, mapped through the crop window, lands back on the slice's lesion
    lesion_rows = manifest.index[manifest["has_lesion_mask"]]
    r = int(lesion_rows[0])
    i = pd.read_csv(tmp_path / "crops" / "seg224" / "index.csv").iloc[r]
    les = ((masks[r] & LESION_BIT) > 0).astype(np.uint8)
    crop, _ = extract(les, i.y0, i.x0, i["size"])
    back = to_slice_coords(np.argwhere(crop), i.y0, i.x0)
    assert all(les[y, x] for y, x in back)


def test_prior_uses_training_patients_only(store):
    cohort_dir, patients_csv = store
    manifest, _, masks = load_store(cohort_dir)
    patients = pd.read_csv(patients_csv)
    everyone_train = patients.assign(split="train")
    nobody_train = patients.assign(split="test")
    assert prior_center(manifest, masks, nobody_train, 32) == (15.5, 15.5)  # slice centre, no test labels
    assert prior_center(manifest, masks, everyone_train, 32) != (15.5, 15.5)
