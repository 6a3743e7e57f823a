"""Integrity of compressed inputs: a gzip file is read to its end and its trailer checked.

Why: SimpleITK (and nibabel's lazy reads) decode a ``.nii.gz`` cut short or with a flipped bit
without a word, and ingest stores other pixels than the scanner's. gzip carries a CRC-32 and the
length of its data in an 8-byte trailer; reading every member to its end verifies both. What a
file is, and what to do, goes in the message: a hospital share or an interrupted copy makes these
files, and copying the file again from its source is the fix.
"""

from __future__ import annotations

import gzip
import zlib
from functools import lru_cache
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20


def is_gzip(path: str | Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == GZIP_MAGIC
    except OSError:
        return False


def gzip_error_message(path: str | Path, e: BaseException) -> str:
    """What a gzip reader's exception means for ``path``, in words a user acts on."""
    text = str(e)
    again = "copy it again from its source"
    if isinstance(e, EOFError):
        return f"{path}: truncated gzip stream (the file ends before its end-of-stream marker and trailer); {again}"
    if "CRC check failed" in text:
        return f"{path}: CRC mismatch (the gzip CRC-32 of the data is not the one stored in the file: {text}); {again}"
    if "Incorrect length" in text:
        return f"{path}: length mismatch (the data's length is not the one stored in the gzip trailer); {again}"
    if isinstance(e, zlib.error):
        return f"{path}: corrupt gzip data (zlib: {text}); {again}"
    if isinstance(e, gzip.BadGzipFile):
        return f"{path}: corrupt gzip header or member ({text}); {again}"
    return f"{path}: could not read ({type(e).__name__}: {text})"


def gzip_problem(path: str | Path) -> str | None:
    """None when ``path`` is not gzip-compressed or reads to its end with every member's CRC-32 and
    length verified; else the problem, naming the file ("truncated gzip stream", "CRC mismatch")."""
    path = Path(path)
    st = path.stat()
    return _gzip_problem(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=256)
def _gzip_problem(path: str, mtime_ns: int, size: int) -> str | None:
    """Cached by path, modification time and size: the preflight and ingest ask about the same file."""
    if not is_gzip(path):
        return None
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(CHUNK):
                pass
    except (EOFError, OSError, zlib.error) as e:
        return gzip_error_message(path, e)
    return None
