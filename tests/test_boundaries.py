"""Module boundaries from the architecture page that keep the CLI and the service quick to start."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


def test_parsing_the_command_line_and_importing_the_predictor_load_no_torch():
    code = (
        "import sys, headcast.cli, headcast.predictor.service, headcast.predictor.tracking,"
        " headcast.extract.features;"
        "headcast.cli.build_parser();"
        "sys.exit(('torch' in sys.modules) or ('transformers' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


CLI_MODULES = {
    "headcast.cli",
    "headcast.predictor.cli",
    "headcast.extract.cli",
    "headcast.experiments.cli",
    "headcast.predictor.service.cli",
    "headcast.experiments.report.cli",
}
ENTRY_POINTS = {"headcast/cli.py", "headcast/__main__.py"}  # what may wire the command-line modules together


def _imported_modules(tree: ast.AST) -> set[str]:
    """Every module an `import` or `from ... import` names, at any depth (lazy imports included)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_no_library_module_imports_a_command_line_module():
    """Library code (the service, the callback, experiments) takes what it needs from library modules;
    a CLI module is a leaf that only the `headcast` entry point imports."""
    repo = Path(__file__).resolve().parents[1]
    offenders = []
    for package in ("extract", "predictor", "experiments", "headcast"):
        for path in sorted((repo / package).rglob("*.py")):
            where = path.relative_to(repo).as_posix()
            if where in ENTRY_POINTS:
                continue
            imported = _imported_modules(ast.parse(path.read_text(encoding="utf-8"), filename=where))
            offenders += [f"{where} imports {name}" for name in sorted(imported & CLI_MODULES)]
    assert not offenders, "; ".join(offenders)
