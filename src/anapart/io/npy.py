"""Opening our own ``.npy`` stores with their integrity checked (a leaf module: every layer reads stores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anapart.io.errors import StoreError


def rebuild_hint(path: Path) -> str:
    """The command that rebuilds one of the workflow's files (``--forcerun`` takes files as well as rules)."""
    return f"rebuild it: snakemake --forcerun {path} (with the options of your run), or delete it and rerun"


def open_npy(path, rows: int | None = None) -> np.ndarray:
    """A ``.npy`` store memory-mapped read-only, after checking that the file is as long as its header
    (shape, dtype) says and has the ``rows`` its index or manifest lists: a store cut short by a full
    disk or an interrupted copy of results/ is named, with the command that rebuilds it, instead of
    numpy's "mmap length is greater than file size"."""
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(fh)
            offset = fh.tell()
    except (ValueError, OSError, SyntaxError) as e:
        raise StoreError(f"{path}: damaged store, its .npy header cannot be read ({e}; {size} bytes); "
                         f"{rebuild_hint(path)}") from e
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != expected:
        how = "cut short" if size < expected else "longer than its header says"
        raise StoreError(f"{path}: damaged store, {size} bytes where its header ({dtype} {shape}) says {expected}: "
                         f"{how} (a full disk or an interrupted copy); {rebuild_hint(path)}")
    if rows is not None and shape[0] != rows:
        raise StoreError(f"{path}: {shape[0]} rows where its index lists {rows}: the store and its index are of "
                         f"different runs; {rebuild_hint(path)}")
    return np.load(path, mmap_mode="r")
