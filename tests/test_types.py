"""The package type-checks: mypy over `headcast` as installed, the way an editor follows it.

mypy runs outside the repository so that it reads the installed import namespace (the strict editable
install's link tree, docs/architecture.md), not the `headcast/` folder alone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_type_errors_in_the_package(tmp_path):
    command = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml")]
    command += ["--cache-dir", str(REPO / ".mypy_cache")]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
