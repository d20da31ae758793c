"""Builds a small, real run folder following the run-folder contract (for mirror tests and the benchmark).

``build_run_folder`` returns the ``runs/`` path and an ``Expected`` record of what every
backend must show after a mirror: scalars per tag and step, params, tags, images (size and a
digest of the pixels) and texts as a list per tag and step (several media under one key at one
step, ``<step>.png``, ``<step>-1.png``, ..., must all arrive, in that order), and artifact names.
The contract lives in ``reprokit/mirror/runfolder.py``; this builder writes it independently, by
hand, so a misreading on either side shows up as a test failure.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from PIL import Image

from reprokit.core.layout import RunsDir
from reprokit.core.run_identity import pipeline_run_id

__all__ = ["Expected", "Shot", "build_run_folder", "pixels_digest", "RUN_ID", "RUN_NAME", "USER_TAGS", "AUTO_TAGS"]

RUN_ID = "0123456789abcdef0123456789abcdef"
RUN_NAME = "run-01234567"
USER_TAGS = ["baseline", "digits"]
AUTO_TAGS = {"git_commit": "a" * 40, "git_branch": "main", "git_dirty": "false", "dvc_exp_name": "brisk-lamb"}
CONFIG = {
    "seed": 42,
    "train": {"epochs": 2, "lr": 0.001, "miner": "all"},
    "model": {"channels": [16, 32], "embedding_dim": 64},
    "logger": {"name": "tensorboard", "args": {"api_token": "***REDACTED***"}},
    "tags": USER_TAGS,
}


Shot = tuple[int, int, str]  # an image as every reader sees it: (width, height, digest of the decoded pixels)


def pixels_digest(im: Image.Image) -> str:
    """What an image shows, whatever its encoding: a backend may re-encode a PNG but not change a pixel."""
    return hashlib.sha256(f"{im.mode}{im.size}".encode() + im.tobytes()).hexdigest()[:16]


@dataclass
class Expected:
    scalars: dict[str, dict[int, float]] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    user_tags: list[str] = field(default_factory=list)
    auto_tags: dict[str, str] = field(default_factory=dict)
    images: dict[str, dict[int, list[Shot]]] = field(default_factory=dict)  # tag -> step -> every image, in order
    texts: dict[str, dict[int, list[str]]] = field(default_factory=dict)  # tag -> step -> every text, in order
    artifacts: set[str] = field(default_factory=set)
    final_step: int = 0
    run_id: str = ""  # the pipeline run's id (train's id combined with the later stages' records)
    run_name: str = ""

    def add(self, tag: str, step: int, value: float) -> None:
        self.scalars.setdefault(tag, {})[step] = value

    def image(self, tag: str, step: int, shot: Shot) -> None:
        self.images.setdefault(tag, {}).setdefault(step, []).append(shot)

    def text(self, tag: str, step: int, text: str) -> None:
        self.texts.setdefault(tag, {}).setdefault(step, []).append(text)


def _png(path: Path, size: tuple[int, int], mode: str = "RGB", shade: int = 0) -> Shot:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new(mode, size)
    img.putdata(
        [
            ((x * 7 + y * 3 + shade) % 256,) * len(mode) if mode != "L" else (x + y + shade) % 256
            for y in range(size[1])
            for x in range(size[0])
        ]
    )
    img.save(path, format="PNG")
    return (*size, pixels_digest(img))


def _write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)


def build_run_folder(
    root: Path,
    epochs: int = 2,
    steps_per_epoch: int = 3,
    stages: tuple[str, ...] = ("train", "validate", "visualize", "report"),
) -> tuple[Path, Expected]:
    runs = root / "runs"
    exp = Expected(user_tags=list(USER_TAGS), auto_tags=dict(AUTO_TAGS))
    train = runs / "train"
    _write(train / "run.json", json.dumps({"run_id": RUN_ID, "run_name": RUN_NAME}))
    keys = ("loss", "pos_dist", "neg_dist", "active_tri")
    rows, epoch_rows = [], []
    step = 0
    for epoch in range(epochs):
        for i in range(steps_per_epoch):
            step += 1
            vals = {k: round(1.0 / (step + j + 1), 6) for j, k in enumerate(keys)}
            lr = 0.001 * (0.5**epoch) if i == 0 else None  # user column, logged once per epoch
            rows.append([step, epoch, *vals.values(), "" if lr is None else repr(lr)])
            for k, v in vals.items():
                exp.add(f"train/{k}", step, v)
            if lr is not None:
                exp.add("train/lr", step, lr)
        evals = {k: round(0.5 / (epoch + j + 1), 6) for j, k in enumerate(keys)}
        epoch_rows.append([epoch, step, *evals.values()])
        for k, v in evals.items():
            exp.add(f"train_epoch/{k}", step, v)
    exp.final_step = step
    _write(
        train / "plots" / "step.tsv",
        "\n".join(["\t".join(["step", "epoch", *keys, "lr"])] + ["\t".join(map(str, r)) for r in rows]) + "\n",
    )
    _write(
        train / "plots" / "epoch.tsv",
        "\n".join(["\t".join(["epoch", "step", *keys])] + ["\t".join(map(str, r)) for r in epoch_rows]) + "\n",
    )
    _write(train / "metrics.json", json.dumps(dict(zip(keys, epoch_rows[-1][2:]))))
    images, texts = train / "images", train / "text"
    exp.image("debug/batch", 2, _png(images / "debug" / "batch" / "2.png", (20, 12), "L"))
    exp.image("sample", step, _png(images / "sample" / f"{step}.png", (8, 10), "RGB", shade=9))
    # Several media under one key at one step (one per validation batch): none may overwrite another.
    # Same size (W&B shows a list of images at one step only if they match), different pixels.
    for n, name in enumerate(("4.png", "4-1.png", "4-2.png")):
        exp.image("val/batch", 4, _png(images / "val" / "batch" / name, (12, 8), "RGB", shade=40 * n))
    for n, name in enumerate(("5.png", "5-1.png")):  # a key without '/' (ClearML: title = series = key)
        exp.image("grid", 5, _png(images / "grid" / name, (6, 6), "L", shade=90 * n))
    for name, body in (("3.txt", "epoch one went fine\nsecond line"), ("3-1.txt", "and a second note at step 3")):
        _write(texts / "notes" / name, body)
        exp.text("notes", 3, body)
    for name, body in (("4.txt", "batch 0: ok"), ("4-1.txt", "batch 1: two misses")):
        _write(texts / "val" / "caption" / name, body)
        exp.text("val/caption", 4, body)
    _write(train / "model.ckpt", b"\x00not-a-real-checkpoint")

    art = train / "artifacts"
    _write(art / "config.yaml", yaml.safe_dump(CONFIG, sort_keys=True))
    exp.params = {
        "seed": "42",
        "train.epochs": "2",
        "train.lr": "0.001",
        "train.miner": "all",
        "model.embedding_dim": "64",
        "logger.name": "tensorboard",
        "logger.args.api_token": "***REDACTED***",
    }
    _write(art / "tags.json", json.dumps({"tags": USER_TAGS, "auto": AUTO_TAGS}))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"print('hello')\n"
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    _write(art / "code.tar.gz", buf.getvalue())
    _write(
        art / "dataframe.csv", "label,path,split,is_query,is_gallery\n0,a.png,train,,\n1,b.png,validation,True,True\n"
    )
    _write(art / "git.json", json.dumps({"commit": AUTO_TAGS["git_commit"], "dirty": False}))
    _write(art / "env.json", json.dumps({"python": "3.11", "seed": 42}))
    exp.artifacts |= {
        f"train/artifacts/{n}"
        for n in ("config.yaml", "tags.json", "code.tar.gz", "dataframe.csv", "git.json", "env.json")
    }
    exp.artifacts |= {"train/run.json", "train/metrics.json"}

    if "validate" in stages:
        val = runs / "validate"
        overall = {"cmc@1": 0.75, "cmc@5": 0.9, "precision@5": 0.6, "map@5": 0.55}
        by_cat = {
            "0": {"cmc@1": 0.7, "cmc@5": 0.85, "precision@5": 0.5, "map@5": 0.45},
            "1": {"cmc@1": 0.8, "cmc@5": 0.95, "precision@5": 0.7, "map@5": 0.65},
        }
        # The headline metrics and, in a file of its own, the per-category ones (as validate writes them).
        _write(val / "metrics.json", json.dumps({"overall": overall, "n_queries": 40, "n_queries_without_gt": 0}))
        _write(val / "by_category.json", json.dumps({"by_category": by_cat}))
        for k, v in overall.items():
            exp.add(f"validate/{k}", step, v)
        for cat, vals in by_cat.items():
            for k, v in vals.items():
                exp.add(f"validate/{cat}/{k}", step, v)
        exp.add("validate/n_queries", step, 40.0)
        exp.add("validate/n_queries_without_gt", step, 0.0)
        _write(val / "per_query.csv", "query\tcmc@1\n0\t1.0\n1\t0.0\n")
        _write(val / "plots" / "cmc.tsv", "k\tcmc\n1\t0.75\n5\t0.9\n")
        exp.artifacts |= {
            "validate/metrics.json",
            "validate/by_category.json",
            "validate/per_query.csv",
            "validate/plots/cmc.tsv",
        }
    if "visualize" in stages:
        figure = _png(runs / "visualize" / "worst_queries.png", (64, 48), "RGB", shade=3)
        exp.image("visualize/worst_queries", step, figure)
        cams = _png(runs / "visualize" / "gradcam.png", (64, 96), "RGB", shade=5)
        exp.image("visualize/gradcam", step, cams)
    assert all(math.isfinite(v) for vals in exp.scalars.values() for v in vals.values())
    exp.run_id = pipeline_run_id(RunsDir(runs), RUN_ID)
    exp.run_name = f"run-{exp.run_id[:8]}"
    if "report" in stages:  # the page and an asset beside it: both are artifacts, under report/
        _write(runs / "report" / "index.html", "<!doctype html><title>report</title><img src='thumbs/0.png'>\n")
        _png(runs / "report" / "thumbs" / "0.png", (4, 4), "L")
        exp.artifacts |= {"report/index.html", "report/thumbs/0.png"}
    return runs, exp
