import numpy as np
import pytest

from anapart.io.windows import extract
from anapart.metrics.cam_scores import binned, bright_share, pointing, score_maps, to_slice
from anapart.partition.crop import window


def _lesion():
    m = np.zeros((32, 32), bool)
    m[8:16, 8:24] = True  # 8 x 16
    return m


def test_score_inside_half_outside():
    les = _lesion()
    inside = np.zeros((32, 32), np.float32)
    inside[10:14, 10:20] = 1.0
    half = np.zeros((32, 32), np.float32)
    half[12:20, 10:14] = 1.0  # rows 12-15 on the lesion, 16-19 off
    outside = np.zeros((32, 32), np.float32)
    outside[24:30, 2:8] = 1.0
    assert bright_share(inside, les, 0.5) == 1.0
    assert bright_share(half, les, 0.5) == 0.5
    assert bright_share(outside, les, 0.5) == 0.0
    s = score_maps(np.stack([inside, half, outside]), np.stack([les] * 3), 0.5)
    assert s["score_binned"].tolist() == [1.0, 0.5, 0.0]
    assert s["pointing"].tolist() == [1.0, 0.5, 0.0]
    assert np.isnan(bright_share(np.zeros((32, 32)), les, 0.5))


def test_binning_to_the_readers_scale():
    assert [binned(v) for v in (0.0, 0.1, 0.13, 0.3, 0.49, 0.62, 0.8, 0.95, 1.0)] == \
        [0.0, 0.0, 0.25, 0.25, 0.5, 0.5, 0.75, 1.0, 1.0]


def test_pointing_weights_by_energy():
    les = _lesion()
    cam = np.zeros((32, 32), np.float32)
    cam[10, 10] = 3.0
    cam[30, 30] = 1.0
    assert pointing(cam, les) == pytest.approx(0.75)


def test_crop_map_round_trips_to_slice_coordinates():
    rng = np.random.default_rng(0)
    slice_map = rng.random((40, 40)).astype(np.float32)
    for center in ((20.0, 20.0), (3.0, 36.0)):  # inside, and a padded window at the border
        y0, x0 = window(center, 16)
        crop, _ = extract(slice_map, y0, x0, 16)
        back = to_slice(crop, y0, x0, 40)
        ys, xs = slice(max(y0, 0), min(y0 + 16, 40)), slice(max(x0, 0), min(x0 + 16, 40))
        np.testing.assert_array_equal(back[ys, xs], slice_map[ys, xs])
        outside = np.ones((40, 40), bool)
        outside[ys, xs] = False
        assert not back[outside].any()


# --------------------------------------------------------------------------- chance level and corrected scores

from anapart.metrics.cam_scores import chance_level, clip_window, corrected, window_scores  # noqa: E402
from anapart.partition.crop import crop_size  # noqa: E402

FIELD = 128
SIZES = {"seg112": 112, "seg224": 224}


def _disc(field=FIELD, r=6, center=(64, 64)):
    yy, xx = np.mgrid[:field, :field]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= r * r


def _windows(center=(64.0, 64.0)):
    """Each format's window (y0, x0, size) around ``center`` at the test field, as the crops cut them."""
    out = {}
    for fmt in ("seg112", "seg224", "full"):
        size = crop_size(fmt, FIELD, SIZES)
        out[fmt] = (0, 0, FIELD) if fmt == "full" else (*window(center, size), size)
    return out


def _on_slice(crop_map, own):
    return to_slice(crop_map, own[0], own[1], FIELD)


def test_uninformative_map_scores_its_chance_level_and_zero_corrected_in_every_format():
    les = _disc()
    wins = _windows()
    raw = {}
    for fmt, own in wins.items():
        uniform = _on_slice(np.ones((own[2], own[2]), np.float32), own)
        s = window_scores(uniform, les, own, wins["seg112"], 0.5)
        raw[fmt] = s["score_continuous"]
        # the chance level is the lesion's share of the window, by hand
        assert s["chance"] == pytest.approx(les.sum() / own[2] ** 2)
        assert s["score_continuous"] == pytest.approx(s["chance"]) and s["corrected"] == pytest.approx(0.0, abs=1e-12)
        assert np.isnan(s["common_score"]) and np.isnan(s["common_corrected"])  # flat in the common window
        assert s["common_chance"] == pytest.approx(les.sum() / 28 ** 2)  # one chance level for all formats
    # raw scores favour the small window by construction: ~0.14 / 0.04 / 0.007 for no information at all
    assert raw["seg112"] > 3 * raw["seg224"] > 9 * raw["full"]


def test_map_exactly_on_the_lesion_gets_the_same_corrected_score_in_every_format():
    les = _disc()
    wins = _windows()
    for fmt, own in wins.items():
        y0, x0, size = own
        crop, _ = extract(les.astype(np.float32), y0, x0, size)
        s = window_scores(_on_slice(crop, own), les, own, wins["seg112"], 0.5)
        assert s["score_continuous"] == 1.0 and s["corrected"] == 1.0 and s["common_corrected"] == 1.0, fmt


def test_random_maps_score_about_zero_corrected_in_every_format():
    from anapart.learn.gradcam import resize_maps

    les = _disc(r=8)
    wins = _windows()
    rng = np.random.default_rng(0)
    for fmt, own in wins.items():
        fine = rng.random((own[2], own[2])).astype(np.float32)  # pixel noise: half the window is bright
        s = window_scores(_on_slice(fine, own), les, own, wins["seg112"], 0.5)
        assert abs(s["corrected"]) < 0.05 and abs(s["common_corrected"]) < 0.15, fmt
        coarse = resize_maps(rng.random((300, 4, 4)).astype(np.float32), own[2])  # Grad-CAM-like 4x4 blobs
        coarse = (coarse - coarse.min(axis=(1, 2), keepdims=True)) / np.ptp(coarse, axis=(1, 2), keepdims=True)
        c = [window_scores(_on_slice(m, own), les, own, wins["seg112"], 0.5) for m in coarse]
        assert abs(np.nanmean([v["corrected"] for v in c])) < 0.05, fmt
        common = [v["common_corrected"] for v in c]
        assert not np.isnan(common).any() and abs(np.mean(common)) < 0.1, (fmt, np.mean(common))


def test_chance_counts_only_the_window_inside_the_slice():
    les = np.zeros((40, 40), bool)
    les[0:4, 0:4] = True
    # a 16-px window at the corner: only its 8 x 8 part inside the slice is scored
    assert chance_level(les, -8, -8, 16) == pytest.approx(16 / 64)
    assert corrected(0.25, 0.25) == 0.0 and corrected(1.0, 0.25) == 1.0 and np.isnan(corrected(0.5, 1.0))
    assert corrected(0.0, 0.5) == -1.0  # worse than chance: the map avoids the lesion
    for c in (0.02, 0.1, 0.38):  # the lower bound, a map wholly off the lesion, is -c / (1 - c)
        assert corrected(0.0, c) == pytest.approx(-c / (1 - c))


def test_common_window_rescales_every_format_alike():
    """A full-slice map whose maximum lies outside the common window, with a weaker peak on the
    lesion inside it: thresholded against its whole-map maximum it has no bright pixel there (the
    former rule: NaN), rescaled within the window its peak is on the lesion, as a seg112 map's is."""
    from anapart.metrics.cam_scores import common_share

    les = _disc(r=6)
    wins = _windows()
    full = np.zeros((FIELD, FIELD), np.float32)
    full[10:20, 10:20] = 1.0  # the strongest response, far from the lesion and the common window
    full[les] = 0.3  # a weaker one on the lesion
    ys, xs = clip_window(*wins["seg112"], FIELD)
    assert np.isnan(bright_share(full[ys, xs], les[ys, xs], 0.5))  # the former rule: nothing bright in the window
    s = window_scores(full, les, wins["full"], wins["seg112"], 0.5)
    assert s["common_score"] == 1.0 and s["common_corrected"] == 1.0
    y0, x0, size = wins["seg112"]
    crop, _ = extract(full, y0, x0, size)  # the same response seen through the seg112 crop, rescaled by Grad-CAM
    seg = _on_slice(crop / crop.max(), wins["seg112"])
    assert window_scores(seg, les, wins["seg112"], wins["seg112"], 0.5)["common_score"] == s["common_score"]
    # a map flat inside the window (a coarse full-slice cell covers it) is NaN there, and counted
    flat = np.zeros((FIELD, FIELD), np.float32)
    flat[:, : FIELD // 2 + 20] = 1.0
    assert np.isnan(common_share(flat, les, wins["seg112"], 0.5))
    assert not np.isnan(bright_share(flat, les, 0.5))


# --------------------------------------------------------------------------- tests with the right unit


# --------------------------------------------------------------------------- reviewer agreement against hand formulas


# --------------------------------------------------------------------------- gaps the mutation run found (tools/mutation/MUTATION.md)


def test_a_pixel_exactly_at_the_threshold_is_bright():
    cam = np.array([[0.5, 0.5], [0.2, 0.0]])
    lesion = np.array([[True, False], [False, False]])
    assert bright_share(cam, lesion, 0.5) == 0.5  # two bright pixels (>= 0.5), one of them on the lesion


def test_a_common_window_outside_the_slice_scores_nan():
    from anapart.metrics.cam_scores import common_share

    m = np.random.default_rng(0).random((FIELD, FIELD))
    assert np.isfinite(common_share(m, _disc(), (56, 56, 16), 0.5))
    assert np.isnan(common_share(m, _disc(), (FIELD + 4, FIELD + 4, 16), 0.5))


def test_common_share_rescales_the_map_from_its_minimum_in_the_window():
    """A map of 0.6 off the lesion and 1.0 on it spans [0, 1] once rescaled in the window: all of
    its bright area is on the lesion."""
    from anapart.metrics.cam_scores import common_share

    les = _disc()
    assert common_share(0.6 + 0.4 * les.astype(float), les, (48, 48, 32), 0.5) == 1.0


def test_no_maps_give_an_empty_score_table_with_every_column():
    from anapart.metrics.cam_scores import SCORE_COLUMNS

    t = score_maps(np.zeros((0, 8, 8)), np.zeros((0, 8, 8), bool), 0.5)
    assert t.empty and list(t.columns) == SCORE_COLUMNS
