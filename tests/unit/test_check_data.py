"""`reprokit check-data`: every check that needs no training, every problem in one go.

Real files: a small OML CSV and PNGs in tmp_path, the real CLI entry point (its exit code and
its lines), the real model builder.
"""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from reprokit.cli import main, problem_report
from reprokit.core.config import config_from_dict
from reprokit.core.errors import DataFrameError
from reprokit.data.labels import LABEL_MAP_KEY, number_labels, read_label_map
from reprokit.data.source import load_dataset

HEADER = ["label", "path", "split", "is_query", "is_gallery"]


def _project(tmp_path: Path, rows: list[list[str]], **params) -> Path:
    """A project folder: images/<i>.png for every row, df.csv, a params.yaml reading them."""
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(0)
    for i in range(len(rows)):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), mode="L").save(tmp_path / f"images/{i}.png")
    with open(tmp_path / "df.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([HEADER, *rows])
    base = {
        "data": {"dataframe": "df.csv", "root": ".", "generate": [], "image_size": 16},
        "model": {"name": "simple_cnn", "args": {"channels": [4], "embedding_dim": 8}},
        "train": {"n_labels": 2, "n_instances": 2},
    }
    for section, values in params.items():
        base.setdefault(section, {}).update(values)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(base))
    return tmp_path


def _rows(labels_train=("0", "0", "1", "1", "2", "2"), labels_val=("7", "7", "8", "8")) -> list[list[str]]:
    rows = [[lab, f"images/{i}.png", "train", "", ""] for i, lab in enumerate(labels_train)]
    n = len(rows)
    rows += [[lab, f"images/{n + i}.png", "validation", "True", "True"] for i, lab in enumerate(labels_val)]
    return rows


def _check_data(project: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.chdir(project)
    with pytest.raises(SystemExit) as exit_:
        main(["check-data"])
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


def test_good_data_passes_with_what_was_checked(tmp_path, monkeypatch, capsys):
    code, out, err = _check_data(_project(tmp_path, _rows()), monkeypatch, capsys)
    assert code == 0, err
    assert out.startswith("df.csv: ok (10 rows: 6 train of 3 labels, 4 validation with 4 queries;")
    assert "batches of 2 labels x 2 instances fit" in out and "model simple_cnn and loss triplet build" in out


def test_every_problem_is_reported_at_once_with_rows_and_lines(tmp_path, monkeypatch, capsys):
    rows = _rows(labels_train=("SKU-1", "SKU-1", "1", "1", "2", "2"))
    rows[3][2] = "tarin"  # a second problem in another column
    rows[8][1] = "images/gone.png"  # a third: a missing image
    code, out, err = _check_data(_project(tmp_path, rows), monkeypatch, capsys)
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[0] == "df.csv: 3 problems"
    label, split, image = lines[1:]
    assert label.startswith(
        "  1. df.csv: column 'label': 2 rows with a non-integer value: row 1 = 'SKU-1', row 2 = 'SKU-1'"
    )
    assert "(lines 2, 3 of the CSV file)" in label  # row N is line N + 1 here: the header is line 1
    assert "set data.label_map: auto" in label  # names (SKUs) get the hint how to number them
    assert split.startswith("  2. df.csv: column 'split':") and "row 4 = 'tarin' (line 5 of the CSV file)" in split
    assert image.startswith("  3. df.csv: column 'path':") and "row 9 = 'images/gone.png' (missing)" in image


def test_line_numbers_follow_the_file_past_blank_lines(tmp_path, monkeypatch, capsys):
    project = _project(tmp_path, _rows())
    text = (project / "df.csv").read_text().splitlines()
    text.insert(3, "")  # a blank line after data row 2: row 3 is now on line 5
    text[4] = text[4].replace("train", "tarin")
    (project / "df.csv").write_text("\n".join(text) + "\n")
    code, _, err = _check_data(project, monkeypatch, capsys)
    assert code == 1 and "row 3 = 'tarin' (line 5 of the CSV file)" in err


def test_batch_feasibility_is_checked_against_the_data_without_training(tmp_path, monkeypatch, capsys):
    # What `dvc repro` would only find in the train stage: 3 training labels of 2 instances each.
    project = _project(tmp_path, _rows(), train={"n_labels": 4, "n_instances": 3})
    code, _, err = _check_data(project, monkeypatch, capsys)
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == "df.csv: 2 problems"
    assert "train.n_labels must be <= the number of training labels (3); got 4" in lines[1]
    assert "hint: lower train.n_labels to 3" in lines[1]
    assert "train.n_instances must be <= the instances of every training label; got 3" in lines[2]


def test_a_model_that_cannot_be_built_is_reported_with_the_data_problems(tmp_path, monkeypatch, capsys):
    project = _project(tmp_path, _rows(), model={"name": "no_such_module:build", "args": {}}, train={"n_labels": 9})
    code, _, err = _check_data(project, monkeypatch, capsys)
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == "df.csv: 2 problems"
    assert "train.n_labels must be <= the number of training labels (3); got 9" in lines[1]
    assert lines[2].startswith("  2. model.name 'no_such_module:build'"), lines[2]


def test_the_report_is_bounded():
    problems = [DataFrameError(f"problem {i}", hint="fix it") for i in range(25)]
    lines = problem_report(Path("df.csv"), problems)
    assert lines[0] == "df.csv: 25 problems" and len(lines) == 1 + 20 + 1
    assert lines[20] == "  20. problem 19 (hint: fix it)"
    assert lines[-1] == "  ... and 5 more: fix these, then run `reprokit check-data` again"


def test_label_map_auto_numbers_text_labels_in_sorted_order_for_every_stage(tmp_path, monkeypatch, capsys):
    skus = ("SKU-b", "SKU-b", "SKU-a", "SKU-a", "x,y", "x,y")
    project = _project(
        tmp_path, _rows(labels_train=skus, labels_val=("SKU-z", "SKU-z", "10", "10")), data={"label_map": "auto"}
    )
    code, out, err = _check_data(project, monkeypatch, capsys)
    assert code == 0, err
    assert "5 text labels numbered 0..4 in sorted order (data.label_map: auto)" in out
    cfg = config_from_dict(yaml.safe_load((project / "params.yaml").read_text()))
    df, _, _ = load_dataset(cfg)
    expected = {"10": 0, "SKU-a": 1, "SKU-b": 2, "SKU-z": 3, "x,y": 4}
    assert dict(df.attrs[LABEL_MAP_KEY]) == expected
    assert df["label"].tolist() == [2, 2, 1, 1, 4, 4, 3, 3, 0, 0]
    # validate and visualize read the same file: they get the same numbers.
    again, _, _ = load_dataset(cfg, check_images=False)
    assert again["label"].tolist() == df["label"].tolist() and dict(again.attrs[LABEL_MAP_KEY]) == expected


def test_label_map_is_recorded_as_a_train_artifact(tmp_path):
    from reprokit.core.layout import TrainDir
    from reprokit.pipeline.train import staged_artifacts

    project = _project(
        tmp_path,
        _rows(labels_train=("b", "b", "a", "a", "c", "c"), labels_val=("d", "d", "e", "e")),
        data={"label_map": "auto"},
    )
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    cfg = config_from_dict(yaml.safe_load((project / "params.yaml").read_text()))
    df = pd.read_csv(project / "df.csv")
    mapping = number_labels(df["label"].astype(str).tolist())
    out = TrainDir(project / "runs" / "train")
    with staged_artifacts(out, cfg, project / "df.csv", project, mapping):
        pass
    assert read_label_map(out.artifacts / "label_map.csv") == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4}
    assert (out.artifacts / "label_map.csv").read_text().splitlines()[:2] == ["label,label_text", "0,a"]


def test_a_numbered_label_is_named_by_its_text_in_the_batch_rule(tmp_path, monkeypatch, capsys):
    # Numbered with the validation labels "7" and "8": 7, 8, a, b, c -> c is 4.
    project = _project(
        tmp_path,
        _rows(labels_train=("b", "b", "a", "a", "a", "c")),
        data={"label_map": "auto"},
        train={"n_labels": 2, "n_instances": 2},
    )
    code, _, err = _check_data(project, monkeypatch, capsys)
    assert code == 1 and "(e.g. label 4 ('c') has 1)" in err, err


def test_integer_labels_are_left_alone_under_label_map_auto(tmp_path, monkeypatch):
    project = _project(tmp_path, _rows(), data={"label_map": "auto"})
    monkeypatch.chdir(project)
    cfg = config_from_dict(yaml.safe_load((project / "params.yaml").read_text()))
    df, _, _ = load_dataset(cfg)
    assert LABEL_MAP_KEY not in df.attrs and df["label"].tolist() == [0, 0, 1, 1, 2, 2, 7, 7, 8, 8]
