"""The model package's container: a zip whose ``manifest.json`` lists the sha256 of every other file.

Why so strict: a package travels to sites that must not run code they cannot inspect. Weights are
safetensors (no pickle, nothing executes on load); every byte is checked against the manifest before
anything is used; a file missing from the zip or present but not listed, a package from another
anapart series, and a zip that is no package are each refused with one line (:class:`PackageError`).
Members are read into memory and used from the verified bytes, never extracted (no path from the
zip reaches the file system, and nothing can change between the check and the use).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from anapart import __version__
from anapart.io.files import atomic_path

FORMAT = "anapart-model-package"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DESCRIPTOR = "package.json"  # what predict needs: classes, preprocessing, the models and their meta
PRIVATE_FILES = ("pseudonyms.csv", "slices.csv")  # what predict writes under --private only
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member dates: the same package is the same bytes


class PackageError(Exception):
    """A package that must not be used; the message is one line naming the file and the reason."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def series_of(version: str) -> tuple[int, int]:
    """(major, minor) of a version string: packages are compatible within one series."""
    parts = str(version).split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise PackageError(f"version '{version}' is not major.minor[.patch]") from None


def check_version(made_by: str, path, running: str = __version__) -> None:
    """Refuse a package made by another (major, minor) series of anapart: the preprocessing, the
    network builders or the package layout may differ, and a silent difference would change every
    probability."""
    if series_of(made_by) != series_of(running):
        want = ".".join(map(str, series_of(made_by)))
        raise PackageError(f"{path}: made by anapart {made_by}, this is anapart {running}; "
                           f"install anapart {want}.x to use it")


def write_package(path, files: dict[str, bytes]) -> dict:
    """Write ``files`` (name -> bytes) and their manifest as one zip, atomically; returns the manifest."""
    if MANIFEST in files or DESCRIPTOR not in files:
        raise ValueError(f"a package needs {DESCRIPTOR} and must not bring its own {MANIFEST}")
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "anapart_version": __version__,
                "files": {name: sha256(data) for name, data in sorted(files.items())}}
    members = {MANIFEST: (json.dumps(manifest, indent=2) + "\n").encode(), **dict(sorted(files.items()))}
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
    return manifest


@dataclass
class Package:
    """A verified package: its manifest and every member's bytes (checked against the manifest)."""

    path: Path
    manifest: dict
    files: dict[str, bytes]
    digest: str  # sha256 of manifest.json: names this package (and, through it, every file)

    def json(self, name: str):
        return json.loads(self.files[name])

    def text(self, name: str) -> str:
        return self.files[name].decode()

    @property
    def descriptor(self) -> dict:
        return self.json(DESCRIPTOR)

    def tensors(self, name: str) -> dict:
        """A safetensors member as a state dict (no pickle: nothing in the file can run)."""
        from safetensors.torch import load  # nested import: torch only where weights are loaded

        return load(self.files[name])


def open_package(path, running: str = __version__) -> Package:
    """Read and verify a package; every refusal is a :class:`PackageError` with one line."""
    path = Path(path)
    if not path.is_file():
        raise PackageError(f"{path}: no such package file")
    if not zipfile.is_zipfile(path):
        raise PackageError(f"{path}: not a zip file, so not an anapart model package")
    try:
        with zipfile.ZipFile(path) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
            if MANIFEST not in names:
                raise PackageError(f"{path}: not an anapart model package (no {MANIFEST} in the zip)")
            raw = {name: zf.read(name) for name in names}
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise PackageError(f"{path}: unreadable zip ({e})") from None
    try:
        manifest = json.loads(raw[MANIFEST])
        files = dict(manifest["files"])
        kind, fmt = manifest["format"], int(manifest["format_version"])
        made_by = str(manifest["anapart_version"])
    except (ValueError, KeyError, TypeError):
        raise PackageError(f"{path}: not an anapart model package ({MANIFEST} is not a package manifest)") from None
    if kind != FORMAT:
        raise PackageError(f"{path}: not an anapart model package ({MANIFEST} says format '{kind}')")
    if fmt != FORMAT_VERSION:
        raise PackageError(f"{path}: package format {fmt}; this anapart reads format {FORMAT_VERSION}")
    check_version(made_by, path, running)
    missing = sorted(set(files) - set(raw))
    if missing:
        raise PackageError(f"{path}: {missing[0]} is listed in {MANIFEST} but missing from the zip"
                           + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    extra = sorted(set(raw) - set(files) - {MANIFEST})
    if extra:
        raise PackageError(f"{path}: {extra[0]} is in the zip but not in {MANIFEST} (added after packaging)")
    if DESCRIPTOR not in files:
        raise PackageError(f"{path}: not an anapart model package (no {DESCRIPTOR})")
    for name, want in sorted(files.items()):
        if sha256(raw[name]) != want:
            raise PackageError(f"{path}: {name} does not match its sha256 in {MANIFEST} (tampered or damaged)")
    return Package(path, manifest, {k: v for k, v in raw.items() if k != MANIFEST}, sha256(raw[MANIFEST]))


def safetensors_bytes(state_dict: dict) -> bytes:
    """A state dict as safetensors bytes (contiguous CPU copies: shared or strided storage is refused)."""
    from safetensors.torch import save  # nested import: torch only where weights are written

    return save({k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()})


def zip_members(path) -> list[str]:
    """The member names of a zip (for tests and messages)."""
    with zipfile.ZipFile(io.BytesIO(Path(path).read_bytes())) as zf:
        return zf.namelist()
