"""The package layout is the data flow: each stage imports only from the stages before it.

logs -> runs (pilots) -> areas -> law -> fit -> search -> design -> report, with the CLI on top
(docs/architecture.md). The test reads every module's imports (module level and inside
functions) and fails on an import from a later stage or on an import cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cptopt"

#: Stages in data-flow order; a module may import from its own stage and earlier ones.
STAGES = [
    (
        "cptopt._version",
        "cptopt.exceptions",
        "cptopt._processes",
        "cptopt._progress",
        "cptopt._io",
        "cptopt._validation",
    ),
    ("cptopt.schedules",),
    ("cptopt.plan",),
    ("cptopt.pilots",),
    ("cptopt.law",),
    ("cptopt.fitting",),
    ("cptopt.prediction",),
    ("cptopt.search",),
    ("cptopt.design",),
    ("cptopt.limits",),
    ("cptopt.report",),
    ("cptopt.cli",),
]
#: Modules outside the flow: the public API on top, test helpers for users' tests.
TOP = ("cptopt", "cptopt.testing")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _stage(module: str) -> int:
    for index, prefixes in enumerate(STAGES):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    if module in TOP:
        return len(STAGES)
    raise AssertionError(f"{module} belongs to no stage: add it to STAGES")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name == "cptopt" or name.startswith("cptopt.")}


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_later_stage(module: str) -> None:
    own = _stage(module)
    later = sorted(name for name in _imports(MODULES[module]) if _stage(name) > own)
    assert not later, f"{module} (stage {own}) imports from later stages: {later}"


def test_no_import_cycles() -> None:
    graph = {
        module: {name for name in _imports(path) if name in MODULES and name != module}
        for module, path in MODULES.items()
    }
    # A package's __init__ re-exports its modules: edges into it are edges into them.
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in graph[module]:
            if target.startswith(module + "."):
                continue  # a package importing its own modules to re-export them
            if state.get(target) == 1:
                cycle = trail[trail.index(target) :] + [target] if target in trail else [target]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_design_stage_sits_after_search_and_before_limits_and_report() -> None:
    """Next-pilot and the first-pilots design use the search and the law; nothing before
    them uses the design (the stage order above enforces it)."""
    order = [prefixes[0] for prefixes in STAGES]
    assert (
        order.index("cptopt.search")
        < order.index("cptopt.design")
        < order.index("cptopt.limits")
        < order.index("cptopt.report")
    )
    design = set().union(
        *(_imports(MODULES[m]) for m in MODULES if _stage(m) == _stage("cptopt.design"))
    )
    assert any(name.startswith("cptopt.search") for name in design)
    assert any(name.startswith("cptopt.law") for name in design)


#: What the command line may import: each stage through its package (``cptopt.law``, not
#: ``cptopt.law.fitted``), the shared modules, and its own modules.
FRONT_DOORS = {prefix for prefixes in STAGES for prefix in prefixes} | {"cptopt"}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _stage(m) == _stage("cptopt.cli")))
def test_the_cli_imports_each_stage_through_its_front_door(module: str) -> None:
    deep = sorted(
        name
        for name in _imports(MODULES[module])
        if name not in FRONT_DOORS and not name.startswith("cptopt.cli")
    )
    assert not deep, f"{module} imports deep modules {deep}: import them from their stage package"


#: Modules and functions that fit in a reader's head (issue 20): a Typer command's option
#: list is a manual, not logic, so a command function is measured from its body.
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _too_long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    command = path.parent.name == "cli"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = node.body[0].lineno if command else node.lineno
            length = node.end_lineno - start + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.name} ({length} lines)")
    return found


def test_modules_and_functions_fit_in_a_head() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    long_modules = [
        f"{path.relative_to(PACKAGE.parent)} ({count} lines)"
        for path in modules
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    long_functions = [name for path in modules for name in _too_long_functions(path)]
    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines: {long_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"
