"""The model package's container: a sha256 manifest checked before any byte is used, and each
refusal (tampered, missing, added, foreign zip, not a zip, another anapart series) one line."""

import hashlib
import json
import zipfile

import pytest
import torch

from anapart.export import archive
from anapart.export.archive import MANIFEST, PackageError, open_package, write_package
from anapart.export.build import choice_problems, resolve_choice, shareable_config
from support.common import REPO

FILES = {"package.json": b'{"classes": ["A", "B"]}\n', "weights/w.safetensors": b"abc", "MODEL_CARD.md": b"# card\n"}


def rewrite(src, dst, change):
    """Copy a zip member by member through ``change(name, data) -> data or None`` (None drops it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = change(name, zin.read(name))
            if data is not None:
                zout.writestr(name, data)
    return dst


def refusal(path) -> str:
    with pytest.raises(PackageError) as e:
        open_package(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg  # one line, naming the file
    return msg


@pytest.fixture
def pkg(tmp_path):
    path = tmp_path / "model.zip"
    write_package(path, FILES)
    return path


def test_a_package_round_trips_and_its_manifest_holds_every_files_sha256(pkg):
    p = open_package(pkg)
    assert p.files == FILES
    # sha256 of b"abc": the FIPS 180-2 test vector, not our own hashing
    assert p.manifest["files"]["weights/w.safetensors"] == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with zipfile.ZipFile(pkg) as zf:
        assert p.digest == hashlib.sha256(zf.read(MANIFEST)).hexdigest()
    assert p.descriptor == {"classes": ["A", "B"]}


def test_the_same_files_make_the_same_bytes(tmp_path, pkg):
    write_package(tmp_path / "again.zip", FILES)
    assert (tmp_path / "again.zip").read_bytes() == pkg.read_bytes()


def test_a_flipped_byte_in_a_weight_file_is_refused(pkg, tmp_path):
    bad = rewrite(pkg, tmp_path / "bad.zip", lambda n, d: bytes([d[0] ^ 1]) + d[1:] if n.startswith("weights/") else d)
    msg = refusal(bad)
    assert "weights/w.safetensors" in msg and "sha256" in msg


def test_a_missing_file_an_added_file_and_a_foreign_zip_are_refused(pkg, tmp_path):
    assert "MODEL_CARD.md is listed" in refusal(rewrite(pkg, tmp_path / "m.zip", lambda n, d: None if n == "MODEL_CARD.md" else d))
    with zipfile.ZipFile(pkg, "a") as zf:
        zf.writestr("weights/evil.pkl", b"cos\nsystem\n")
    assert "weights/evil.pkl is in the zip but not in manifest.json" in refusal(pkg)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("README.txt", b"hello")
    assert "not an anapart model package" in refusal(other)
    text = tmp_path / "model.txt"
    text.write_text("not a zip")
    assert "not a zip file" in refusal(text)
    assert "no such package file" in refusal(tmp_path / "absent.zip")


def test_a_package_of_another_anapart_series_or_format_is_refused(pkg, tmp_path):
    def edit(key, value):
        def change(name, data):
            if name != MANIFEST:
                return data
            m = json.loads(data)
            m[key] = value
            return json.dumps(m).encode()
        return change

    msg = refusal(rewrite(pkg, tmp_path / "v.zip", edit("anapart_version", "0.2.0")))
    assert "made by anapart 0.2.0" in msg and f"this is anapart {archive.__version__}" in msg
    assert "format 2" in refusal(rewrite(pkg, tmp_path / "f.zip", edit("format_version", 2)))
    assert "says format 'other'" in refusal(rewrite(pkg, tmp_path / "k.zip", edit("format", "other")))
    archive.check_version("0.1.7", "p", running="0.1.0")  # a patch release of the same series reads it
    with pytest.raises(PackageError):
        archive.check_version("1.1.0", "p", running="0.1.0")


def test_weights_are_safetensors_that_load_without_pickle(tmp_path):
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3).t(), "n": torch.tensor(3)}  # a strided view
    data = archive.safetensors_bytes(state)
    assert not data.startswith(b"\x80") and not data.startswith(b"PK")  # neither a pickle nor torch's zip
    write_package(tmp_path / "p.zip", {"package.json": b"{}", "weights/x.safetensors": data})
    loaded = open_package(tmp_path / "p.zip").tensors("weights/x.safetensors")
    assert torch.equal(loaded["w"], state["w"]) and torch.equal(loaded["n"], state["n"])


def tiny_config() -> dict:
    import yaml

    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    test = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    for k, v in test.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return base


def test_the_shareable_config_has_no_salt_and_no_path():
    cfg = tiny_config()
    cfg["cohort"]["external"] = {"source": "dicom", "dicom_dir": "/site/dicom", "labels": "rel/labels.csv",
                                 "pseudonym_salt": "s3cret"}
    cfg["classify"]["pretrained"] = "resources/weights"
    out = shareable_config(cfg)
    text = json.dumps(out)
    assert "pseudonym_salt" not in text and "s3cret" not in text and "anapart-demo-salt" not in text
    assert "/" not in text  # no path of any kind
    assert out["cohort"]["external"]["dicom_dir"] is None and out["classify"]["pretrained"] == "<path>"
    assert out["cohort"]["field"] == 64 and out["classify"]["nets"] == cfg["classify"]["nets"]


def test_the_packaged_model_defaults_and_a_model_the_run_lacks():
    cfg = tiny_config()
    # first of classify.nets, first format of "seg112 - full", largest of [100, 50, 25]
    assert resolve_choice(cfg) == {"net": "mobilenetv3_large_100", "format": "seg112", "fraction": 100}
    cfg["package"] = {**cfg["package"], "net": "resnet50", "fraction": 30}
    assert choice_problems(cfg) == [
        "package.net: 'resnet50' is not one of classify.nets ['mobilenetv3_large_100', 'efficientnet_b0']",
        "package.fraction: 30 is not one of split.fractions [100, 50, 25]"]
