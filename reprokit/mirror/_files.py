"""Shared by the file-based backends (TensorBoard, CSV): one folder per run, rewritten whole.

A replay writes the run's folder into a staging folder and swaps it in at ``finish``, so
replaying the same run again replaces it instead of appending duplicate events, and a failed
replay leaves the previous folder untouched. The folder a training filled live is replaced the same
way: everything it received is in the run folder the replay reads, with the same wall times.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from reprokit.mirror import paths
from reprokit.mirror.base import RunInfo

__all__ = ["RunFolder"]


class RunFolder:
    def __init__(self, root: Path, run: RunInfo) -> None:
        self.final = paths.run_folder(root, run.run_name, run.run_id)
        self.staging = paths.staging_dir(self.final, run.home_dir)
        self.run = run

    def copy_in(self, rel: str, src: Path) -> Path:
        dst = self.staging / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return dst

    def publish(self) -> dict[str, Any]:
        paths.publish(self.staging, self.final, self.run.run_id, self.run.run_name, self.run.claim)
        return {"logger_run_id": self.run.run_id, "run_name": self.run.run_name, "log_dir": str(self.final)}

    def discard(self) -> None:
        paths.discard(self.staging)


def folder_claim(root: Path, run: RunInfo) -> dict[str, str] | None:
    return paths.recorded_claim(root, run.run_name, run.run_id)
