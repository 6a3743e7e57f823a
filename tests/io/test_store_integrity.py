"""Our own stores cut short (a full disk, an interrupted copy of results/): every reader names the file
and the command that rebuilds it, instead of numpy's "mmap length is greater than file size"."""

import numpy as np
import pandas as pd
import pytest

from anapart.io.errors import StoreError
from anapart.io.npy import open_npy
from anapart.io.store import load_store
from anapart.learn.data import CropData


def _store(d, n=6, side=8):
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "images.npy", np.random.default_rng(0).random((n, side, side)).astype(np.float16))
    np.save(d / "masks.npy", np.zeros((n, 2, side, side // 8), np.uint8))
    pd.DataFrame({"slice_id": [f"s{i}" for i in range(n)], "patient": "P1", "label": "NPC"}).to_csv(
        d / "manifest.csv", index=False)
    pd.DataFrame({"slice_id": [f"s{i}" for i in range(n)], "row": range(n)}).to_csv(d / "index.csv", index=False)
    return d


def _cut(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep(len(data))])


def test_an_intact_store_opens_as_before(tmp_path):
    d = _store(tmp_path / "s")
    manifest, images, masks = load_store(d)
    np.testing.assert_array_equal(images, np.load(d / "images.npy"))
    assert len(manifest) == len(images) == len(masks) == 6


def test_numpy_alone_says_nothing_of_the_file(tmp_path):
    """What the readers said before: numpy's mmap error, naming no file."""
    d = _store(tmp_path / "s")
    _cut(d / "images.npy", lambda n: n // 2)
    with pytest.raises(ValueError, match="mmap length is greater than file size"):
        np.load(d / "images.npy", mmap_mode="r")


@pytest.mark.parametrize("keep, words", [(lambda n: n // 2, "cut short"), (lambda n: 200, "cut short"),
                                         (lambda n: 20, "its .npy header cannot be read"),
                                         (lambda n: 0, "its .npy header cannot be read")])
def test_a_store_cut_short_names_the_file_and_the_rebuild_command(tmp_path, keep, words):
    d = _store(tmp_path / "s")
    path = d / "images.npy"
    _cut(path, keep)
    for read in (lambda: load_store(d), lambda: open_npy(path),
                 lambda: CropData(d, pd.read_csv(d / "manifest.csv"), ["NPC"], None)):
        with pytest.raises(StoreError) as e:
            read()
        assert str(e.value).startswith(f"{path}: damaged store") and words in str(e.value), str(e.value)
        assert f"snakemake --forcerun {path}" in str(e.value)


def test_a_store_longer_than_its_header_or_of_another_run_is_named(tmp_path):
    d = _store(tmp_path / "s")
    with open(d / "masks.npy", "ab") as fh:
        fh.write(b"\0" * 16)
    with pytest.raises(StoreError, match="longer than its header says"):
        load_store(d)
    d = _store(tmp_path / "t")
    pd.read_csv(d / "manifest.csv").head(5).to_csv(d / "manifest.csv", index=False)  # another run's manifest
    with pytest.raises(StoreError, match=f"{d / 'images.npy'}: 6 rows where its index lists 5"):
        load_store(d)
