"""Read a mirrored run back with each backend's own client into one comparable ``View``.

TensorBoard: tensorboard's EventAccumulator (keep-all size guidance); images through the data
provider its UI reads (it shows one image event per tag and step). CSV: the files. MLflow:
MlflowClient. ClearML: the offline session zip (task.json, metrics.jsonl, data/). W&B: the
offline ``run-<id>.wandb`` record file. wandb 0.31 ships no reader for it, so ``wandb_records``
walks its LevelDB-style log framing (7-byte file header ``:W&B`` + magic 0xBEE1 + version, then
32 KiB blocks of ``crc32 | length | type`` chunks) and parses each record with wandb's own
protobuf ``Record`` class. ``assert_contract`` is the one check every View must pass.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from tests.integration.mirror_data import RUN_ID, Expected, Shot, pixels_digest


@dataclass
class View:
    """One logger run as the tests compare it: scalars per tag and step; images and texts as a
    list per tag and step (every medium logged under one key at one step, in logging order)."""

    scalars: dict[str, dict[int, float]] = field(default_factory=dict)
    duplicates: list[tuple[str, int]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    user_tags: set[str] = field(default_factory=set)
    key_values: dict[str, str] = field(default_factory=dict)
    images: dict[str, dict[int, list[Shot]]] = field(default_factory=dict)
    texts: dict[str, dict[int, list[str]]] = field(default_factory=dict)
    artifacts: set[str] = field(default_factory=set)
    # Unix seconds of each point, where the backend keeps it (TensorBoard, MLflow); not compared: a
    # replay stamps what has no recorded time (validate's values) when it sends it.
    wall_times: dict[str, dict[int, float]] = field(default_factory=dict, compare=False)

    def scalar(self, tag: str, step: int, value: float, wall_time: float | None = None) -> None:
        if step in self.scalars.setdefault(tag, {}):
            self.duplicates.append((tag, step))
        self.scalars[tag][step] = value
        if wall_time is not None:
            self.wall_times.setdefault(tag, {})[step] = wall_time

    def image(self, tag: str, step: int, data: bytes | Path) -> None:
        self.images.setdefault(tag, {}).setdefault(step, []).append(_shot(data))

    def text(self, tag: str, step: int, text: str) -> None:
        self.texts.setdefault(tag, {}).setdefault(step, []).append(text)

    def split_flat_tags(self, tags: list[str]) -> None:
        for t in tags:
            if ":" in t:
                k, _, v = t.partition(":")
                self.key_values.setdefault(k, v)
            else:
                self.user_tags.add(t)


def _shot(data: bytes | Path) -> Shot:
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
        im.load()
        return (*im.size, pixels_digest(im))


_MEDIA_NAME = re.compile(r"^(\d+)(?:-(\d+))?\.(?:png|txt)$")


def _media_order(rel: str) -> tuple[str, int, int]:
    """``<tag...>/<step>[-<n>].<ext>`` -> (tag, step, n): the file naming CSV and MLflow use."""
    tag, _, name = rel.rpartition("/")
    m = _MEDIA_NAME.match(name)
    assert m and tag, f"{rel}: not <tag>/<step>[-<n>].png|txt"
    return tag, int(m[1]), int(m[2] or 0)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def _media_files(view: View, root: Path, kind: str, rels: set[str]) -> None:
    """Image or text files named by :func:`_media_order`, added in (step, n) order."""
    for rel in sorted(rels, key=lambda r: _media_order(r)[1:]):
        tag, step, _ = _media_order(rel)
        if kind == "images":
            view.image(tag, step, root / rel)
        else:
            view.text(tag, step, (root / rel).read_text())


def _tensorboard_images(log_dir: Path, view: View) -> None:
    """Images the way ``tensorboard --logdir`` serves them to its UI: its data provider (one datum per tag
    and step; several images at one step are that datum's samples), each image fetched as a blob."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

    mux = plugin_event_multiplexer.EventMultiplexer(size_guidance={"tensors": 0})
    mux.AddRun(str(log_dir), name="run")
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(log_dir))
    ctx = context.RequestContext()
    series = provider.read_blob_sequences(ctx, experiment_id="", plugin_name="images", downsample=10**9)
    for tag, data in series.get("run", {}).items():
        for datum in data:
            width, height, *images = (provider.read_blob(ctx, blob_key=ref.blob_key) for ref in datum.values)
            for png in images:
                view.image(tag, datum.step, png)
                assert view.images[tag][datum.step][-1][:2] == (int(width), int(height)), (tag, datum.step)


def read_tensorboard(where: dict[str, Any]) -> View:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    log_dir = Path(where["log_dir"])
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    view = View()
    tags = acc.Tags()
    for tag in tags["scalars"]:
        for ev in acc.Scalars(tag):
            view.scalar(tag, ev.step, ev.value, ev.wall_time)
    _tensorboard_images(log_dir, view)
    for tag in tags["tensors"]:
        if tag.endswith("/text_summary"):
            for ev in acc.Tensors(tag):
                view.text(tag[: -len("/text_summary")], ev.step, ev.tensor_proto.string_val[0].decode())
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    for name, value in plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams.items():
        view.params[name] = getattr(value, value.WhichOneof("kind"))
    (tag_table,) = view.texts.pop("reprokit/tags", {}).get(0, [""])
    for line in tag_table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[1]:
            view.key_values[cells[0]] = cells[1]
        else:
            view.user_tags.add(cells[0])
    view.artifacts = _files(log_dir / "artifacts")
    return view


def read_csv(where: dict[str, Any]) -> View:
    import csv

    root = Path(where["log_dir"])
    view = View()
    with open(root / "scalars.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            view.scalar(row["tag"], int(row["step"]), float(row["value"]))
    view.params = yaml.safe_load((root / "params.yaml").read_text())
    tags = json.loads((root / "tags.json").read_text())
    view.user_tags, view.key_values = set(tags["tags"]), tags["key_values"]
    _media_files(view, root / "images", "images", _files(root / "images"))
    _media_files(view, root / "text", "text", _files(root / "text"))
    view.artifacts = _files(root / "artifacts")
    return view


def read_mlflow(where: dict[str, Any], download_dir: Path) -> View:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=where["tracking_uri"])
    run_id = where["logger_run_id"]
    run = client.get_run(run_id)
    view = View()
    for key in run.data.metrics:
        for m in client.get_metric_history(run_id, key):
            # MLflow refuses '@' in keys; the backend's documented mapping is undone here.
            view.scalar(key.replace("_at_", "@"), m.step, m.value, m.timestamp / 1000)
    view.params = dict(run.data.params)
    view.key_values = dict(run.data.tags)
    view.user_tags = {k for k, v in run.data.tags.items() if v == "true"}
    local = Path(client.download_artifacts(run_id, "", str(download_dir)))
    media: dict[str, set[str]] = {"images": set(), "text": set()}
    for rel in _files(local):
        kind, _, rest = rel.partition("/")
        if kind in media:
            media[kind].add(rest)
        else:
            view.artifacts.add(rel)
    for kind, rels in media.items():
        _media_files(view, local / kind, kind, rels)
    return view


def _tag(title: str, series: str) -> str:
    return title if title == series else f"{title}/{series}"


_OCCURRENCE = re.compile(r"^(.*)-(\d+)$")


def read_clearml(where: dict[str, Any]) -> View:
    """A debug sample's series is ``<series>`` for the first medium at a step, ``<series>-<n>`` after."""
    view = View()
    with zipfile.ZipFile(where["offline_zip"]) as zf:
        task = json.loads(zf.read("task.json"))
        folder = task["offline_folder"]
        samples = []
        for line in zf.read("metrics.jsonl").decode().splitlines():
            for ev in json.loads(line):
                if ev["type"] == "training_stats_scalar":
                    view.scalar(_tag(ev["metric"], ev["variant"]), ev["iter"], ev["value"])
                elif ev["type"] == "training_debug_image":
                    m = _OCCURRENCE.match(ev["variant"])
                    series, n = (m[1], int(m[2])) if m else (ev["variant"], 0)
                    data = zf.read(os.path.relpath(ev["url"], folder))
                    samples.append((ev["iter"], n, _tag(ev["metric"], series), ev["url"].endswith(".txt"), data))
        for step, _, tag, is_text, data in sorted(samples, key=lambda t: t[:2]):
            if is_text:
                view.text(tag, step, data.decode())
            else:
                view.image(tag, step, data)
        names = set(zf.namelist())
    view.params = {k: v["value"] for k, v in task["hyperparams"]["config"].items()}
    view.split_flat_tags(task["tags"])
    view.key_values.update({k: v["value"] for k, v in task["hyperparams"].get("properties", {}).items()})
    for art in task["execution"]["artifacts"]:
        rel = os.path.relpath(art["uri"], folder)
        assert rel in names, f"artifact {art['key']} is not in the offline zip"
        view.artifacts.add(art["key"])
    return view


def wandb_records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"{path}: not a W&B record file"
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # too little room left for a chunk header: the block is padded
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            break
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk: a record is complete
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(pending)
            pending = b""
            yield rec


def read_wandb(where: dict[str, Any]) -> View:
    run_dir = Path(where["run_dir"])
    (record_file,) = run_dir.glob("run-*.wandb")
    view = View()
    config: dict[str, Any] = {}
    for rec in wandb_records(record_file):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            view.split_flat_tags(list(rec.run.tags))
            for item in rec.run.config.update:
                config[item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                config[item.key] = json.loads(item.value_json)
        elif kind == "history":
            # media values arrive flattened: nested_key = [key, field]; rebuild {key: {field: ...}}
            row: dict[str, Any] = {}
            for i in rec.history.item:
                path = [i.key] if i.key else list(i.nested_key)
                node = row
                for part in path[:-1]:
                    node = node.setdefault(part, {})
                node[path[-1]] = json.loads(i.value_json)
            step = int(row["_step"])
            for key, value in row.items():
                if key.startswith("_"):
                    continue
                if isinstance(value, (int, float)):
                    view.scalar(key, step, float(value))
                elif value.get("_type") == "image-file":
                    view.image(key, step, run_dir / "files" / value["path"])
                    assert view.images[key][step][-1][:2] == (value["width"], value["height"]), (key, step)
                elif value.get("_type") == "images/separated":  # a list of images at one step
                    assert value["count"] == len(value["filenames"]), value
                    for name in value["filenames"]:
                        view.image(key, step, run_dir / "files" / name)
                elif value.get("_type") == "table-file":
                    table = json.loads((run_dir / "files" / value["path"]).read_text())
                    for s, text in table["data"]:
                        view.text(key.removeprefix("text/"), int(s), text)
        elif kind == "artifact" and rec.artifact.type == "reprokit-run":
            view.artifacts |= {entry.path for entry in rec.artifact.manifest.contents}
    view.params = config
    view.key_values.update({k: v for k, v in config.items() if isinstance(v, str)})
    return view


# -- the contract ------------------------------------------------------------------------------


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def assert_contract(view: View, exp: Expected) -> None:
    """The contract every backend meets: ``view`` (read back with the backend's client) shows ``exp``."""
    assert not view.duplicates, f"duplicate points: {view.duplicates[:5]}"
    for tag, points in exp.scalars.items():
        assert tag in view.scalars, f"scalar {tag!r} missing; got {sorted(view.scalars)}"
        assert set(view.scalars[tag]) == set(points), f"{tag}: steps {sorted(view.scalars[tag])} != {sorted(points)}"
        for step, value in points.items():
            assert view.scalars[tag][step] == pytest.approx(value, rel=1e-6), (tag, step)
    for key, value in exp.params.items():
        assert key in view.params, f"param {key!r} missing; got {sorted(view.params)}"
        got = view.params[key]
        if _number(value) is not None:
            assert _number(got) == pytest.approx(float(value)), (key, got)
        else:
            assert str(got) == value, (key, got)
    assert "abc123" not in repr(view.params)
    assert set(exp.user_tags) <= view.user_tags, view.user_tags
    for key, value in exp.auto_tags.items():
        assert view.key_values.get(key) == value, (key, view.key_values)
    assert view.key_values.get("reprokit.run_id") == exp.run_id
    assert view.key_values.get("train_run_id") == RUN_ID
    # Every image and text, several under one key at one step included, in order; nothing else.
    for tag, shots in exp.images.items():
        assert view.images.get(tag) == shots, (tag, view.images.get(tag))
    assert set(view.images) == set(exp.images), sorted(view.images)
    assert view.texts == exp.texts
    assert exp.artifacts <= view.artifacts, sorted(exp.artifacts - view.artifacts)
