"""CSV: plain files under ``logs/csv/<run_name>/`` (``logger.args.log_dir`` = the root).

``scalars.csv`` (tag, step, value), ``params.yaml`` (flattened config), ``tags.json``; what a
CSV cannot hold is copied beside it: ``images/<tag>/<step>.png``, ``text/<tag>/<step>.txt``
(``<step>-1.png``, ``<step>-2.png``, ... for further media under one key at one step, as in the run
folder), ``artifacts/<name>``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from reprokit.core.fileio import write_json, write_text
from reprokit.core.layout import PARAMS_FILE
from reprokit.mirror._files import RunFolder
from reprokit.mirror.base import MirrorBackend, RunInfo
from reprokit.mirror.paths import resolve
from reprokit.mirror.runfolder import Media, Scalar
from reprokit.mirror.tags import key_value_tags

__all__ = ["CsvBackend"]


class CsvBackend(MirrorBackend):
    name = "csv"
    allowed_args = {"log_dir": "root folder of the runs (default logs/csv)"}
    media_as_files = True

    def start(self, run: RunInfo) -> None:
        root = resolve(run.home_dir, self.args.get("log_dir", "logs/csv"))
        self.folder = RunFolder(root / run.sweep if run.sweep else root, run)  # a sweep's trials: logs/csv/<sweep>/
        self._rows: list[tuple[str, int, float]] = []

    def log_params(self, params: Mapping[str, Any]) -> None:
        write_text(self.folder.staging / PARAMS_FILE, yaml.safe_dump(dict(params), sort_keys=True))

    def log_tags(self, user_tags: list[str], key_values: Mapping[str, str]) -> None:
        run = self.folder.run
        tags = key_value_tags(run.run_id, run.run_name, user_tags, key_values)
        write_json(self.folder.staging / "tags.json", {"tags": user_tags, "key_values": tags})

    def log_scalars(self, scalars: list[Scalar]) -> None:
        self._rows += [(s.tag, s.step, s.value) for s in scalars]

    def log_image(self, image: Media) -> None:
        self.folder.copy_in(f"images/{image.tag}/{image.file_name('.png')}", image.path)

    def log_text(self, text: Media) -> None:
        self.folder.copy_in(f"text/{text.tag}/{text.file_name('.txt')}", text.path)

    def log_artifact(self, name: str, path: Path) -> None:
        self.folder.copy_in(f"artifacts/{name}", path)

    def finish(self) -> dict[str, Any]:
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")
        out.writerow(["tag", "step", "value"])
        out.writerows((tag, step, repr(value)) for tag, step, value in self._rows)
        write_text(self.folder.staging / "scalars.csv", buf.getvalue())
        return self.folder.publish()

    def abort(self) -> None:
        if hasattr(self, "folder"):
            self.folder.discard()
