"""Grad-CAM in the real pipeline: the figure is a DVC output, mirrored; a bad layer keeps `dvc repro` green."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.projects import run, write_params

pytestmark = pytest.mark.slow


def _tensorboard_images(log_dir: Path, tag: str) -> list[bytes]:
    """The PNGs of ``tag`` in a TensorBoard run, read with tensorboard's own EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    assert tag in acc.Tags()["tensors"], acc.Tags()["tensors"]
    # An image-plugin tensor: [width, height, png, ...].
    return [png for ev in acc.Tensors(tag) for png in ev.tensor_proto.string_val[2:]]


def test_gradcam_figure_is_written_and_mirrored_to_tensorboard(pipeline_repo: Path):
    figure = pipeline_repo / "runs/visualize/gradcam.png"
    with Image.open(figure) as img:
        width, height = img.size
    with Image.open(pipeline_repo / "runs/visualize/worst_queries.png") as worst:
        # The worst-queries layout (3 queries, REDUCED_PARAMS), two rows per query plus a header.
        assert width == worst.size[0] and height > 2 * worst.size[1]
    lock = (pipeline_repo / "dvc.lock").read_text()
    assert "runs/visualize/gradcam.png" in lock and "runs/train/model.ckpt" in lock
    report = json.loads((pipeline_repo / "runs/mirror/report.json").read_text())
    assert report["ok"], report
    pngs = _tensorboard_images(Path(report["where"]["log_dir"]), "visualize/gradcam")
    assert pngs == [figure.read_bytes()]  # the file itself, not a re-encoding


def test_a_bad_gradcam_layer_is_one_line_and_the_pipeline_stays_green(pipeline_copy: Path):
    write_params(pipeline_copy, {"visualize": {"gradcam_layer": "features.99"}})
    out = run(["dvc", "repro"], pipeline_copy)
    text = out.stdout + out.stderr
    ran = {line.split("'")[1] for line in text.splitlines() if line.startswith("Running stage")}
    assert ran == {"visualize", "report", "mirror"}, ran  # the figure feeds the report, both the mirror
    warnings = [line for line in text.splitlines() if "no Grad-CAM" in line and "warning" in line]
    assert len(warnings) == 1, text
    assert "'features.99'" in warnings[0] and "features.0, features.4, features.8" in warnings[0]
    assert (pipeline_copy / "runs/visualize/worst_queries.png").is_file()
    with Image.open(pipeline_copy / "runs/visualize/gradcam.png") as img:
        assert img.size[1] < 100  # the one-paragraph figure that says why, not the heat maps
    assert json.loads((pipeline_copy / "runs/mirror/report.json").read_text())["ok"]
