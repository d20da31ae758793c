"""Read a mirrored run back with each backend's own client into one comparable ``View``.

TensorBoard: tensorboard's EventAccumulator (keep-all size guidance). CSV: the files. MLflow:
MlflowClient. ClearML: the offline session zip (task.json, metrics.jsonl, data/). W&B: the
offline ``run-<id>.wandb`` record file. wandb 0.31 ships no reader for it, so ``wandb_records``
walks its LevelDB-style log framing (7-byte file header ``:W&B`` + magic 0xBEE1 + version, then
32 KiB blocks of ``crc32 | length | type`` chunks) and parses each record with wandb's own
protobuf ``Record`` class.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from PIL import Image


@dataclass
class View:
    scalars: dict[str, dict[int, float]] = field(default_factory=dict)
    duplicates: list[tuple[str, int]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    user_tags: set[str] = field(default_factory=set)
    key_values: dict[str, str] = field(default_factory=dict)
    images: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)
    texts: dict[str, dict[int, str]] = field(default_factory=dict)
    artifacts: set[str] = field(default_factory=set)

    def scalar(self, tag: str, step: int, value: float) -> None:
        if step in self.scalars.setdefault(tag, {}):
            self.duplicates.append((tag, step))
        self.scalars[tag][step] = value

    def split_flat_tags(self, tags: list[str]) -> None:
        for t in tags:
            if ":" in t:
                k, _, v = t.partition(":")
                self.key_values.setdefault(k, v)
            else:
                self.user_tags.add(t)


def _size(data: bytes | Path) -> tuple[int, int]:
    import io

    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
        return im.size


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


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
            view.scalar(tag, ev.step, ev.value)
    for tag in tags["images"]:
        for ev in acc.Images(tag):
            assert _size(ev.encoded_image_string) == (ev.width, ev.height)
            view.images.setdefault(tag, {})[ev.step] = (ev.width, ev.height)
    for tag in tags["tensors"]:
        if tag.endswith("/text_summary"):
            for ev in acc.Tensors(tag):
                view.texts.setdefault(tag[: -len("/text_summary")], {})[ev.step] = ev.tensor_proto.string_val[0].decode()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    for name, value in plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams.items():
        view.params[name] = getattr(value, value.WhichOneof("kind"))
    for line in view.texts.get("reprokit/tags", {}).get(0, "").splitlines()[2:]:
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
    for rel in _files(root / "images"):
        tag, _, name = rel.rpartition("/")
        view.images.setdefault(tag, {})[int(Path(name).stem)] = _size(root / "images" / rel)
    for rel in _files(root / "text"):
        tag, _, name = rel.rpartition("/")
        view.texts.setdefault(tag, {})[int(Path(name).stem)] = (root / "text" / rel).read_text()
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
            view.scalar(key.replace("_at_", "@"), m.step, m.value)
    view.params = dict(run.data.params)
    view.key_values = dict(run.data.tags)
    view.user_tags = {k for k, v in run.data.tags.items() if v == "true"}
    local = Path(client.download_artifacts(run_id, "", str(download_dir)))
    for rel in _files(local):
        kind, _, rest = rel.partition("/")
        tag, _, name = rest.rpartition("/")
        if kind == "images":
            view.images.setdefault(tag, {})[int(Path(name).stem)] = _size(local / rel)
        elif kind == "text":
            view.texts.setdefault(tag, {})[int(Path(name).stem)] = (local / rel).read_text()
        else:
            view.artifacts.add(rel)
    return view


def _tag(title: str, series: str) -> str:
    return title if title == series else f"{title}/{series}"


def read_clearml(where: dict[str, Any]) -> View:
    view = View()
    with zipfile.ZipFile(where["offline_zip"]) as zf:
        task = json.loads(zf.read("task.json"))
        folder = task["offline_folder"]
        for line in zf.read("metrics.jsonl").decode().splitlines():
            for ev in json.loads(line):
                tag = _tag(ev["metric"], ev["variant"])
                if ev["type"] == "training_stats_scalar":
                    view.scalar(tag, ev["iter"], ev["value"])
                elif ev["type"] == "training_debug_image":
                    data = zf.read(os.path.relpath(ev["url"], folder))
                    if ev["url"].endswith(".txt"):
                        view.texts.setdefault(tag, {})[ev["iter"]] = data.decode()
                    else:
                        view.images.setdefault(tag, {})[ev["iter"]] = _size(data)
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
                    assert _size(run_dir / "files" / value["path"]) == (value["width"], value["height"])
                    view.images.setdefault(key, {})[step] = (value["width"], value["height"])
                elif value.get("_type") == "table-file":
                    table = json.loads((run_dir / "files" / value["path"]).read_text())
                    for s, text in table["data"]:
                        view.texts.setdefault(key.removeprefix("text/"), {})[int(s)] = text
        elif kind == "artifact" and rec.artifact.type == "reprokit-run":
            view.artifacts |= {entry.path for entry in rec.artifact.manifest.contents}
    view.params = config
    view.key_values.update({k: v for k, v in config.items() if isinstance(v, str)})
    return view
