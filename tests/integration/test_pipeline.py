"""The real pipeline, run with real `dvc` in a temporary git repository (reduced params)."""

import json
import re
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
    "runs/train/plots/validation.tsv",
    "runs/train/model.ckpt",
    "runs/train/run.json",
    "runs/train/wall_times.tsv",
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
    "runs/validate/by_category.json",
    "runs/validate/plots/by_category.tsv",
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
    assert list(step.columns[:2]) == ["step", "epoch"] and {"loss", "pos_dist", "neg_dist", "active_tri"} <= set(
        step.columns
    )
    assert list(epoch["epoch"]) == [0, 1]
    assert step["step"].is_monotonic_increasing and len(step) == epoch["step"].iloc[-1] + 1
    # The epoch value is the batch-size-weighted mean of that epoch's step values.
    first = step[step["epoch"] == 0]
    assert epoch["loss"].iloc[0] == pytest.approx(first["loss"].mean(), rel=1e-5)
    assert metrics["loss"] == pytest.approx(epoch["loss"].iloc[-1])


def test_train_validates_every_epoch_with_validates_numbers(pipeline_repo: Path):
    """Validation while training (the default, every epoch): validate's metrics per epoch in
    validation.tsv, at the epoch's step; the last epoch's are exactly validate's own for model.ckpt
    (checkpoint: last), the same engine."""
    val = pd.read_csv(pipeline_repo / "runs/train/plots/validation.tsv", sep="\t")
    epoch = pd.read_csv(pipeline_repo / "runs/train/plots/epoch.tsv", sep="\t")
    overall = json.loads((pipeline_repo / "runs/validate/metrics.json").read_text())["overall"]
    assert list(val.columns) == ["epoch", "step", *sorted(f"val/{m}" for m in overall)]
    assert not any(c.startswith("val/") for c in epoch.columns)
    assert list(val["epoch"]) == list(epoch["epoch"]) and list(val["step"]) == list(epoch["step"])
    assert val.notna().all().all() and val["val/cmc@1"].between(0, 1).all()
    assert {m: val[f"val/{m}"].iloc[-1] for m in overall} == overall


def test_validation_metrics_overall_and_by_category(pipeline_repo: Path):
    metrics = json.loads((pipeline_repo / "runs/validate/metrics.json").read_text())
    assert set(metrics) == {"overall", "n_queries", "n_queries_without_gt"}  # the headline: what `dvc exp show` lists
    assert set(metrics["overall"]) == {"cmc@1", "cmc@5", "precision@5", "map@5", "map@r", "r_precision"}
    by_category = json.loads((pipeline_repo / "runs/validate/by_category.json").read_text())["by_category"]
    assert set(by_category) == {str(d) for d in range(10)}
    table = pd.read_csv(
        pipeline_repo / "runs/validate/plots/by_category.tsv",
        sep="\t",
        dtype={"category": str},
        float_precision="round_trip",
    )
    assert table["category"].tolist() == sorted(by_category)
    assert table.set_index("category").to_dict("index") == by_category
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


def _ran(out: str) -> set[str]:
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}


def test_changing_a_validate_param_train_does_not_score_with_reruns_only_validate(
    pipeline_copy: Path, pipeline_repo: Path
):
    write_params(pipeline_copy, {"validate": {"memory_budget_mb": 64}})
    ran = _ran(run(["dvc", "repro"], pipeline_copy).stdout)
    assert "validate" in ran and not ran & {"prepare", "train"}
    # A memory budget never changes a number (hence train does not list it), so per_query.tsv is the
    # same and visualize, whose input it is, need not run again.
    rel = "runs/validate/metrics.json"
    assert (pipeline_copy / rel).read_bytes() == (pipeline_repo / rel).read_bytes()


def test_changing_the_metrics_validate_computes_retrains_too(pipeline_copy: Path):
    """Validation while training scores with validate's k lists: changing one re-trains."""
    write_params(pipeline_copy, {"validate": {"cmc_top_k": [1, 3]}})
    ran = _ran(run(["dvc", "repro"], pipeline_copy).stdout)
    assert {"train", "validate", "visualize"} <= ran and "prepare" not in ran
    metrics = json.loads((pipeline_copy / "runs/validate/metrics.json").read_text())
    assert "cmc@3" in metrics["overall"]
    val = pd.read_csv(pipeline_copy / "runs/train/plots/validation.tsv", sep="\t")
    assert val["val/cmc@3"].iloc[-1] == metrics["overall"]["cmc@3"]


def test_checkpoint_best_is_the_model_validate_scores(pipeline_copy: Path):
    write_params(pipeline_copy, {"train": {"epochs": 4, "checkpoint": "best", "monitor": "map@5"}})
    run(["dvc", "repro"], pipeline_copy)
    epoch = pd.read_csv(pipeline_copy / "runs/train/plots/validation.tsv", sep="\t")
    best = int(epoch["val/map@5"].idxmax())  # the first epoch with the highest map@5
    train = json.loads((pipeline_copy / "runs/train/metrics.json").read_text())
    assert train["best"] == {"epoch": int(epoch.loc[best, "epoch"]), "map@5": epoch.loc[best, "val/map@5"]}
    # validate scored model.ckpt at exactly the values training recorded for that epoch: it is that model.
    overall = json.loads((pipeline_copy / "runs/validate/metrics.json").read_text())["overall"]
    assert overall == {m: epoch.loc[best, f"val/{m}"] for m in overall}


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


# name -> (x field, y field, x title, y title) of each panel `dvc plots show` draws; None: an image.
PANELS = {
    "Loss statistics per step": ("step", "dvc_inferred_y_value", "training step", "value (loss and its statistics)"),
    "Loss statistics per epoch": ("epoch", "dvc_inferred_y_value", "epoch", "value (mean over the epoch)"),
    "Learning rate per step": ("step", "lr", "training step", "learning rate (the model's parameter group)"),
    "Retrieval metrics per epoch": ("epoch", "dvc_inferred_y_value", "epoch", "validate's metric, while training"),
    "CMC curve": ("k", "cmc", "k (rank)", "CMC@k (queries with a match in their top k)"),
    "runs/validate/plots/by_category.tsv": ("cmc@1", "category", "CMC@1", "category"),
    "runs/visualize/worst_queries.png": None,
    "runs/visualize/gradcam.png": None,
}


def _axes(spec) -> set[tuple[str, str, str]]:
    """(channel, field, title) of every x/y encoding anywhere in a Vega-Lite spec (layers included)."""
    found = set()
    if isinstance(spec, dict):
        for channel in ("x", "y"):
            enc = (spec.get("encoding") or {}).get(channel)
            if isinstance(enc, dict) and "field" in enc and "title" in enc:
                found.add((channel, enc["field"], enc["title"]))
        for value in spec.values():
            found |= _axes(value)
    elif isinstance(spec, list):
        for value in spec:
            found |= _axes(value)
    return found


def test_plots_show_draws_each_plot_once_with_its_axes(pipeline_copy: Path):
    run(["dvc", "plots", "show"], pipeline_copy)  # into dvc_plots/, DVC's default
    html = (pipeline_copy / "dvc_plots" / "index.html").read_text()
    # One panel (a <div id=...> holding a chart or an image) per plot: DVC draws a file named both by
    # a stage and by a top-level plot twice, the second time with its defaults.
    drawn = re.findall(r'<div\s+id\s*=\s*"([^"]+)"', html)
    assert len(drawn) == len(PANELS) == len(set(drawn)), drawn
    assert "worst_queries.png" in html and "gradcam.png" in html and html.count("<img ") == 2
    shown = json.loads(run(["dvc", "plots", "show", "--json"], pipeline_copy).stdout)["data"]
    assert set(shown) == set(PANELS)
    for name, axes in PANELS.items():
        (panel,) = shown[name]  # one panel each
        if axes is None:
            assert panel["type"] == "image"
            continue
        x, y, x_title, y_title = axes  # drawn against the declared fields, with the declared axis titles
        assert _axes(panel["content"]) == {("x", x, x_title), ("y", y, y_title)}, (name, _axes(panel["content"]))
    by_category = shown["runs/validate/plots/by_category.tsv"][0]["content"]
    assert by_category["mark"]["type"] == "bar" and by_category["title"]["text"] == "CMC@1 by category"
    assert {row["category"] for row in by_category["data"]["values"]} == {str(d) for d in range(10)}
    # CMC@1 by epoch: validation while training, one point per epoch (REDUCED_PARAMS: 2 epochs).
    points = [
        v for v in shown["Retrieval metrics per epoch"][0]["content"]["data"]["values"] if v["field"] == "val/cmc@1"
    ]
    assert [p["epoch"] for p in points] == ["0", "1"] and all(0 < float(p["dvc_inferred_y_value"]) <= 1 for p in points)
    # What `dvc plots show` writes is never committed by a `git add -A`.
    assert "dvc_plots" not in run(["git", "status", "--porcelain", "--untracked-files=all"], pipeline_copy).stdout


def test_resolved_config_is_recorded_with_overrides(pipeline_repo: Path):
    cfg = yaml.safe_load((pipeline_repo / "runs/train/artifacts/config.yaml").read_text())
    assert cfg["train"]["epochs"] == 2 and cfg["data"]["digits"]["n_source"] == 240


def test_visualize_records_exactly_the_params_dvc_yaml_lists_for_it(pipeline_repo: Path):
    """Its record (part of the run's identity) follows dvc.yaml, the one owner of the list."""
    from reprokit.core.config import flatten, load_config, redact

    listed = yaml.safe_load((pipeline_repo / "dvc.yaml").read_text())["stages"]["visualize"]["params"]
    record = flatten(yaml.safe_load((pipeline_repo / "runs/visualize/params.yaml").read_text()))
    every = flatten(redact(load_config(pipeline_repo / "params.yaml").to_dict()))
    assert record == {k: v for k, v in every.items() if any(k == key or k.startswith(key + ".") for key in listed)}
    assert {k.split(".")[0] for k in record} == {key.split(".")[0] for key in listed}
