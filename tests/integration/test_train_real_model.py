"""Training like the papers do, in a project made by `reprokit init`: a pretrained-style backbone from a
transformers folder in the project (a tiny random ViT saved with save_pretrained: it stands for a real
checkpoint, nothing is downloaded), pytorch-metric-learning's ArcFace with a learning rate of its own and
a miner, AdamW, cosine with warm-up, two kornia augmentations, frozen BatchNorm and gradient accumulation.

Checked for real: `dvc repro` runs every stage (Grad-CAM on the ViT's tokens, the report); a forced
re-run gives byte-identical results; `reprokit reproduce HEAD` passes; replacing the weights folder makes
`dvc status` name train, validate and visualize.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.hf_models import save_tiny_vit
from tests.projects import run, write_rgb_dataset

pytestmark = [pytest.mark.slow, pytest.mark.long]

RESULTS = [
    "runs/train/metrics.json",
    "runs/validate/metrics.json",
    "runs/validate/per_query.tsv",
    "runs/validate/by_category.json",
    "runs/train/plots/step.tsv",
]

TRAIN = {
    "epochs": 2,
    "n_labels": 4,
    "n_instances": 3,
    "lr": None,
    "optimizer": {"name": "AdamW", "args": {"lr": 1.0e-3, "weight_decay": 0.05}},
    "scheduler": {"name": "CosineAnnealingLR", "args": {"T_max": 2}, "interval": "epoch", "warmup_steps": 2},
    "loss": {
        "name": "pml:ArcFaceLoss",
        "args": {"num_classes": "auto", "embedding_size": "auto", "margin": 28.6},
        "lr": 1.0e-2,
    },
    "miner": {"name": "pml:MultiSimilarityMiner", "args": {"epsilon": 0.1}},
    "augment": [
        {"name": "RandomResizedCrop", "args": {"size": [32, 32], "scale": [0.8, 1.0]}},
        {"name": "RandomHorizontalFlip"},
    ],
}


def _results(repo: Path) -> dict[str, bytes]:
    return {rel: (repo / rel).read_bytes() for rel in RESULTS}


def test_a_fine_tuned_vit_with_arcface_trains_reproduces_and_tracks_its_weights(tmp_path: Path):
    repo = tmp_path / "shop"
    repo.mkdir()

    def sh(*cmd: str, check: bool = True):
        return run(list(cmd), repo, check=check, timeout=900)

    sh("git", "init", "-q", "-b", "main")
    sh("reprokit", "init")
    write_rgb_dataset(repo / "data" / "shop", image_size=32)
    save_tiny_vit(repo / "weights" / "tiny-vit")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(dataframe="data/shop/df.csv", root="data/shop", generate=[], image_mode="RGB", image_size=32)
    params["model"] = {
        "name": "hf",
        "args": {"path": "weights/tiny-vit", "pooling": "cls"},
        "head": {"dim": 16, "normalize": True},
        "freeze_batchnorm": True,
    }
    params["train"].update(TRAIN)
    params["trainer"] = {**(params.get("trainer") or {}), "accumulate_grad_batches": 2}
    params["visualize"]["n_queries"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    # The weights folder is not a dependency yet: train refuses, naming it; `reprokit deps --write` adds it.
    refused = sh("dvc", "repro", check=False)
    assert refused.returncode != 0 and "weights/tiny-vit" in refused.stderr, refused.stderr[-2000:]
    sh("reprokit", "deps", "--write")

    repro = sh("dvc", "repro")
    log = repro.stdout + repro.stderr
    assert "Grad-CAM" in log and (repo / "runs/visualize/gradcam.png").stat().st_size > 1000, log[-3000:]
    assert "queries-table" in (repo / "runs/report/index.html").read_text()
    train = json.loads((repo / "runs/train/metrics.json").read_text())
    assert {"loss", "pos_dist", "neg_dist", "mined"} <= set(train)
    steps = pd.read_csv(repo / "runs/train/plots/step.tsv", sep="\t")
    # 4 batches an epoch, 2 per optimiser step; warm-up over the first two steps, then the cosine's epoch rates.
    assert steps["lr"].tolist() == pytest.approx([5e-4, 1e-3, 5e-4, 5e-4], rel=1e-5)
    first = _results(repo)
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "a fine-tuned ViT with ArcFace")

    sh("dvc", "repro", "--force")
    assert _results(repo) == first, "a forced re-run changed the results"

    proved = sh("reprokit", "reproduce", "HEAD", check=False)
    assert proved.returncode == 0, proved.stderr[-3000:]

    # Other weights in the same architecture: every stage that builds the model is out of date.
    shutil.rmtree(repo / "weights" / "tiny-vit")
    save_tiny_vit(repo / "weights" / "tiny-vit", seed=1)
    status = sh("dvc", "status").stdout
    for stage in ("train:", "validate:", "visualize:"):
        assert stage in status, status
