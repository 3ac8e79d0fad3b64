"""Package layout: no import cycles (function-level imports included), and no stage names its code
by hand: a `code=` given to a Stage is an entry (a module or the function doing the work), whose
transitive imports `acoustic_kd.codesig` computes."""

from __future__ import annotations

import ast
from pathlib import Path

from acoustic_kd.codesig import direct_imports

PKG = Path(__file__).resolve().parents[1] / "acoustic_kd"


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def test_no_import_cycles_even_through_function_level_imports():
    graph = {m: direct_imports(m, PKG.parent, with_packages=True) for m in _modules()}
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


def test_no_stage_lists_its_code_by_hand():
    """Every `code=` keyword names functions or modules (`__name__`), never module names written as
    strings, and no module keeps a `*_CODE` list."""
    bad = []
    for p in PKG.rglob("*.py"):
        where = str(p.relative_to(PKG.parent))
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "code" and \
                    any(isinstance(c, ast.Constant) for c in ast.walk(node.value)):
                bad.append(f"{where}:{node.value.lineno} code={ast.unparse(node.value)}")
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("_CODE")
                                                      for t in node.targets):
                bad.append(f"{where}:{node.lineno} {ast.unparse(node.targets[0])}")
    assert not bad, "code named by hand (pass the entry function or module): " + ", ".join(bad)


def _commands_building_stages(pkg: Path) -> list[str]:
    """commands/*.py that build a Stage or import the stage contract (each step package owns its
    Job, whose stage() does that)."""
    bad = []
    for p in sorted((pkg / "commands").glob("*.py")):
        mod = f"{pkg.name}.commands.{p.stem}"
        calls = [n.lineno for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                 if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None))
                 == "Stage"]
        if calls or f"{pkg.name}.stage" in direct_imports(mod, pkg.parent):
            bad.append(f"{p.name}:{calls[0] if calls else 1}")
    return bad


def _wrong_way_imports(pkg: Path) -> list[str]:
    """A command importing another command, or a package module importing the CLI or a command
    (packages ask each other through their Jobs and cores)."""
    bad = []
    cli, cmds = f"{pkg.name}.cli", f"{pkg.name}.commands"
    for m in _modules_under(pkg):
        is_cmd = m.startswith(cmds + ".")
        for n in sorted(direct_imports(m, pkg.parent)):
            if is_cmd and n.startswith(cmds + "."):
                bad.append(f"{m} -> {n}")
            elif not is_cmd and m not in (cli, cmds) and (n in (cli, cmds) or n.startswith(cmds + ".")):
                bad.append(f"{m} -> {n}")
    return bad


def _modules_under(pkg: Path) -> list[str]:
    out = []
    for p in pkg.rglob("*.py"):
        parts = list(p.relative_to(pkg.parent).with_suffix("").parts)
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(out)


def test_commands_only_turn_options_into_a_job():
    bad = _commands_building_stages(PKG)
    assert not bad, "commands that build a Stage themselves (move it into the step's Job): " + \
        ", ".join(bad)


def test_no_command_imports_another_and_no_package_imports_the_cli():
    bad = _wrong_way_imports(PKG)
    assert not bad, "imports the wrong way (ask the step's Job instead): " + ", ".join(bad)
