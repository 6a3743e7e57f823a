"""What the package's imports may be: layers as subpackages, imports that only go down.

Read from the source with :mod:`ast` (nothing is imported), so a test can check the real package
and also a planted copy with one violation of each kind.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

# Rank of each subpackage: a module may import its own subpackage or one of strictly lower rank.
# Subpackages of equal rank never import each other (io/runtime, cohort/synthetic, learn/metrics,
# and the two studies, partition/staging).
LAYERS = {
    "": 0,  # anapart/__init__.py: the package's constants (CLASSES)
    "io": 1, "runtime": 1,
    "cohort": 2, "synthetic": 2,
    "learn": 3, "metrics": 3,
    "partition": 4, "staging": 4,
    "report": 5, "export": 5,  # export: models that leave the study (study A's code paths)
}
STUDIES = {"partition", "staging"}
MAX_LINES = 400
# A function-level import of an anapart module is allowed only with a reason on its line.
NESTED_OK = "# nested import:"


@dataclass(frozen=True)
class Import:
    source: str  # importing module, e.g. anapart.io.store
    target: str  # imported module (or the package whose name was imported)
    names: tuple[str, ...]
    line: int
    nested: bool  # inside a function or class body
    text: str


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(root, p): p for p in sorted(root.rglob("*.py"))}


def _resolve(source: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    if node.level == 0:
        return node.module
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(root: Path) -> list[Import]:
    """Every import of an anapart module, module-level or nested, with where it stands."""
    pkg = root.name
    known = modules(root)
    out = []
    for name, path in known.items():
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        nested_lines = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        nested_lines.add(sub.lineno)
        for node in ast.walk(tree):
            found = []
            if isinstance(node, ast.Import):
                found = [(a.name, ()) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = _resolve(name, path.name == "__init__.py", node)
                if mod is None:
                    continue
                # `from anapart.io import dicom` imports the module anapart.io.dicom
                subs = [a.name for a in node.names if f"{mod}.{a.name}" in known]
                found = [(f"{mod}.{s}", ()) for s in subs]
                rest = tuple(a.name for a in node.names if a.name not in subs)
                if rest:
                    found.append((mod, rest))
            for target, names in found:
                if target == pkg or target.startswith(pkg + "."):
                    out.append(Import(name, target, names, node.lineno, node.lineno in nested_lines,
                                      lines[node.lineno - 1].strip()))
    return out


def subpackage(module: str) -> str:
    """``io`` for anapart.io.store and anapart.io; ``""`` for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(root: Path) -> list[str]:
    """Every breach of the layering, one line each (empty: the package is clean)."""
    found = []
    mods = modules(root)
    for name in mods:
        sub = subpackage(name)
        if name != root.name and sub not in LAYERS:
            found.append(f"{name}: not in a layer (a subpackage of {sorted(k for k in LAYERS if k)})")
        n = len(mods[name].read_text().splitlines())
        if n > MAX_LINES:
            found.append(f"{name}: {n} lines (more than {MAX_LINES}: split it by concern)")
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for imp in imports(root):
        src, dst = subpackage(imp.source), subpackage(imp.target)
        where = f"{imp.source} line {imp.line} ({imp.text})"
        private = [n for n in imp.names if n.startswith("_") and not n.startswith("__")]
        if private and imp.target != imp.source:
            found.append(f"{where}: imports private name(s) {private} of another module")
        if imp.nested and NESTED_OK not in imp.text:
            found.append(f"{where}: import inside a function (move it to the top, or say why with "
                         f"'{NESTED_OK} <reason>')")
        if src != dst:
            if src in STUDIES and dst in STUDIES:
                found.append(f"{where}: study {src} imports study {dst} (move what both need below them)")
            elif LAYERS.get(dst, 99) >= LAYERS.get(src, -1):
                found.append(f"{where}: {src or 'anapart'} (layer {LAYERS.get(src)}) imports "
                             f"{dst or 'anapart'} (layer {LAYERS.get(dst)}): imports only go down")
        if not imp.nested and imp.target in graph and imp.target != imp.source:
            graph[imp.source].add(imp.target)
    found += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp) + [sorted(comp)[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def longest_chain(root: Path) -> list[str]:
    """The longest path of module-level imports (the depth a newcomer must read through)."""
    graph: dict[str, set[str]] = {m: set() for m in modules(root)}
    for imp in imports(root):
        if not imp.nested and imp.target in graph and imp.target != imp.source:
            graph[imp.source].add(imp.target)
    best: dict[str, list[str]] = {}

    def walk(v, seen=()):
        if v in best:
            return best[v]
        paths = [walk(w, seen + (v,)) for w in graph[v] if w not in seen]
        best[v] = [v] + max(paths, key=len, default=[])
        return best[v]

    return max((walk(v) for v in graph), key=len)
