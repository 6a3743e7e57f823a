import numpy as np
import pytest
import torch

from anapart.cam import binned, bright_share, gradcam, pointing, resolve_layer, score_maps, to_slice
from anapart.classify import build_classifier
from anapart.crop import extract, window


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


def test_gradcam_gives_maps_larger_than_one_pixel_at_demo_size():
    torch.manual_seed(0)
    model = build_classifier("mobilenetv3_large_100", 6)
    layer = resolve_layer(model, "blocks.4")
    maps = gradcam(model, layer, torch.randn(2, 1, 56, 56), [0, 3])
    assert maps.shape == (2, 56, 56) and maps.min() >= 0 and maps.max() <= 1
    with pytest.raises(KeyError, match="not found"):
        resolve_layer(model, "blocks.99x")


def test_reviewer_agreement(tmp_path):
    import pandas as pd

    from anapart.cam import agreement, read_reviewer_scores

    rng = np.random.default_rng(0)
    items = pd.DataFrame({"net": "n", "fmt": "seg112", "frac": 100, "slice_id": [f"S{i}" for i in range(30)]})
    truth = rng.choice([0, 0.25, 0.5, 0.75, 1.0], size=30)
    auto = items.assign(score_binned=truth, score_continuous=truth, pointing=truth)
    (tmp_path / "rev").mkdir()
    items.assign(score=truth).to_csv(tmp_path / "rev" / "alice.csv", index=False)  # agrees perfectly
    items.assign(score=rng.choice([0, 0.25, 0.5, 0.75, 1.0], size=30)).to_csv(tmp_path / "rev" / "bob.csv",
                                                                              index=False)  # guesses
    reviews = read_reviewer_scores(tmp_path / "rev")
    table = agreement(reviews, auto).set_index("comparison")
    assert table.loc["alice vs automatic", "kappa_quadratic"] == pytest.approx(1.0)
    assert table.loc["alice vs automatic", "icc2"] == pytest.approx(1.0)
    assert abs(table.loc["bob vs automatic", "kappa_quadratic"]) < 0.5
    assert table.loc["reviewers", "n_items"] == 30
    items.assign(score=1.5).to_csv(tmp_path / "rev" / "carol.csv", index=False)
    with pytest.raises(ValueError, match=r"carol\.csv line 2: score 1.5 is outside 0-1"):
        read_reviewer_scores(tmp_path / "rev")


def test_format_ttests_match_pingouin_on_known_data():
    import pandas as pd
    import pingouin as pg

    from anapart.cam import format_ttests, summarize

    a1, a2 = [1.0, 0.75, 0.75, 1.0], [0.5, 1.0, 0.75]
    b1, b2 = [0.25, 0.0, 0.5], [0.25, 0.25, 0.0, 0.5]
    full = [0.0, 0.0, 0.25, 0.0]

    def frame(v):
        return pd.DataFrame({"slice_id": [f"s{i}" for i in range(len(v))], "label": "NPC", "score_binned": v,
                             "score_continuous": v, "pointing": v})

    scores = {("n1", "seg112", 100): frame(a1), ("n2", "seg112", 100): frame(a2),
              ("n1", "seg224", 100): frame(b1), ("n2", "seg224", 100): frame(b2),
              ("n1", "full", 100): frame(full), ("n2", "full", 100): pd.DataFrame(columns=frame([]).columns)}
    tt = format_ttests(scores).set_index(["a", "b"])
    ref = pg.ttest(np.array(a1 + a2), np.array(b1 + b2), paired=False).iloc[0]
    row = tt.loc[("seg112", "seg224")]
    assert row["T"] == pytest.approx(ref["T"]) and row["p"] == pytest.approx(ref["p_val"])
    assert row["dof"] == pytest.approx(ref["dof"]) and (row["n_a"], row["n_b"]) == (7, 7)
    assert row["mean_a"] == pytest.approx(np.mean(a1 + a2))
    assert set(tt.index) == {("seg112", "seg224"), ("seg112", "full"), ("seg224", "full")}
    summary = summarize(scores).set_index(["net", "fmt"])
    assert summary.loc[("n1", "seg112"), "score_mean"] == pytest.approx(np.mean(a1))
    assert summary.loc[("n2", "full"), "n"] == 0
