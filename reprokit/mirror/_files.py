"""Shared by the file-based backends (TensorBoard, CSV): one folder per run, rewritten whole.

A replay writes the run's folder into a staging folder and swaps it in at ``finish``, so
replaying the same run again replaces it instead of appending duplicate events, and a failed
replay leaves the previous folder untouched. The folder a training filled live (``RunInfo.live_id``)
is adopted by the first pipeline run mirrored without a folder of its own yet: everything it received
is in the run folder the replay reads, with the same wall times, so the pipeline run's folder is
written whole and the live one removed once it is in place; a later pipeline run on the same
training finds no live folder left and gets a folder of its own.
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
        live_id, live_name = run.live_id, run.live_name
        adopt = not self.final.exists()
        self.live = paths.live_folder(root, live_name, live_id) if adopt and live_id and live_name else None

    def copy_in(self, rel: str, src: Path) -> Path:
        dst = self.staging / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return dst

    def publish(self) -> dict[str, Any]:
        paths.publish(self.staging, self.final, self.run.run_id, self.run.run_name)
        out = {"logger_run_id": self.run.run_id, "run_name": self.run.run_name, "log_dir": str(self.final)}
        if self.live is not None and self.live != self.final:
            shutil.rmtree(self.live, ignore_errors=True)  # adopted: its events are all in the folder just published
            out["adopted_live_run"] = self.live.name
        return out

    def discard(self) -> None:
        paths.discard(self.staging)
