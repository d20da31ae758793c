"""In a project made by `reprokit init`, every file a stage reads is a DVC dependency, or it refuses.

A model of the user's in my_models.py (importing my_layers.py), a loss in my_losses.py and a
weights file named by model.weights: train refuses with one line until `reprokit deps --write`
lists them; after that an edit to any of them makes `dvc status` name the stages that read it.
A refused stage leaves dvc.lock and runs/ as they were. One pipeline run on a tiny dataset.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.projects import run, subprocess_env

pytestmark = pytest.mark.slow

MY_MODELS = '''"""The user's network; its layers come from a module of their own."""
from my_layers import TinyNet


def build(in_channels, width=4, embedding_dim=8):
    return TinyNet(in_channels, width, embedding_dim)
'''
MY_LAYERS = """from torch import nn


class TinyNet(nn.Module):
    def __init__(self, in_channels, width, embedding_dim):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                  nn.Flatten(), nn.Linear(width * 4, embedding_dim))

    def forward(self, x):
        return nn.functional.normalize(self.body(x), dim=1)
"""
MY_LOSSES = """import torch


def build(margin=0.5):
    def loss(embeddings, labels):
        d = torch.cdist(embeddings, embeddings)
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        return d[same & ~eye].mean() + torch.relu(margin - d[~same]).mean()
    return loss
"""
WEIGHTS = "weights/init.pt"


def _dataset(root: Path, n_labels: int = 12, views: int = 3) -> None:
    rng = np.random.default_rng(0)
    rows = []
    (root / "images").mkdir(parents=True)
    for label in range(n_labels):
        base = rng.integers(0, 255, size=(2, 2, 3))
        for view in range(views):
            img = np.kron(base, np.ones((4, 4, 1))) + rng.normal(0, 12, size=(8, 8, 3))
            path = f"images/{label:02d}_{view}.png"
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="RGB").save(root / path)
            split = "train" if label < n_labels * 2 // 3 else "validation"
            flag = "" if split == "train" else "True"
            rows.append({"label": label, "path": path, "split": split, "is_query": flag, "is_gallery": flag})
    pd.DataFrame(rows).to_csv(root / "df.csv", index=False)


def _save_weights(repo: Path, seed: int) -> None:
    """A state dict of the user's network (as my_models.build makes it), from a seeded init."""
    code = (
        f"import sys, torch; sys.path.insert(0, {str(repo)!r}); torch.manual_seed({seed})\n"
        f"import my_models; torch.save(my_models.build(3).state_dict(), {str(repo / WEIGHTS)!r})\n"
    )
    (repo / WEIGHTS).parent.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-c", code], check=True)


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("train: error:")]
    assert len(lines) == 1, proc.stdout + proc.stderr
    return lines[0]


def test_every_file_a_stage_reads_is_a_dependency_or_it_refuses(tmp_path: Path):
    repo = tmp_path / "my-project"
    repo.mkdir()
    env = subprocess_env()

    def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(list(cmd), repo, check=check, env=env, timeout=900)

    sh("git", "init", "-q", "-b", "main")
    sh("reprokit", "init")
    _dataset(repo / "data" / "shop")
    for name, text in {"my_models.py": MY_MODELS, "my_layers.py": MY_LAYERS, "my_losses.py": MY_LOSSES}.items():
        (repo / name).write_text(text)
    _save_weights(repo, seed=1)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(dataframe="data/shop/df.csv", root="data/shop", generate=[], image_mode="RGB", image_size=8)
    params["model"] = {"name": "my_models:build", "weights": WEIGHTS}
    params["train"].update(epochs=1, n_labels=4, n_instances=3, loss={"name": "my_losses:build"})
    params["validate"]["batch_size"] = 64
    params["visualize"]["n_queries"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    # The generated dvc.yaml lists models.py, not the user's modules: train refuses, in one line,
    # before any work, naming each file, the stage and the line to add.
    refused = sh("dvc", "repro", check=False)
    assert refused.returncode != 0
    line = _error_line(refused)
    for rel in ("my_models.py", "my_layers.py", "my_losses.py", WEIGHTS):
        assert rel in line, line
    assert "stage 'train'" in line and "'- my_models.py'" in line and "'- ${model.weights}'" in line
    assert "reprokit deps --write" in line
    assert not (repo / "dvc.lock").exists() and not (repo / "runs").exists()

    listed = sh("reprokit", "deps", check=False)
    assert listed.returncode == 1 and "visualize: my_models.py (model.name 'my_models:build')" in listed.stdout
    wrote = sh("reprokit", "deps", "--write").stdout
    assert "train: my_losses.py (train.loss.name 'my_losses:build') is not a dependency: added" in wrote
    assert "validate: my_losses.py" not in wrote  # only train builds the loss
    assert all(": ok (" in row for row in sh("reprokit", "deps").stdout.splitlines())

    sh("dvc", "repro")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "my pipeline")
    lock, runs = (repo / "dvc.lock").read_bytes(), _snapshot(repo / "runs")
    # run.json and the checkpoint record each file by content hash.
    identity = yaml.safe_load((repo / "runs/train/run.json").read_text())["inputs"]
    assert identity["my_layers.py"] == hashlib.sha256(MY_LAYERS.encode()).hexdigest()
    assert identity[WEIGHTS] == hashlib.sha256((repo / WEIGHTS).read_bytes()).hexdigest()
    ckpt = run(
        [
            sys.executable,
            "-c",
            "import torch, json; print(json.dumps(torch.load('runs/train/model.ckpt', weights_only=True)['inputs']))",
        ],
        repo,
        env=env,
    ).stdout
    assert yaml.safe_load(ckpt) == identity

    # A new project module the model imports is not covered: the stage refuses, run by hand or by
    # DVC, and dvc.lock and runs/ are as they were.
    (repo / "my_blocks.py").write_text("WIDTH = 4\n")
    (repo / "my_models.py").write_text("import my_blocks  # noqa: F401\n" + MY_MODELS)
    by_hand = sh("python", "-m", "stages.train", "--params", "params.yaml", "--out", "runs/train", check=False)
    assert by_hand.returncode == 1
    assert "my_blocks.py (imported for model.name 'my_models:build')" in _error_line(by_hand)
    assert "'- my_blocks.py'" in _error_line(by_hand)
    assert _snapshot(repo / "runs") == runs and (repo / "dvc.lock").read_bytes() == lock
    by_dvc = sh("dvc", "repro", check=False)
    assert by_dvc.returncode != 0 and "my_blocks.py" in _error_line(by_dvc)
    assert (repo / "dvc.lock").read_bytes() == lock
    # (DVC itself removes a stage's outputs before running it; the refused stage wrote nothing.)
    assert not (repo / "runs/train/model.ckpt").exists() and not (repo / "runs/train/metrics.json").exists()
    (repo / "my_models.py").write_text(MY_MODELS)
    (repo / "my_blocks.py").unlink()
    sh("dvc", "checkout", "-q")  # the committed outputs back: cached ones from DVC, metrics.json from git
    sh("git", "checkout", "-q", "--", "runs/train/metrics.json")
    assert _snapshot(repo / "runs") == runs

    def status_after_editing(rel: str) -> str:
        path = repo / rel
        original = path.read_bytes()
        if rel == WEIGHTS:
            _save_weights(repo, seed=2)
        else:
            path.write_bytes(original + b"\n# an edit\n")
        try:
            return sh("dvc", "status").stdout
        finally:
            path.write_bytes(original)

    for rel in ("my_models.py", "my_layers.py", WEIGHTS):  # the model: every stage that builds it
        status = status_after_editing(rel)
        assert all(f"{stage}:" in status for stage in ("train", "validate", "visualize")) and rel in status, status
    status = status_after_editing("my_losses.py")  # the loss: train, and through its outputs what follows
    assert "train:" in status and "my_losses.py" in status and "validate:" not in status, status
    assert "up to date" in sh("dvc", "status").stdout
