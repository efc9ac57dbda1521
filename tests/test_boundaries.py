"""Who may import whom (docs/architecture.md), checked on the source: every import, at any depth.

The core (`headcast.errors`, `schema`, `contract`, `files`, `tables`, ...) imports no stage. A stage imports
the core, itself, and another stage only through that stage's package and the names it lists in
`__all__` (`from headcast.extract import extract_features`), never its modules. Nothing imports a
command-line module but the entry point, and no import cycle joins two modules or two packages.
"""

from __future__ import annotations

import ast
import graphlib
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {
    "headcast": "headcast",
    "extract": "headcast.extract",
    "predictor": "headcast.predictor",
    "experiments": "headcast.experiments",
}
STAGES = ("headcast.extract", "headcast.predictor", "headcast.experiments")
ENTRY_POINTS = {"headcast.cli", "headcast.__main__"}  # what may wire the command-line modules together


def _modules() -> dict[str, Path]:
    """Import name -> source file, for every first-party module."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, imported name or None) for every absolute first-party import in `path`, outside
    `if TYPE_CHECKING:` blocks (those name types for checkers and never run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.startswith("headcast")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (module := node.module or ""):
            found += [(module, alias.name) for alias in node.names if module.startswith("headcast")]
    return found


def _target(module: str, name: str | None) -> str:
    """The first-party module an import loads: `from pkg import sub` loads the submodule `pkg.sub`."""
    return f"{module}.{name}" if name and f"{module}.{name}" in MODULES else module


def _stage(module: str) -> str | None:
    return next((s for s in STAGES if module == s or module.startswith(s + ".")), None)


def test_stages_meet_only_through_the_core_and_each_others_public_names():
    offenders = []
    for module, path in MODULES.items():
        mine = _stage(module)
        for imported, name in _imports(path):
            theirs = _stage(_target(imported, name))
            if module in ENTRY_POINTS or theirs is None or theirs == mine:
                continue
            where = f"{path.relative_to(REPO)} imports {imported}{'.' + name if name else ''}"
            if mine is None:
                offenders.append(f"{where}: the core imports no stage")
            elif imported != theirs or name not in importlib.import_module(theirs).__all__:
                offenders.append(f"{where}: use a name {theirs} lists in __all__")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("stage", ["headcast.extract", "headcast.predictor"])
def test_no_public_name_is_also_a_submodule(stage):
    """A package's attribute becomes its submodule once that is imported anywhere, so a public name that
    is also a submodule's would give the module, not the function, depending on import order."""
    submodules = {m.rsplit(".", 1)[-1] for m in MODULES if m.startswith(stage + ".") and m.count(".") == 2}
    assert not submodules & set(importlib.import_module(stage).__all__)


def test_no_library_module_imports_a_command_line_module():
    """Library code (the service, the callback, experiments) takes what it needs from library modules;
    a CLI module is a leaf that only the `headcast` entry point imports."""
    cli_modules = {m for m in MODULES if m.rsplit(".", 1)[-1] == "cli"}
    offenders = [
        f"{path.relative_to(REPO)} imports {target}"
        for module, path in MODULES.items()
        if module not in ENTRY_POINTS
        for imported, name in _imports(path)
        if (target := _target(imported, name)) in cli_modules
    ]
    assert not offenders, "; ".join(offenders)


def _graph(level) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        for imported, name in _imports(path):
            a, b = level(module), level(_target(imported, name))
            if a != b and not b.startswith(a + ".") and not a.startswith(b + "."):
                graph.setdefault(a, set()).add(b)
    return graph


def _package(module: str) -> str:
    return module if MODULES.get(module, Path()).name == "__init__.py" else module.rsplit(".", 1)[0]


@pytest.mark.parametrize("level", ["module", "package"])
def test_no_import_cycles(level):
    graph = _graph((lambda m: m) if level == "module" else _package)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"{level} import cycle: {' -> '.join(err.args[1])}")


def test_parsing_the_command_line_and_importing_the_predictor_load_no_torch():
    code = (
        "import sys, headcast.cli, headcast.predictor.service, headcast.predictor.tracking,"
        " headcast.predictor.predicting, headcast.tables;"
        "headcast.cli.build_parser();"
        "sys.exit(('torch' in sys.modules) or ('transformers' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
