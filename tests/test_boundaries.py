"""Module boundaries from the architecture page that keep the CLI and the service quick to start."""

from __future__ import annotations

import subprocess
import sys


def test_parsing_the_command_line_and_importing_the_predictor_load_no_torch():
    code = (
        "import sys, headcast.cli, predictor.service, predictor.tracking, extract.features;"
        "headcast.cli.build_parser();"
        "sys.exit(('torch' in sys.modules) or ('transformers' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
