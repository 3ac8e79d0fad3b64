"""A stage's code signature: the source hash of every acoustic_kd module its entry module imports.

The imports are read from the source (ast), never executed: `import a.b`, `from a import b` and
relative imports (`from . import x`, `from ..y import z`), at module level and inside functions.
Each acoustic_kd module found is followed in turn, so the signature covers the whole chain (an
edit to features/cmvn.py changes the signature of every stage whose code reaches it, and of no
other). A name taken from a package (`from ..corpora import CORPORA`) counts its `__init__.py`;
a parent package that Python merely runs on the way is not counted. The stage contract itself
(`NOT_FOLLOWED`) defines no result and is left out. Parsed imports and hashes are cached per file
by (path, size, mtime), so an edited file is read again.

    code_signature("acoustic_kd.nnet.stage")   # {module name: 16-hex SHA-256 of its source}
"""

from __future__ import annotations

import ast
import hashlib
import types
from functools import lru_cache
from pathlib import Path

PACKAGE = "acoustic_kd"
ROOT = Path(__file__).resolve().parents[1]   # the directory that holds the package
NOT_FOLLOWED = frozenset({f"{PACKAGE}.stage", f"{PACKAGE}.codesig"})


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of module `name` under `root` (a package's __init__.py), or None."""
    base = Path(root, *name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def entry_modules(entries) -> list[str]:
    """The module names (sorted, unique) of one entry or several: a module name, a module, or a
    function or class (its module)."""
    if isinstance(entries, (str, types.ModuleType)) or callable(entries):
        entries = [entries]
    return sorted({e if isinstance(e, str) else e.__name__ if isinstance(e, types.ModuleType)
                   else e.__module__ for e in entries})


def _key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns


@lru_cache(maxsize=None)
def _imported_names(path: str, size: int, mtime_ns: int, name: str, is_pkg: bool
                    ) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(module, names taken from it) of every import in a file, made absolute."""
    out = []
    for node in ast.walk(ast.parse(Path(path).read_bytes(), filename=path)):
        if isinstance(node, ast.Import):
            out += [(a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")[:None if is_pkg else -1]
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out.append((base, tuple(a.name for a in node.names)))
    return tuple(out)


def direct_imports(name: str, root: Path = ROOT, with_packages: bool = False) -> set[str]:
    """The acoustic_kd modules that module `name` imports anywhere in its source.

    with_packages: also the packages an import runs on the way (not `name`'s own parents, which
    always run first): what an import cycle can go through."""
    path = module_file(name, root)
    if path is None:
        raise ValueError(f"{name}: no such module under {root}")
    out: set[str] = set()
    for mod, names in _imported_names(*_key(path), name, path.name == "__init__.py"):
        if mod != PACKAGE and not mod.startswith(PACKAGE + "."):
            continue
        subs = [f"{mod}.{n}" for n in names if module_file(f"{mod}.{n}", root)]
        targets = subs + ([mod] if len(subs) < len(names) or not names else [])
        if with_packages:
            targets = [".".join(t.split(".")[:i]) for t in targets
                       for i in range(1, t.count(".") + 2)]
        out.update(t for t in targets if module_file(t, root) and t != name
                   and not name.startswith(t + "."))
    return out


def closure(entries, root: Path = ROOT) -> list[str]:
    """The entry modules and every acoustic_kd module they import, transitively (sorted)."""
    todo = entry_modules(entries)
    seen: set[str] = set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += [n for n in direct_imports(m, root) if n not in NOT_FOLLOWED and n not in seen]
    return sorted(seen)


@lru_cache(maxsize=None)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def code_signature(entries, root: Path = ROOT) -> dict[str, str]:
    """{module: short SHA-256 of its source} over `closure(entries)` (entries: `entry_modules`)."""
    return {m: _file_hash(*_key(module_file(m, root))) for m in closure(entries, root)}
