"""Mirror a finished run folder into the configured experiment logger.

Local files under ``runs/`` are the truth; a logger is a mirror. ``mirror_run`` replays one
pipeline run's files in one process into one logger run (TensorBoard by default; CSV, MLflow,
ClearML offline, W&B offline), so every backend gets one logger run per pipeline run, and a
logger that was down can be filled in later. Backends are imported only when chosen.

    from reprokit.mirror import mirror_run
    report = mirror_run(runs_dir="runs", logger=cfg.logger, tags=cfg.tags, project_dir=".")
"""

from __future__ import annotations

from reprokit.mirror.registry import BACKENDS
from reprokit.mirror.replay import mirror_run, reproduction_logger

__all__ = ["mirror_run", "reproduction_logger", "BACKENDS"]
