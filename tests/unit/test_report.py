"""The report page built from a small real run folder: what it holds, what it leaves out, that it
asks for nothing outside itself, and that the same run gives the same bytes.

The run folder is written by reprokit's own writers: the validation split's images on disk, a
real ``retrieval_metrics`` over embeddings that put each label's views together (with a few
deliberate misses), ``write_validation`` for ``runs/validate``; train's records are written as the
train stage writes them (``run.json``, ``artifacts/``, ``plots/*.tsv``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from reprokit.core.config import config_from_dict
from reprokit.core.errors import ReportError
from reprokit.core.fileio import write_json
from reprokit.core.layout import ReportDir, RunsDir
from reprokit.evaluate.metrics import retrieval_metrics
from reprokit.evaluate.scoring import write_validation
from reprokit.mirror.runfolder import read_run_folder
from reprokit.visualize import report_queries
from reprokit.visualize.report import write_report
from reprokit.visualize.report_data import gather_report, params_changed
from reprokit.visualize.report_queries import build_query_table, query_records
from reprokit.visualize.worst_queries import read_per_query

N_LABELS, VIEWS = 12, 3
TRAIN_RUN = {"run_id": "0123456789abcdef0123456789abcdef", "run_name": "brisk-lamb-01234567"}


def _split(root: Path) -> tuple[pd.DataFrame, list[Path]]:
    """The validation split: N_LABELS labels x VIEWS views, 16x12 grey images, two categories."""
    rng = np.random.default_rng(0)
    rows, paths = [], []
    for label in range(N_LABELS):
        for view in range(VIEWS):
            path = root / "images" / f"{label:02d}_{view}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (12, 16), dtype=np.uint8), "L").save(path)
            rows.append(
                {
                    "label": label,
                    "path": path.relative_to(root).as_posix(),
                    "split": "validation",
                    "is_query": True,
                    "is_gallery": True,
                    "category": "even" if label % 2 == 0 else "odd",
                }
            )
            paths.append(path)
    return pd.DataFrame(rows), paths


def _embeddings(val_df: pd.DataFrame) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(N_LABELS, 8, generator=g) * 3
    emb = centres[torch.tensor(val_df["label"].to_numpy())] + 0.3 * torch.randn(len(val_df), 8, generator=g)
    emb[:4] = torch.randn(4, 8, generator=g) * 3  # a few queries that land among other labels
    return emb


def _write_train(runs: RunsDir, config: dict, tags: dict, git: dict) -> None:
    write_json(runs.train.identity, TRAIN_RUN)
    write_json(runs.train.metrics, {"loss": 0.2, "pos_dist": 0.3, "neg_dist": 1.1, "active_tri": 0.1})
    art = runs.train.artifacts
    art.mkdir(parents=True)
    (art / "config.yaml").write_text(yaml.safe_dump(config))
    write_json(art / "tags.json", tags)
    write_json(art / "git.json", git)
    runs.train.plots.mkdir(parents=True)
    runs.train.step_table.write_text(
        "step\tepoch\tloss\tactive_tri\n"
        + "".join(f"{s}\t{s // 5}\t{1 / (s + 1):.4f}\t{0.9**s:.4f}\n" for s in range(10))
    )
    runs.train.epoch_table.write_text("epoch\tstep\tloss\tactive_tri\n0\t4\t0.4\t0.8\n1\t9\t0.15\t0.4\n")


@pytest.fixture
def run_folder(tmp_path):
    val_df, paths = _split(tmp_path)
    runs = RunsDir(tmp_path / "runs")
    config = config_from_dict({"train": {"epochs": 3}, "tags": ["nightly"]}).to_dict()
    _write_train(
        runs,
        config,
        {"tags": ["nightly"], "auto": {"git_commit": "f" * 40, "dvc_exp_name": "brisk-lamb"}},
        {"commit": "f" * 40, "branch": "main", "dirty": True, "is_repo": True},
    )
    res = retrieval_metrics(
        _embeddings(val_df),
        torch.tensor(val_df["label"].to_numpy()),
        torch.ones(len(val_df), dtype=torch.bool),
        torch.ones(len(val_df), dtype=torch.bool),
        categories=val_df["category"].tolist(),
        retrieve_k=5,
        extra_metrics=("map@r",),
    )
    pixels = torch.stack([torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32).ravel()) for p in paths])
    baseline = retrieval_metrics(
        pixels,
        torch.tensor(val_df["label"].to_numpy()),
        torch.ones(len(val_df), dtype=torch.bool),
        torch.ones(len(val_df), dtype=torch.bool),
    )
    runs.validate.root.mkdir(parents=True)
    write_validation(runs.validate.root, res, val_df, baseline)
    runs.validate.params.write_text(yaml.safe_dump({"validate": {"distance": "euclidean"}}))
    runs.visualize.root.mkdir(parents=True)
    runs.visualize.params.write_text(yaml.safe_dump({"visualize": {"metric": "map@5", "top_k": 5}}))
    Image.new("RGB", (40, 20), (200, 30, 30)).save(runs.visualize.worst_queries)
    return runs, val_df, paths


def _page(runs: RunsDir, val_df, paths) -> str:
    summary = write_report(runs, val_df, paths, ReportDir(runs.root / "report"))
    assert summary.page == runs.report.page and summary.size_bytes == len(summary.page.read_bytes())
    return summary.page.read_text()


def _payload(page: str) -> dict:
    text = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1)
    return json.loads(text)


def test_the_page_holds_identity_params_metrics_and_every_query(run_folder):
    runs, val_df, paths = run_folder
    page = _page(runs, val_df, paths)
    data = gather_report(runs)
    # The run's name is the one the mirror gives its logger run.
    assert data.identity.run_name == read_run_folder(runs.root).run_name
    assert f'<h1 id="run-name">{data.identity.run_name}</h1>' in page
    assert "f" * 12 in page and ">dirty<" in page and "nightly" in page and "brisk-lamb" in page
    changed = {p.key: (p.value, p.default) for p in data.params_changed}
    assert changed == {"train.epochs": (3, 8), "tags": (["nightly"], [])}
    metrics = json.loads(runs.validate.metrics.read_text())
    for name, value in metrics["overall"].items():
        assert f"{value:.3f}" in page, name
    raw = json.loads(runs.validate.baseline.read_text())["raw_pixels"]
    assert f"{raw['cmc@1']:.3f}" in page
    payload = _payload(page)
    pq = read_per_query(runs.validate.per_query)
    records = query_records(payload)
    assert [q["item"] for q in records] == pq["item"].tolist()
    assert [q["retrieved"] for q in records] == pq["retrieved"].tolist()
    assert payload["metrics"] == ["cmc@1", "cmc@5", "precision@5", "map@5", "map@r"]
    assert payload["worst_metric"] == "map@5" and payload["categories"] == ["even", "odd"]
    # CMC and training curves are matplotlib SVGs, the worst-queries figure the PNG itself.
    assert page.count('src="data:image/svg+xml;base64,') == 2
    assert page.count('src="data:image/png;base64,') == 1


def test_ground_truth_leaves_out_the_query_and_failed_at_1_follows_the_nearest_item(run_folder):
    runs, val_df, paths = run_folder
    pq = read_per_query(runs.validate.per_query)
    records = query_records(build_query_table(pq, val_df, paths, "map@5").payload)
    labels = val_df["label"].to_numpy()
    for q in records:
        assert q["truth"] == [i for i in np.flatnonzero(labels == q["label"]) if i != q["item"]]
        assert q["n_gt"] == VIEWS - 1
        assert q["failed_at_1"] == (labels[q["retrieved"][0]] != q["label"])
    assert any(q["failed_at_1"] for q in records) and not all(q["failed_at_1"] for q in records)


def test_ground_truth_leaves_out_the_querys_own_sequence(run_folder):
    runs, val_df, paths = run_folder
    val_df = val_df.assign(sequence=[f"s{i // 2}" for i in range(len(val_df))])  # items 0,1 one sequence, ...
    pq = read_per_query(runs.validate.per_query)
    records = {q["item"]: q for q in query_records(build_query_table(pq, val_df, paths, None).payload)}
    assert 1 not in records[0]["truth"] and records[0]["truth"] == [2]


def test_the_page_asks_for_nothing_outside_itself(run_folder):
    runs, val_df, paths = run_folder
    page = _page(runs, val_df, paths)
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page).group(1)
    assert "default-src 'none'" in csp and "img-src data:" in csp
    # Every src/href/url() is a data: URI; no stylesheet link, no @import, no font face.
    refs = re.findall(r'(?:src|href)="([^"]*)"', page) + re.findall(r'url\("?([^")]*)', page)
    assert refs and all(r.startswith("data:") for r in refs), [r[:40] for r in refs if not r.startswith("data:")]
    assert "<link" not in page and "@import" not in page and "@font-face" not in page


def test_the_same_run_gives_the_same_bytes(run_folder):
    runs, val_df, paths = run_folder
    first = _page(runs, val_df, paths)
    assert _page(runs, val_df, paths) == first


def test_gradcam_and_per_category_file_are_used_when_present(run_folder):
    runs, val_df, paths = run_folder
    data = gather_report(runs)
    assert "visualize/gradcam.png" in data.missing and list(data.figures) == ["Worst queries"]
    Image.new("RGB", (30, 20), (20, 200, 30)).save(runs.visualize.gradcam)
    write_json(runs.validate.root / "by_category.json", {"by_category": {"own-file": {"cmc@1": 0.125}}})
    data = gather_report(runs)
    assert list(data.figures) == ["Worst queries", "Grad-CAM of the worst queries"]
    assert data.by_category == {"own-file": {"cmc@1": 0.125}}
    page = _page(runs, val_df, paths)
    assert page.count('src="data:image/png;base64,') == 2 and "own-file" in page


def test_thumbnails_beyond_the_budget_go_to_the_worst_queries_first(run_folder, monkeypatch):
    runs, val_df, paths = run_folder
    pq = read_per_query(runs.validate.per_query)
    monkeypatch.setattr(report_queries, "MIN_CELL", 8)
    monkeypatch.setattr(report_queries, "PIXEL_BUDGET", 10 * 8 * 8)  # 10 thumbnails of 8 px
    table = build_query_table(pq, val_df, paths, "map@5")
    assert (table.cell, table.n_thumbnails, table.n_items) == (8, 10, len(val_df))
    worst = pq.sort_values(["map@5", "item"], kind="stable").iloc[0]
    first = [int(worst["item"]), *worst["retrieved"]]
    thumbs = table.payload["items"]["thumb"]
    assert [thumbs[i] for i in first] == list(range(len(first)))  # the worst query's own, then its top k
    assert sum(t >= 0 for t in thumbs) == 10


def test_an_item_outside_the_split_is_one_clear_error(run_folder):
    runs, val_df, paths = run_folder
    with pytest.raises(ReportError, match=r"per_query.tsv: item \d+ is not a row of the validation split \(30 rows\)"):
        build_query_table(read_per_query(runs.validate.per_query), val_df.iloc[:30], paths[:30], None)


def test_a_run_without_validation_gets_one_line_naming_the_stage(tmp_path):
    runs = RunsDir(tmp_path / "runs")
    write_json(runs.train.identity, TRAIN_RUN)
    with pytest.raises(ReportError, match="the report needs a validated run") as err:
        gather_report(runs)
    assert "run the validate stage first" in err.value.one_line()


def test_params_at_their_defaults_are_not_listed():
    from reprokit.core.config import flatten

    defaults = flatten(config_from_dict({}).to_dict())
    assert params_changed(defaults) == []
    as_yaml = {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}  # YAML gives lists
    assert params_changed(as_yaml) == []
    changed = params_changed({**as_yaml, "validate.cmc_top_k": [1, 3], "mystery": 1})
    assert [(p.key, p.value) for p in changed] == [("mystery", 1), ("validate.cmc_top_k", [1, 3])]
    assert changed[0].default == "(not in the schema)"
