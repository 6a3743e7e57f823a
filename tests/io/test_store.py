import numpy as np
import pytest

from anapart.io.files import atomic_path, atomic_paths
from anapart.io.store import (LESION_BIT, REGION_BIT, MaskStore, NpyStreamWriter, intensity_window, normalise,
                              pack_masks, to_field)


def test_atomic_path_renames_on_success_and_cleans_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    with atomic_path(target) as tmp:
        tmp.write_text("ok")
        assert not target.exists()
    assert target.read_text() == "ok"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "ok"  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_atomic_paths_all_or_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic_paths(tmp_path / "a", tmp_path / "b") as (a, b):
            a.write_text("a")
            raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_to_field_pads_non_square_then_resizes():
    a = np.ones((4, 8), np.float32)
    out = to_field(a, 8)
    assert out.shape == (8, 8)
    np.testing.assert_array_equal(out[:2], 0)
    np.testing.assert_array_equal(out[2:6], 1)
    np.testing.assert_array_equal(out[6:], 0)
    m = np.zeros((16, 16), np.uint8)
    m[4:8, 8:12] = 1
    small = to_field(m, 8, nearest=True)
    assert set(np.unique(small)) == {0, 1} and small.sum() == 4


def test_normalise_uses_series_window():
    rng = np.random.default_rng(0)
    slices = [rng.normal(1000, 100, (128, 128)).astype(np.float32) for _ in range(3)]
    lo, hi = intensity_window(slices, (0.5, 99.5))
    assert 600 < lo < 800 and 1200 < hi < 1400
    out = normalise(slices[0].copy(), lo, hi)
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(normalise(np.array([lo, hi, lo - 5], np.float32), lo, hi), [0, 1, 0], atol=1e-6)


def test_npy_stream_writer_round_trip(tmp_path):
    w = NpyStreamWriter(tmp_path / "x.npy", (5, 3, 3), np.float16)
    data = np.arange(45, dtype=np.float32).reshape(5, 3, 3) / 45
    w.append(data[:2])
    w.append(data[2:])
    w.close()
    back = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert back.shape == (5, 3, 3) and back.dtype == np.float16
    np.testing.assert_allclose(back, data, atol=1e-3)
    short = NpyStreamWriter(tmp_path / "y.npy", (5, 3, 3), np.uint8)
    short.append(np.zeros((2, 3, 3)))
    with pytest.raises(RuntimeError, match="wrote 2 rows, expected 5"):
        short.close()


def test_mask_store_packs_and_unpacks_bit_planes():
    rng = np.random.default_rng(1)
    bits = (rng.random((5, 13, 13)) < 0.3) * REGION_BIT | (rng.random((5, 13, 13)) < 0.2) * LESION_BIT
    bits = bits.astype(np.uint8)
    packed = pack_masks(bits)
    assert packed.shape == (5, 2, 13, 2) and packed.dtype == np.uint8
    store = MaskStore(packed)
    assert store.shape == (5, 13, 13) and len(store) == 5
    np.testing.assert_array_equal(store[:], bits)
    np.testing.assert_array_equal(store[3], bits[3])
    np.testing.assert_array_equal(store[np.array([4, 0])], bits[[4, 0]])
