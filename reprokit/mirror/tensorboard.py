"""TensorBoard: event files under ``logs/tensorboard/<run_name>/`` (``logger.args.log_dir`` = the root).

``tensorboard --logdir logs/tensorboard`` (or ``%tensorboard --logdir logs/tensorboard`` in a
notebook) shows every run side by side. Written with tensorboard's own event writer and summary
protos (no torch import, PNGs stored as they are, not re-encoded). Images are image-plugin tensors
(``[width, height, png, ...]``, what ``tf.summary.image`` writes): TensorBoard's UI shows one image
event per tag and step, so several images under one key at one step are the samples of one event,
in order. Texts follow the convention of ``SummaryWriter.add_text`` (tag ``<tag>/text_summary``);
hyperparameters go to the HParams plugin; tags are a text (``reprokit/tags``); artifacts are copied
to ``<run>/artifacts/``. Scalars carry the wall time training logged them at.

Live (:class:`TensorBoardLive`): while the train stage runs, its values go into the training's own
folder ``logs/tensorboard/<train run_name>/`` as they are logged, flushed at every epoch end, so
``tensorboard --logdir logs/tensorboard`` shows the curves grow. The mirror stage then rewrites
it whole under the pipeline run's name and removes the live folder (the first pipeline run on a
training adopts it, see ``reprokit.mirror._files``): every event once, the live ones with the same
values and times.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image
from tensorboard.compat.proto import (
    event_pb2,
    summary_pb2,
    tensor_pb2,
    tensor_shape_pb2,
)
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.text import plugin_data_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from reprokit.core.console import shown_path
from reprokit.mirror import paths as run_paths
from reprokit.mirror._files import RunFolder
from reprokit.mirror.base import LiveWriter, MirrorBackend, RunInfo
from reprokit.mirror.paths import resolve
from reprokit.mirror.runfolder import Media, Scalar
from reprokit.mirror.tags import key_value_tags

__all__ = ["TensorBoardBackend", "TensorBoardLive"]

_DEFAULT_ROOT = "logs/tensorboard"


def _string_tensor(values: list[bytes]) -> tensor_pb2.TensorProto:
    return tensor_pb2.TensorProto(
        dtype="DT_STRING",
        string_val=values,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))]),
    )


def _images_summary(tag: str, paths: list[Path]) -> summary_pb2.Summary:
    """One image-plugin event holding every PNG in ``paths`` as its samples (width/height: the first's)."""
    with Image.open(paths[0]) as im:
        width, height = im.size
    for path in paths[1:]:  # a file that is no image fails here, as the first one does above
        Image.open(path).close()
    meta = image_metadata.create_summary_metadata(display_name=tag, description="")
    meta.data_class = summary_pb2.DATA_CLASS_BLOB_SEQUENCE
    tensor = _string_tensor([str(width).encode(), str(height).encode(), *(p.read_bytes() for p in paths)])
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, metadata=meta, tensor=tensor)])


def _text_summary(tag: str, text: str) -> summary_pb2.Summary:
    meta = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name="text", content=plugin_data_pb2.TextPluginData(version=0).SerializeToString()
        )
    )
    tensor = _string_tensor([text.encode("utf-8")])
    value = summary_pb2.Summary.Value(tag=f"{tag}/text_summary", metadata=meta, tensor=tensor)
    return summary_pb2.Summary(value=[value])


def _scalar_summary(s: Scalar) -> summary_pb2.Summary:
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=s.tag, simple_value=s.value)])


def _hparam_value(value: Any) -> bool | int | float | str:
    return value if isinstance(value, (bool, int, float, str)) else str(value)


class TensorBoardBackend(MirrorBackend):
    name = "tensorboard"
    allowed_args = {"log_dir": "root folder of the runs (default logs/tensorboard)"}

    def start(self, run: RunInfo) -> None:
        root = resolve(run.home_dir, self.args.get("log_dir", _DEFAULT_ROOT))
        # A sweep's trials side by side: `tensorboard --logdir logs/tensorboard/<sweep>` compares them.
        self.folder = RunFolder(root / run.sweep if run.sweep else root, run)
        self.writer = EventFileWriter(str(self.folder.staging), max_queue_size=1000, flush_secs=3600)
        self.images: dict[tuple[int, str], list[Path]] = defaultdict(list)  # (step, tag) -> PNGs, in order

    def _add(self, summary: summary_pb2.Summary, step: int, wall_time: float | None = None) -> None:
        at = time.time() if wall_time is None else wall_time
        self.writer.add_event(event_pb2.Event(wall_time=at, step=step, summary=summary))

    def log_params(self, params: Mapping[str, Any]) -> None:
        if params:
            self._add(hparams_summary.hparams_pb({k: _hparam_value(v) for k, v in params.items()}), 0)

    def log_tags(self, user_tags: list[str], key_values: Mapping[str, str]) -> None:
        run = self.folder.run
        tags = key_value_tags(run.run_id, run.run_name, user_tags, key_values)
        rows = ["| tag | value |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in tags.items()]
        rows += [f"| {t} | |" for t in user_tags]
        self._add(_text_summary("reprokit/tags", "\n".join(rows)), 0)

    def log_scalars(self, scalars: list[Scalar]) -> None:
        for s in scalars:
            self._add(_scalar_summary(s), s.step, s.wall_time)

    def log_image(self, image: Media) -> None:
        self.images[(image.step, image.tag)].append(image.path)  # written at finish, one event per tag and step

    def log_text(self, text: Media) -> None:
        self._add(_text_summary(text.tag, text.text or ""), text.step)

    def log_artifact(self, name: str, path: Path) -> None:
        self.folder.copy_in(f"artifacts/{name}", path)

    @classmethod
    def how_to_open(cls, where: Mapping[str, Any]) -> str | None:
        # The root holds every run: TensorBoard then shows them side by side.
        return (
            f"open it: tensorboard --logdir {shown_path(Path(where['log_dir']).parent)}"
            if where.get("log_dir")
            else None
        )

    def finish(self) -> dict[str, Any]:
        for (step, tag), paths in sorted(self.images.items()):
            self._add(_images_summary(tag, paths), step)
        self.writer.close()
        return self.folder.publish()

    def abort(self) -> None:
        if hasattr(self, "writer"):
            self.writer.close()
            self.folder.discard()


class TensorBoardLive(LiveWriter):
    """A training's values, into its own run folder, as they are logged (an event file of their own)."""

    def start(self, run: RunInfo) -> None:
        root = resolve(run.home_dir, self.args.get("log_dir", _DEFAULT_ROOT))
        root = root / run.sweep if run.sweep else root  # where the mirror stage looks for it
        self.folder = run_paths.run_folder(root, run.run_name, run.run_id)
        run_paths.mark_live(self.folder, run.run_id, run.run_name)
        self.writer = EventFileWriter(str(self.folder), max_queue_size=1000, flush_secs=3600, filename_suffix=".live")

    def write(self, scalars: list[Scalar]) -> None:
        for s in scalars:
            at = time.time() if s.wall_time is None else s.wall_time
            self.writer.add_event(event_pb2.Event(wall_time=at, step=s.step, summary=_scalar_summary(s)))
        self.writer.flush()

    def close(self, finished: bool) -> None:
        self.writer.close()


TensorBoardBackend.live = TensorBoardLive
