"""`data.label_map: auto` end to end: text labels (SKUs) through a real `dvc repro` of every stage."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.projects import make_project_copy, run

pytestmark = pytest.mark.slow


def _sku_dataset(root: Path, n_labels: int = 18, views: int = 3) -> dict[str, str]:
    """Small RGB images labelled by SKU strings (in an order unlike their sorted one); {path: sku}."""
    rng = np.random.default_rng(1)
    rows, sku_of = [], {}
    (root / "images").mkdir(parents=True)
    for i in range(n_labels):
        sku = f"SKU-{(i * 7) % n_labels:03d}-{'xyz'[i % 3]}"
        base = rng.integers(0, 255, size=(4, 4, 3))
        for view in range(views):
            img = np.kron(base, np.ones((4, 4, 1))) + rng.normal(0, 12, size=(16, 16, 3))
            path = f"images/{i:03d}_{view}.png"
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="RGB").save(root / path)
            split = "train" if i < 12 else "validation"
            flag = "" if split == "train" else "True"
            rows.append({"label": sku, "path": path, "split": split, "is_query": flag, "is_gallery": flag})
            sku_of[path] = sku
    pd.DataFrame(rows).to_csv(root / "df.csv", index=False)
    return sku_of


def test_text_labels_are_numbered_once_recorded_and_used_by_every_stage(tmp_path: Path):
    repo = make_project_copy(tmp_path / "repo", commit=False)
    sku_of = _sku_dataset(repo / "own")
    from tests.projects import commit_all, write_params

    write_params(
        repo,
        {
            "data": {
                "dataframe": "own/df.csv",
                "root": "own",
                "generate": [],
                "image_size": 16,
                "image_mode": "RGB",
                "label_map": "auto",
            },
            "train": {"epochs": 1, "n_labels": 4, "n_instances": 2},
            "visualize": {"n_queries": 2},
        },
    )
    commit_all(repo, "own data with SKU labels")
    check = run(["python", "-m", "reprokit.cli", "check-data"], repo)
    assert "18 text labels numbered 0..17 in sorted order (data.label_map: auto)" in check.stdout
    run(["dvc", "repro"], repo)

    expected = {sku: code for code, sku in enumerate(sorted(set(sku_of.values())))}
    with open(repo / "runs/train/artifacts/label_map.csv", newline="") as fh:
        recorded = {row["label_text"]: int(row["label"]) for row in csv.DictReader(fh)}
    assert recorded == expected
    # validate numbered the validation SKUs the same way: each query's label is its SKU's number.
    per_query = pd.read_csv(repo / "runs/validate/per_query.tsv", sep="\t")
    assert len(per_query) == 6 * 3
    assert [int(x) for x in per_query["label"]] == [expected[sku_of[p]] for p in per_query["path"]]
    assert (repo / "runs/visualize/worst_queries.png").is_file()
