"""Fingerprints that change when the data change, not when nothing did: a cohort's input files
(:func:`inputs_fingerprint`) and the content of our own stores (:func:`write_store_fingerprint`).

Why: Snakemake sees a cohort folder as one path whose modification time does not change when a
file inside it is rewritten in place (a corrected export, a re-anonymised file), nor when a
symlinked folder is repointed to another cohort with older files; the preflight would then plan
nothing and the store would keep the old pixels. The workflow passes this fingerprint to the
preflight as a parameter, so Snakemake's ``params`` rerun trigger replans the preflight, ingest
and everything built from the store exactly when it changes. It reads no file's pixels: each
file's resolved path, size and modification time (and the bytes of small files, such as the
labels table), so it costs one ``stat`` a file at every DAG build.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from anapart.io.files import atomic_path

SMALL = 64 << 10  # bytes; files up to this size (labels tables, small masks) are hashed by content


def _file_record(h, path: Path, name: str) -> None:
    st = path.stat()  # follows symlinks: a repointed file link is another file
    h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    if st.st_size <= SMALL:
        h.update(path.read_bytes())


def inputs_fingerprint(paths: dict[str, str | os.PathLike | None]) -> str:
    """One hex digest over every named input (a file or a folder, walked with its symlinks followed):
    the resolved path, and for every file its relative name, size, modification time and, when small,
    its bytes. A missing path counts as missing (the preflight then says so)."""
    h = hashlib.blake2b(digest_size=16)
    for key in sorted(k for k, v in paths.items() if v):
        root = Path(paths[key])
        h.update(f"{key}\0{os.path.realpath(root)}\0".encode())
        if root.is_dir():
            for folder, dirs, files in os.walk(root, followlinks=True):
                dirs.sort()
                for f in sorted(files):
                    p = Path(folder) / f
                    try:
                        _file_record(h, p, p.relative_to(root).as_posix())
                    except OSError:  # a dangling link: the preflight names it
                        h.update(f"{p}\0unreadable\0".encode())
        elif root.exists():
            _file_record(h, root, root.name)
        else:
            h.update(b"missing\0")
    return h.hexdigest()


# ------------------------------------------------------------------ content fingerprints of our stores
# Why: a store is read as ancient() (only its path counts): the 'full' crop store is a hard link of
# the cohort store, and Snakemake touching one output bumps the other's mtime. The rule that writes
# a store also writes ``fingerprint.json`` beside it (the hash of every byte of each file); readers
# take that small file as their trigger. Snakemake removes a job's outputs before it runs and
# touches them after, so the file is always newer after a rerun; it compares small inputs by
# checksum (files under --max-checksum-file-size, 1 MB), so a rerun that wrote the same bytes
# replans nothing downstream and one that wrote other bytes replans every reader.

STORE_HASH = "blake2b"
STORE_DIGEST_SIZE = 32  # bytes


def store_hasher():
    return hashlib.blake2b(digest_size=STORE_DIGEST_SIZE)


def file_fingerprint(path: str | os.PathLike) -> dict:
    """``{"bytes": size, "blake2b": hex}`` of one file, read to its end."""
    with open(path, "rb") as fh:
        h = hashlib.file_digest(fh, store_hasher)
    return {"bytes": os.path.getsize(path), STORE_HASH: h.hexdigest()}


def write_store_fingerprint(path: str | os.PathLike, entries: dict[str, dict]) -> bool:
    """Write ``{file name: file_fingerprint}`` to ``path`` (temp name + rename), only if its content
    changed (outside Snakemake an unchanged store then keeps its fingerprint's mtime). True if written."""
    text = json.dumps(dict(sorted(entries.items())), indent=1) + "\n"
    path = Path(path)
    if path.is_file() and path.read_text() == text:
        return False
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return True
