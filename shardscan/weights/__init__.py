"""Weight-anomaly statistics: per-block partials, exact ordered merge, integrity detectors.

Format-independent: callers hand over the raw little-endian elements of one block of a tensor
(``blocks.block_partial``), merge the partials of a tensor in block order (``merge.merge``) and
run the detectors (``detectors.detect``). Nothing here reads files or builds findings.

``merge`` is not re-exported: the submodule of that name would shadow the function once
imported. Names are loaded lazily (PEP 562): importing ``shardscan.weights.spans`` from a scanner must not
pull in NumPy, which only the analysis itself needs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BlockPartial": "shardscan.weights.blocks",
    "block_partial": "shardscan.weights.blocks",
    "Evidence": "shardscan.weights.detectors",
    "detect": "shardscan.weights.detectors",
    "MergeError": "shardscan.weights.merge",
    "TensorStats": "shardscan.weights.merge",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'shardscan.weights' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
