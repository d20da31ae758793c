"""MLflow: one MLflow run per pipeline run, found again on replay by its ``reprokit.run_id`` tag.
A sweep trial's run is a nested child (``mlflow.parentRunId``) of one parent run named after the sweep.

Args: ``tracking_uri`` (default ``sqlite:///<home>/logs/mlflow.db``; MLflow 3 refuses its old
file store, so a ``file:`` or bare-path URI is a ConfigError), ``experiment_name`` (default
``reprokit``), ``artifact_location`` (for a new experiment; default ``<home>/logs/mlflow-artifacts``
with a sqlite store, the server's choice with a server). Tokens: ``MLFLOW_TRACKING_TOKEN`` etc.
from the environment only.

A dead server must cost seconds: unless the user set them, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0``
and ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (<= logger.timeout_s) are set while this backend runs.
MLflow keys cannot hold ``@``: ``validate/cmc@1`` is logged as ``validate/cmc_at_1`` (see
``mlflow_key``; the report notes it). Replaying into an existing run skips metric points already there, so a replay after a partial
one fills the run in without duplicates. Live (:class:`MlflowLive`): the train stage logs into a run
tagged with the training's run id; the first pipeline run mirrored on that training, finding no run
of its own, adopts it (re-tagged with the pipeline run's id, renamed to its name: the same MLflow
run, its URL unchanged), keeps the points that reached it during training and adds the others; a
later pipeline run on the same training finds no such run left and gets one of its own. Each
point's timestamp is the wall time training logged it at. Images and texts are artifacts under
``images/<tag>/<step>.png`` and ``text/<tag>/<step>.txt`` (``<step>-<n>.png`` for further media
under one key at one step); run files under their run-folder path.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from reprokit.core.errors import ConfigError
from reprokit.mirror.base import LiveWriter, MirrorBackend, RunInfo
from reprokit.mirror.runfolder import Media, Scalar
from reprokit.mirror.tags import key_value_tags

__all__ = ["MlflowBackend", "MlflowLive", "public_uri", "mlflow_key"]

RUN_TAG = "reprokit.run_id"

_KEY_OK = re.compile(r"^[\w\-. /]+$")  # MLflow's allowed characters for keys (':' too, not on Windows)
_KEY_BAD = re.compile(r"[^\w\-. /]")


def mlflow_key(name: str) -> str:
    """MLflow refuses '@' (and more) in keys: ``cmc@1`` -> ``cmc_at_1``; other bad characters -> ``_``."""
    return _KEY_BAD.sub("_", name.replace("@", "_at_"))


_MAX_PARAM = 6000
_BATCH = 1000


def public_uri(uri: str) -> str:
    """``uri`` without user:password, for reports and messages."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return uri


class MlflowBackend(MirrorBackend):
    name = "mlflow"
    allowed_args = {
        "tracking_uri": "sqlite:///path.db or http://host:port (default sqlite:///logs/mlflow.db)",
        "experiment_name": "MLflow experiment (default reprokit)",
        "artifact_location": "artifact root of a newly created experiment",
    }

    def check_config(self) -> None:
        uri = self.args.get("tracking_uri")
        if uri is not None and urlsplit(str(uri)).scheme in ("", "file"):
            raise ConfigError(
                f"logger.args.tracking_uri {public_uri(str(uri))!r} is MLflow's file store, which MLflow 3 refuses; "
                "use sqlite:///path/to/mlflow.db or http://host:port"
            )

    def _connect(self, run: RunInfo) -> str:
        """Client and experiment (created if needed), once per backend; returns the experiment id."""
        if getattr(self, "exp_id", None) is not None:
            return self.exp_id
        logs = run.home_dir / "logs"
        uri = str(self.args.get("tracking_uri", f"sqlite:///{logs / 'mlflow.db'}"))
        scheme = urlsplit(uri).scheme
        if scheme == "sqlite":
            logs.mkdir(parents=True, exist_ok=True)
        self.uri = uri
        # Fail fast against a dead server (default retries block for minutes), within the deadline.
        self.set_env_default("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        self.set_env_default("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, int(min(run.timeout_s, 30)))))
        self.client = MlflowClient(tracking_uri=uri)
        self.experiment = str(self.args.get("experiment_name", "reprokit"))
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            location = self.args.get("artifact_location")
            if location is None and scheme == "sqlite":
                location = (logs / "mlflow-artifacts").as_uri()
            self.exp_id: str = self.client.create_experiment(self.experiment, artifact_location=location)
        else:
            self.exp_id = exp.experiment_id
        return self.exp_id

    def _find(self, run: RunInfo, run_id: str):
        exp_id = self._connect(run)
        found = self.client.search_runs([exp_id], filter_string=f"tags.`{RUN_TAG}` = '{run_id}'", max_results=1)
        return found[0] if found else None

    def start(self, run: RunInfo) -> None:
        exp_id = self._connect(run)
        # A sweep's trials are nested runs of one parent run named after the sweep.
        parent = {"mlflow.parentRunId": self._sweep_parent(exp_id, run.sweep)} if run.sweep else {}
        found = self._find(run, run.run_id)
        if found is None and run.live_id:
            found = self._find(run, run.live_id)  # the run the training filled live: adopted
            if found is not None:
                self.client.set_tag(found.info.run_id, RUN_TAG, run.run_id)
                self.client.update_run(found.info.run_id, name=run.run_name)
                self.notes.append(f"completed the run training logged into live ({run.live_name})")
        if found is not None:
            self.mlflow_run = found
            self.client.update_run(self.mlflow_run.info.run_id, status="RUNNING")
            for key, value in parent.items():
                self.client.set_tag(self.mlflow_run.info.run_id, key, value)
        else:
            self.mlflow_run = self.client.create_run(
                exp_id, run_name=run.run_name, tags={RUN_TAG: run.run_id, **parent}
            )
        self.run_id = self.mlflow_run.info.run_id
        self.run = run
        self._seen: dict[str, set[tuple[int, float]]] | None = None

    def _sweep_parent(self, exp_id: str, sweep: str) -> str:
        """The sweep's parent run, found by its ``reprokit.sweep_parent`` tag or created. Two trials that
        create it at once both keep the older one (start time, then id) and the younger is deleted."""

        def oldest() -> list:
            runs = self.client.search_runs(
                [exp_id], filter_string=f"tags.`reprokit.sweep_parent` = '{sweep}'", max_results=50
            )
            return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

        found = oldest()
        if found:
            return found[0].info.run_id
        mine = self.client.create_run(exp_id, run_name=sweep, tags={"reprokit.sweep_parent": sweep, "sweep": sweep})
        self.client.set_terminated(mine.info.run_id, "FINISHED")
        winner = oldest()[0].info.run_id
        if winner != mine.info.run_id:
            self.client.delete_run(mine.info.run_id)
        return winner

    def log_params(self, params: Mapping[str, Any]) -> None:
        have = self.mlflow_run.data.params
        todo = [Param(mlflow_key(k), str(v)[:_MAX_PARAM]) for k, v in params.items() if mlflow_key(k) not in have]
        for i in range(0, len(todo), 100):  # MLflow's per-call limit for params
            self.client.log_batch(self.run_id, params=todo[i : i + 100], synchronous=True)

    def log_tags(self, user_tags: list[str], key_values: Mapping[str, str]) -> None:
        tags = key_value_tags(self.run.run_id, self.run.run_name, user_tags, key_values)
        tags.update({t: "true" for t in user_tags if _KEY_OK.match(t) and t not in tags})
        todo = [RunTag(k, v) for k, v in tags.items()]
        for i in range(0, len(todo), 100):
            self.client.log_batch(self.run_id, tags=todo[i : i + 100], synchronous=True)

    def _points(self) -> dict[str, set[tuple[int, float]]]:
        """(step, value) of every point the run holds, read once (only a reused run has any), then kept up to date."""
        if self._seen is None:
            self._seen = {
                key: {(m.step, m.value) for m in self.client.get_metric_history(self.run_id, key)}
                for key in self.mlflow_run.data.metrics
            }
        return self._seen

    def log_scalars(self, scalars: list[Scalar]) -> None:
        seen = self._points()
        now = int(time.time() * 1000)
        todo, fresh = [], []
        for s in scalars:
            key = mlflow_key(s.tag)
            if (s.step, s.value) in seen.get(key, ()):
                continue
            at = now if s.wall_time is None else int(round(s.wall_time * 1000))
            todo.append(Metric(key, s.value, at, s.step))
            fresh.append((key, (s.step, s.value)))
        renamed = sorted({s.tag for s in scalars if mlflow_key(s.tag) != s.tag})
        if renamed:
            self.notes.append(
                f"MLflow refuses '@' in metric names: {len(renamed)} metric(s) renamed, e.g. "
                f"{renamed[0]} -> {mlflow_key(renamed[0])}"
            )
        for i in range(0, len(todo), _BATCH):
            self.client.log_batch(self.run_id, metrics=todo[i : i + _BATCH], synchronous=True)
            for key, point in fresh[i : i + _BATCH]:
                seen.setdefault(key, set()).add(point)

    def _log_as(self, src: Path, artifact_path: str, name: str) -> None:
        """Upload ``src`` as ``artifact_path/name`` (MLflow keeps the local file name)."""
        if src.name == name:
            self.client.log_artifact(self.run_id, str(src), artifact_path)
            return
        with tempfile.TemporaryDirectory(prefix="reprokit-mlflow-") as tmp:
            dst = Path(tmp) / name
            shutil.copyfile(src, dst)
            self.client.log_artifact(self.run_id, str(dst), artifact_path)

    def log_image(self, image: Media) -> None:
        self._log_as(image.path, f"images/{image.tag}", image.file_name(".png"))

    def log_text(self, text: Media) -> None:
        self._log_as(text.path, f"text/{text.tag}", text.file_name(".txt"))

    def log_artifact(self, name: str, path: Path) -> None:
        parent = Path(name).parent.as_posix()
        self.client.log_artifact(self.run_id, str(path), None if parent == "." else parent)

    @classmethod
    def how_to_open(cls, where: Mapping[str, Any]) -> str | None:
        uri = str(where.get("tracking_uri") or "")
        if uri.startswith(("http://", "https://")):
            return f"open it: {uri} in a browser"
        return f"open it: mlflow ui --backend-store-uri {uri}" if uri else None

    def finish(self) -> dict[str, Any]:
        self.client.set_terminated(self.run_id, "FINISHED")
        return {
            "logger_run_id": self.run_id,
            "run_name": self.run.run_name,
            "tracking_uri": public_uri(self.uri),
            "experiment_name": self.experiment,
            "artifact_uri": public_uri(self.mlflow_run.info.artifact_uri or ""),
        }


class MlflowLive(LiveWriter):
    """A training's values, into the MLflow run tagged with the training's run id, as they are logged.

    The run is created here (or found again, for a resumed training: points already there are not
    sent twice); the mirror stage adopts it and adds the rest. Its status is FINISHED once training
    completed (the mirror sets it RUNNING while it adds), FAILED if training failed.
    """

    def start(self, run: RunInfo) -> None:
        self.backend = MlflowBackend(self.args)
        self.backend.check_config()
        self.backend.start(run)

    def write(self, scalars: list[Scalar]) -> None:
        self.backend.log_scalars(scalars)

    def close(self, finished: bool) -> None:
        try:
            if hasattr(self.backend, "run_id"):
                self.backend.client.set_terminated(self.backend.run_id, "FINISHED" if finished else "FAILED")
        finally:
            self.backend.restore_env()


MlflowBackend.live = MlflowLive
