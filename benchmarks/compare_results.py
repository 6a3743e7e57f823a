"""Compare two results/ trees (before/after a refactor): which CSV/JSON files are identical.

Usage: python benchmarks/compare_results.py REF NEW

Byte-identical files are "identical"; otherwise the file is parsed and compared with the timing
fields removed (JSON keys and CSV columns whose name starts with "seconds"), since wall times
change from run to run. Files under logs/ are ignored. Exit status 1 if any file differs or is
missing on one side, so the script can gate a merge.
"""

import csv
import io
import json
import sys
from pathlib import Path

SUFFIXES = (".csv", ".json")


def _is_timing(key) -> bool:
    return isinstance(key, str) and key.startswith("seconds")


def _strip_json(obj):
    """The JSON value without keys named seconds* (at any depth)."""
    if isinstance(obj, dict):
        return {k: _strip_json(v) for k, v in obj.items() if not _is_timing(k)}
    if isinstance(obj, list):
        return [_strip_json(v) for v in obj]
    return obj


def _strip_csv(text: str) -> list[list[str]]:
    """Rows of the CSV without the columns whose header starts with seconds."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return rows
    keep = [i for i, name in enumerate(rows[0]) if not _is_timing(name)]
    return [[row[i] for i in keep if i < len(row)] for row in rows]


def _files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.suffix in SUFFIXES and "logs" not in p.relative_to(root).parts
    }


def same(ref: Path, new: Path) -> bool:
    """True when the two files agree once timing fields are removed."""
    a, b = ref.read_bytes(), new.read_bytes()
    if a == b:
        return True
    if ref.suffix == ".json":
        return _strip_json(json.loads(a)) == _strip_json(json.loads(b))
    return _strip_csv(a.decode()) == _strip_csv(b.decode())


def compare(ref_root: Path, new_root: Path) -> dict[str, list[str]]:
    """Relative paths grouped as identical, differing, only_ref, only_new."""
    ref, new = _files(ref_root), _files(new_root)
    both = sorted(ref & new)
    out = {"identical": [], "differing": []}
    for rel in both:
        out["identical" if same(ref_root / rel, new_root / rel) else "differing"].append(rel)
    out["only_ref"] = sorted(ref - new)
    out["only_new"] = sorted(new - ref)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = compare(Path(argv[0]), Path(argv[1]))
    for group in ("differing", "only_ref", "only_new"):
        for rel in out[group]:
            print(f"{group}: {rel}")
    print(
        f"{len(out['identical'])} identical, {len(out['differing'])} differing, "
        f"{len(out['only_ref'])} only in {argv[0]}, {len(out['only_new'])} only in {argv[1]}"
    )
    return 0 if not (out["differing"] or out["only_ref"] or out["only_new"]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
