"""Stage 1: load a checkpoint, run a probe set, record attention, reduce to head metrics and a feature row.

The public names are imported lazily so that `import headcast.extract.features` (torch-free) stays cheap
for the predictor and the service.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "Probe": "headcast.extract.probes",
    "read_probes": "headcast.extract.probes",
    "probe_set_hash": "headcast.extract.probes",
    "Checkpoint": "headcast.extract.loading",
    "load_checkpoint": "headcast.extract.loading",
    "build_prompt": "headcast.extract.prompts",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'headcast.extract' has no attribute {name!r}")
