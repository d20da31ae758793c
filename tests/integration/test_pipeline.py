"""The real pipeline, run with real `dvc` in a temporary git repository (reduced params)."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.projects import EXPERIMENT, run, write_params

pytestmark = pytest.mark.slow

CONTRACT = [
    "data/digits/df.csv",
    "runs/train/metrics.json",
    "runs/train/plots/step.tsv",
    "runs/train/plots/epoch.tsv",
    "runs/train/model.ckpt",
    "runs/train/run.json",
    "runs/train/artifacts/code.tar.gz",
    "runs/train/artifacts/config.yaml",
    "runs/train/artifacts/dataframe.csv",
    "runs/train/artifacts/tags.json",
    "runs/train/artifacts/env.json",
    "runs/train/artifacts/git.json",
    "runs/validate/metrics.json",
    "runs/validate/baseline.json",
    "runs/validate/per_query.tsv",
    "runs/validate/plots/cmc.tsv",
    "runs/visualize/worst_queries.png",
    "runs/visualize/gradcam.png",
]


def test_every_contract_file_is_present(pipeline_repo: Path):
    missing = [p for p in CONTRACT if not (pipeline_repo / p).is_file()]
    assert not missing


def test_train_metrics_hold_the_loss_statistics(pipeline_repo: Path):
    metrics = json.loads((pipeline_repo / "runs/train/metrics.json").read_text())
    assert set(metrics) == {"loss", "pos_dist", "neg_dist", "active_tri"}
    assert 0.0 <= metrics["active_tri"] <= 1.0
    assert metrics["neg_dist"] > metrics["pos_dist"] > 0.0  # it learned something
    step = pd.read_csv(pipeline_repo / "runs/train/plots/step.tsv", sep="\t")
    epoch = pd.read_csv(pipeline_repo / "runs/train/plots/epoch.tsv", sep="\t")
    assert list(step.columns[:2]) == ["step", "epoch"] and {"loss", "pos_dist", "neg_dist", "active_tri"} <= set(step.columns)
    assert list(epoch["epoch"]) == [0, 1]
    assert step["step"].is_monotonic_increasing and len(step) == epoch["step"].iloc[-1] + 1
    # The epoch value is the batch-size-weighted mean of that epoch's step values.
    first = step[step["epoch"] == 0]
    assert epoch["loss"].iloc[0] == pytest.approx(first["loss"].mean(), rel=1e-5)
    assert metrics["loss"] == pytest.approx(epoch["loss"].iloc[-1])


def test_validation_metrics_overall_and_by_category(pipeline_repo: Path):
    metrics = json.loads((pipeline_repo / "runs/validate/metrics.json").read_text())
    assert set(metrics["overall"]) == {"cmc@1", "cmc@5", "precision@5", "map@5", "map@r", "r_precision"}
    assert set(metrics["by_category"]) == {str(d) for d in range(10)}
    assert 0.0 < metrics["overall"]["cmc@1"] <= metrics["overall"]["cmc@5"] <= 1.0
    per_query = pd.read_csv(pipeline_repo / "runs/validate/per_query.tsv", sep="\t")
    df = pd.read_csv(pipeline_repo / "data/digits/df.csv")
    assert len(per_query) == int((df["split"] == "validation").sum()) == metrics["n_queries"]
    assert per_query["cmc@1"].mean() == pytest.approx(metrics["overall"]["cmc@1"])
    cmc = pd.read_csv(pipeline_repo / "runs/validate/plots/cmc.tsv", sep="\t")
    assert cmc["cmc"].is_monotonic_increasing
    assert cmc.loc[cmc["k"] == 1, "cmc"].item() == pytest.approx(metrics["overall"]["cmc@1"])


def test_worst_queries_figure_has_one_row_per_query(pipeline_repo: Path):
    with Image.open(pipeline_repo / "runs/visualize/worst_queries.png") as img:
        width, height = img.size
    # 3 queries (REDUCED_PARAMS) x (64 px tile + frame + caption) rows; 1 + 5 + 2 tiles per row.
    assert 3 * 80 < height < 4 * 90
    assert width > 8 * 64


def test_dataset_splits_have_disjoint_labels(pipeline_repo: Path):
    df = pd.read_csv(pipeline_repo / "data/digits/df.csv")
    train = set(df.loc[df["split"] == "train", "label"])
    val = set(df.loc[df["split"] == "validation", "label"])
    assert train and val and not train & val
    assert len(df) == 240 * 4


def test_second_repro_runs_nothing(pipeline_copy: Path):
    out = run(["dvc", "repro"], pipeline_copy).stdout
    assert "Running stage" not in out
    assert "up to date" in out


def test_changing_a_validate_param_reruns_only_validate_and_visualize(pipeline_copy: Path):
    write_params(pipeline_copy, {"validate": {"cmc_top_k": [1, 3]}})
    out = run(["dvc", "repro"], pipeline_copy).stdout
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert {"validate", "visualize"} <= ran
    assert not ran & {"prepare", "train"}
    metrics = json.loads((pipeline_copy / "runs/validate/metrics.json").read_text())
    assert "cmc@3" in metrics["overall"]


def test_force_repro_is_byte_identical(pipeline_copy: Path, pipeline_repo: Path):
    run(["dvc", "repro", "--force"], pipeline_copy)
    for rel in ("runs/train/metrics.json", "runs/validate/metrics.json", "runs/train/plots/step.tsv"):
        assert (pipeline_copy / rel).read_bytes() == (pipeline_repo / rel).read_bytes(), rel


def test_exp_run_and_exp_show_list_params_and_metrics(experiment_copy: Path):
    # experiment_copy: the committed baseline run + `dvc exp run -S train.epochs=1 -n one-epoch`.
    shown = json.loads(run(["dvc", "exp", "show", "--json"], experiment_copy).stdout)
    text = json.dumps(shown)
    assert EXPERIMENT in text
    exps = [e for row in shown for e in (row.get("experiments") or [])]
    exp = next(e for e in exps if e["name"] == EXPERIMENT)
    data = exp["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["epochs"] == 1
    overall = data["metrics"]["runs/validate/metrics.json"]["data"]["overall"]
    assert {"cmc@1", "map@5"} <= set(overall)
    table = run(["dvc", "exp", "show", "--no-pager", "--md"], experiment_copy).stdout
    assert "overall.cmc@1" in table and "overall.map@5" in table


def test_plots_show_renders_curves_and_image(pipeline_copy: Path):
    run(["dvc", "plots", "show", "-o", "plots_html"], pipeline_copy)
    html = (pipeline_copy / "plots_html" / "index.html").read_text()
    assert "Loss statistics per step" in html and "CMC curve" in html
    assert "worst_queries.png" in html and "gradcam.png" in html
    # Each plot drawn once: no second panel with DVC's defaults for a file already in a named plot.
    panels = json.loads(run(["dvc", "plots", "show", "--json"], pipeline_copy).stdout)["data"]
    assert set(panels) == {
        "Loss statistics per step", "Loss statistics per epoch", "CMC curve", "runs/visualize/worst_queries.png",
        "runs/visualize/gradcam.png",
    }


def test_resolved_config_is_recorded_with_overrides(pipeline_repo: Path):
    cfg = yaml.safe_load((pipeline_repo / "runs/train/artifacts/config.yaml").read_text())
    assert cfg["train"]["epochs"] == 2 and cfg["data"]["digits"]["n_source"] == 240
