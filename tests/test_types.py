"""The package type-checks: mypy over the `headcast` namespace as the install maps it.

pyproject's `package-dir` puts `headcast.extract` in `extract/` (and so on), which the editable install
resolves with an import hook that static tools cannot follow. So mypy reads a view of folder links laid
out as the import namespace, made here from that same `package-dir` table.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def namespace_view(root: Path) -> Path:
    """`root/headcast/...`: each package of pyproject's `package-dir` linked where its import name puts it."""
    folders = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(folders.items()):  # parents first: `headcast` before `headcast.extract`
        where = root.joinpath(*package.split("."))
        where.mkdir(parents=True, exist_ok=True)
        for entry in (REPO / folder).iterdir():
            package_or_module = entry.suffix in (".py", ".typed") or (entry / "__init__.py").exists()
            if package_or_module and not (where / entry.name).exists():
                (where / entry.name).symlink_to(entry)
    return root


def test_mypy_finds_no_type_errors_in_the_package(tmp_path):
    view = namespace_view(tmp_path / "view")
    command = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml")]
    command += ["--cache-dir", str(REPO / ".mypy_cache")]
    env = os.environ | {"MYPYPATH": str(view)}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
