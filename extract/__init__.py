"""Stage 1: load a checkpoint, run a probe set, record attention, reduce to head metrics and a feature row.

The public names are imported lazily so that `import extract.features` (torch-free) stays cheap
for the predictor and the service.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "HeadcastError": "extract.errors",
    "Probe": "extract.probes",
    "read_probes": "extract.probes",
    "probe_set_hash": "extract.probes",
    "Checkpoint": "extract.loading",
    "load_checkpoint": "extract.loading",
    "build_prompt": "extract.prompts",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'extract' has no attribute {name!r}")
