"""Weights & Biases: one W&B run per pipeline run (W&B id = run_id), offline by default.

Args: ``project`` (default ``reprokit``), ``mode`` (``offline`` default, ``online``,
``disabled``), ``dir`` (default ``<home>/logs``: runs land in ``logs/wandb/offline-run-*``;
``wandb sync logs/wandb/offline-run-*`` uploads them later), ``entity``. ``WANDB_API_KEY`` from
the environment only.

W&B's history needs increasing steps, so everything is buffered and logged at ``finish`` in
step order with ``step=`` the trainer step (``_step`` then equals the trainer step). W&B keeps one
value per key and step: several images under one key at one step are logged as a list. Texts are
one table per tag (columns step, text; a row per text) under ``text/<tag>``; files are one artifact
``reprokit-<run_id>`` of type ``reprokit-run``. Tags longer than W&B's limit (``MAX_TAG_LENGTH``) are cut.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import wandb

from reprokit.core.config import MAX_TAG_LENGTH
from reprokit.core.console import shown_path
from reprokit.core.errors import ConfigError
from reprokit.mirror.base import MirrorBackend, RunInfo
from reprokit.mirror.paths import resolve
from reprokit.mirror.runfolder import Media, Scalar
from reprokit.mirror.tags import flat_tags, key_value_tags

__all__ = ["WandbBackend"]

_MODES = ("offline", "online", "disabled")


class WandbBackend(MirrorBackend):
    name = "wandb"
    allowed_args = {
        "project": "W&B project (default reprokit)",
        "mode": "offline (default), online or disabled",
        "dir": "folder that receives wandb/ (default logs)",
        "entity": "W&B entity (team or user)",
    }

    def check_config(self) -> None:
        mode = self.args.get("mode", "offline")
        if mode not in _MODES:
            raise ConfigError(f"logger.args.mode for 'wandb' must be one of {', '.join(_MODES)}; got {mode!r}")

    def start(self, run: RunInfo) -> None:
        out_dir = resolve(run.home_dir, self.args.get("dir", "logs"))
        out_dir.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(
            silent=True,
            console="off",
            disable_git=True,  # the run folder already records git state; and cwd may not be the repo
            save_code=False,
            x_disable_stats=True,
            x_disable_meta=True,
            x_disable_machine_info=True,
            x_save_requirements=False,
        )
        self.wb = wandb.init(
            mode=self.args.get("mode", "offline"),
            project=str(self.args.get("project", "reprokit")),
            entity=self.args.get("entity"),
            dir=str(out_dir),
            id=run.run_id,
            name=run.run_name,
            group=run.sweep,  # a sweep's trials: one W&B group (None: no group)
            job_type="sweep-trial" if run.sweep else None,
            resume="allow",
            settings=settings,
        )
        self.run = run
        self.rows: dict[int, dict[str, Any]] = defaultdict(dict)
        self.texts: dict[str, list[list[Any]]] = defaultdict(list)
        self.files: list[tuple[str, Path]] = []

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.wb.config.update(dict(params), allow_val_change=True)

    def log_tags(self, user_tags: list[str], key_values: Mapping[str, str]) -> None:
        self.wb.tags = tuple(t[:MAX_TAG_LENGTH] for t in flat_tags(user_tags, key_values))
        self.wb.config.update(key_value_tags(self.run.run_id, self.run.run_name, user_tags, key_values))

    def log_scalars(self, scalars: list[Scalar]) -> None:
        for s in scalars:
            self.rows[s.step][s.tag] = s.value

    def log_image(self, image: Media) -> None:
        # W&B keeps one value per key and step: several images at one step travel as a list.
        row = self.rows[image.step]
        img = wandb.Image(str(image.path))
        if image.occurrence == 0 or image.tag not in row:
            row[image.tag] = img
        else:
            row[image.tag] = [*(row[image.tag] if isinstance(row[image.tag], list) else [row[image.tag]]), img]

    def log_text(self, text: Media) -> None:
        self.texts[text.tag].append([text.step, text.text or ""])

    def log_artifact(self, name: str, path: Path) -> None:
        self.files.append((name, path))

    @classmethod
    def how_to_open(cls, where: Mapping[str, Any]) -> str | None:
        return f"upload it: wandb sync {shown_path(where['run_dir'])}" if where.get("run_dir") else None

    def finish(self) -> dict[str, Any]:
        last = max(self.rows, default=0)
        for tag, rows in self.texts.items():
            self.rows[last][f"text/{tag}"] = wandb.Table(columns=["step", "text"], data=rows)
        for step in sorted(self.rows):
            self.wb.log(self.rows[step], step=step)
        if self.files:
            art = wandb.Artifact(f"reprokit-{self.run.run_id}", type="reprokit-run")
            for name, path in self.files:
                art.add_file(str(path), name=name)
            self.wb.log_artifact(art)
        run_dir = Path(self.wb.dir).parent  # .../wandb/offline-run-<time>-<id>
        self.wb.finish()
        # finish() only *informs* W&B's service process that the run is done (wandb 0.31:
        # `inform_finish` is sent, not awaited): the service closes the run's record file
        # (run-<id>.wandb) later, and a replay that starts at once under the same run id, or a reader,
        # can meet a half-written file. With no other W&B run open in this process, shutting the
        # service down waits for it to close every file; the next run starts a new service (~1 s).
        if wandb.setup().most_recent_active_run is None:
            wandb.teardown()
        return {"logger_run_id": self.run.run_id, "run_name": self.run.run_name, "run_dir": str(run_dir)}

    def abort(self) -> None:
        if hasattr(self, "wb"):
            self.wb.finish(exit_code=1)
