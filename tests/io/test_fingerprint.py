"""The cohort fingerprint changes exactly when the data change: a pixel rewrite in place, a replaced
file, a repointed symlink; an untouched folder (or one merely read) keeps it."""

import os
import shutil

import numpy as np

from anapart.io.fingerprint import inputs_fingerprint


def _cohort(root, seed=0):
    rng = np.random.default_rng(seed)
    (root / "P1").mkdir(parents=True)
    for k in range(3):
        (root / "P1" / f"{k}.dcm").write_bytes(rng.bytes(200_000))  # big: size and mtime only
    (root / "labels.csv").write_text("patient_id,label\nP1,NPC\n")
    return root


def test_an_untouched_cohort_keeps_its_fingerprint(tmp_path):
    root = _cohort(tmp_path / "c")
    paths = {"dicom": root / "P1", "labels": root / "labels.csv", "masks": None}
    first = inputs_fingerprint(paths)
    (root / "P1" / "0.dcm").read_bytes()  # reading changes nothing
    assert inputs_fingerprint(paths) == first


def test_a_pixel_rewrite_in_place_changes_it(tmp_path):
    root = _cohort(tmp_path / "c")
    paths = {"dicom": root / "P1"}
    first = inputs_fingerprint(paths)
    f = root / "P1" / "1.dcm"
    data = bytearray(f.read_bytes())
    data[150_000] ^= 0xFF  # same name, same size, new pixels
    st = f.stat()
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # however coarse the clock, a new mtime
    assert inputs_fingerprint(paths) != first


def test_a_label_edit_with_the_same_size_and_mtime_changes_it(tmp_path):
    """Small files count by content: a relabelled patient with its mtime restored (cp -p) still shows."""
    root = _cohort(tmp_path / "c")
    labels = root / "labels.csv"
    paths = {"labels": labels}
    first = inputs_fingerprint(paths)
    st = labels.stat()
    labels.write_text("patient_id,label\nP1,LH!\n")
    os.utime(labels, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert labels.stat().st_size == st.st_size and inputs_fingerprint(paths) != first


def test_a_replaced_or_added_file_changes_it(tmp_path):
    root = _cohort(tmp_path / "c")
    paths = {"dicom": root / "P1"}
    first = inputs_fingerprint(paths)
    (root / "P1" / "3.dcm").write_bytes(b"x" * 10)
    second = inputs_fingerprint(paths)
    assert second != first
    (root / "P1" / "3.dcm").unlink()
    (root / "P1" / "3b.dcm").write_bytes(b"x" * 10)
    assert inputs_fingerprint(paths) not in (first, second)


def test_a_repointed_symlink_to_an_older_cohort_changes_it(tmp_path):
    """The cohort folder is a link; repointed to another cohort whose files are older (copied with
    their times), Snakemake's timestamps see nothing; the fingerprint does."""
    a = _cohort(tmp_path / "a", seed=0)
    b = tmp_path / "b"
    shutil.copytree(a, b, copy_function=shutil.copy2)
    (b / "P1" / "2.dcm").write_bytes(np.random.default_rng(9).bytes(200_000))
    old = (a / "P1" / "2.dcm").stat()
    os.utime(b / "P1" / "2.dcm", ns=(old.st_atime_ns, old.st_mtime_ns - 10**9))  # older than a's
    link = tmp_path / "cohort"
    link.symlink_to(a)
    paths = {"dicom": link}
    first = inputs_fingerprint(paths)
    link.unlink()
    link.symlink_to(b)
    assert inputs_fingerprint(paths) != first


# ------------------------------------------------------------------ content fingerprints of our stores

def _blake2b(path) -> str:
    """The oracle: hashlib over the bytes read back (not the writer's running hash)."""
    import hashlib

    return hashlib.blake2b(path.read_bytes(), digest_size=32).hexdigest()


def test_a_store_written_in_blocks_has_the_hash_of_its_bytes(tmp_path):
    from anapart.io.fingerprint import file_fingerprint
    from anapart.io.store import NpyStreamWriter

    rng = np.random.default_rng(1)
    data = rng.random((7, 5, 5)).astype(np.float16)
    w = NpyStreamWriter(tmp_path / "x.npy", data.shape, np.float16)
    for block in (data[:3], data[3:4], data[4:]):
        w.append(block)
    w.close()
    path = tmp_path / "x.npy"
    np.testing.assert_array_equal(np.load(path), data)
    expected = {"bytes": path.stat().st_size, "blake2b": _blake2b(path)}
    assert w.fingerprint() == expected == file_fingerprint(path)
    data[6, 4, 4] += 1  # one value changed: another fingerprint
    np.save(path, data)
    assert file_fingerprint(path)["blake2b"] != expected["blake2b"]


def test_a_store_fingerprint_is_rewritten_only_when_its_content_changes(tmp_path):
    import json

    from anapart.io.fingerprint import write_store_fingerprint

    path = tmp_path / "fingerprint.json"
    a = {"images.npy": {"bytes": 10, "blake2b": "aa"}, "masks.npy": {"bytes": 4, "blake2b": "bb"}}
    assert write_store_fingerprint(path, a)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert not write_store_fingerprint(path, dict(reversed(list(a.items()))))  # same content, any order
    assert path.stat().st_mtime_ns == 1_000_000_000
    b = {**a, "images.npy": {"bytes": 10, "blake2b": "ab"}}
    assert write_store_fingerprint(path, b)
    assert json.loads(path.read_text()) == b and path.stat().st_mtime_ns != 1_000_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fingerprint.json"]  # no temporary left


def test_ingest_writes_the_cohort_stores_fingerprint_and_its_cost(cohort, tmp_path):
    import json

    from anapart import CLASSES
    from anapart.cohort.preflight import ingest
    from support.common import percentiles, series_rule, store_paths

    out = tmp_path / "results" / "cohort"
    paths = {**store_paths(out), "fingerprint": out / "fingerprint.json"}
    report = ingest(cohort / "dicom", cohort / "labels.csv", cohort / "masks", paths, classes=CLASSES, field=32,
                    salt="s", series=series_rule(), percentiles=percentiles())
    assert json.loads((out / "fingerprint.json").read_text()) == {
        f: {"bytes": (out / f).stat().st_size, "blake2b": _blake2b(out / f)} for f in ("images.npy", "masks.npy")}
    assert 0 <= report["seconds_fingerprint"] <= report["seconds_convert_write"]
