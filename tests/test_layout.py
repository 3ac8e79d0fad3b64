"""Package layout: no import cycles (function-level imports included), and every module a stage
names as its code is a module that exists (a stale name would hash as 'missing')."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "acoustic_kd"


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


def _imports(mod: str, path: Path, is_pkg: bool, mods: dict) -> set[str]:
    """acoustic_kd modules `mod` imports anywhere in its source (module level or in a function),
    with the packages an import runs on the way; its own parent packages are left out (they are
    always imported first, so they cannot close a cycle)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".")[:None if is_pkg else -1]
                base = base[:len(base) - node.level + 1]
                full = ".".join(base + ([node.module] if node.module else []))
            else:
                full = node.module or ""
            targets = [full] + [f"{full}.{a.name}" for a in node.names if f"{full}.{a.name}" in mods]
        else:
            continue
        for t in targets:
            parts = t.split(".")
            for i in range(1, len(parts) + 1):
                q = ".".join(parts[:i])
                if q in mods and q != mod and not mod.startswith(q + "."):
                    out.add(q)
    return out


def test_no_import_cycles_even_through_function_level_imports():
    mods = _modules()
    graph = {m: _imports(m, p, is_pkg, mods) for m, (p, is_pkg) in mods.items()}
    state: dict[str, int] = {}   # 1 = on the current path, 2 = done
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(path[path.index(n):] + [n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _code_names() -> list[tuple[str, str]]:
    """(file, module name) for every string in a stage's `code=[...]` or a `*_CODE` list."""
    out = []
    for p in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            lists = []
            if isinstance(node, ast.keyword) and node.arg == "code":
                lists.append(node.value)
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("_CODE")
                                                      for t in node.targets):
                lists.append(node.value)
            for v in lists:
                out += [(str(p.relative_to(PKG.parent)), c.value) for c in ast.walk(v)
                        if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    return out


def test_stage_code_names_are_existing_modules():
    names = _code_names()
    assert len(names) > 30   # the lists were found
    bad = []
    for where, name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or spec.submodule_search_locations is not None:
            bad.append(f"{where}: {name}")   # missing, or a package (only its __init__ is hashed)
    assert not bad, "stage code names that are not modules: " + ", ".join(bad)
