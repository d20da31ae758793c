"""reprokit: metric-learning experiments as declared, versioned, reproducible DVC pipelines.

The root exposes a handful of names. ``LightningModule`` is loaded on first use, so that stages
which do not train (prepare, validate, visualize) do not pay Lightning's import time.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LightningModule", "retrieval_metrics", "load_config", "__version__"]
__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it (dynamic)


def __getattr__(name: str) -> Any:
    if name == "LightningModule":
        from reprokit.log.lightning_module import LightningModule

        return LightningModule
    if name == "retrieval_metrics":
        from reprokit.evaluate.metrics import retrieval_metrics

        return retrieval_metrics
    if name == "load_config":
        from reprokit.core.config import load_config

        return load_config
    raise AttributeError(f"module 'reprokit' has no attribute {name!r}")
