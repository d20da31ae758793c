"""`reprokit convert {cub,cars,sop,inshop} SRC --out DIR`: the official folders -> an OML df.csv.

Real parts: miniature trees in each archive's own layout (tests/unit/benchmark_trees.py: the real
file names and list formats, a real .mat written by scipy), the real CLI entry point, and the real
`reprokit check-data` run on a params.yaml made from the lines `convert` prints.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from reprokit.cli import main
from reprokit.data.convert import ConvertError, convert, describe
from tests.unit.benchmark_trees import (
    Expected,
    cars_devkit_tree,
    cars_tree,
    cub_tree,
    inshop_tree,
    sop_tree,
)

TREES = {
    "cub": (cub_tree, "CUB_200_2011"),
    "cars": (cars_tree, "CARS196"),
    "cars-devkit": (cars_devkit_tree, "stanford_cars"),
    "sop": (sop_tree, "Stanford_Online_Products"),
    "inshop": (inshop_tree, "DeepFashion_InShop"),
    "inshop-official": (lambda root: inshop_tree(root, official=True), "In-shop Clothes Retrieval Benchmark"),
}


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


def _printed_params(out: str) -> dict:
    """The params.yaml block `convert` prints, read as YAML: what a user pastes."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Set in params.yaml")) + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        block.append(line)
    return yaml.safe_load(textwrap.dedent("\n".join(block)))


@pytest.mark.parametrize("tree", sorted(TREES))
def test_each_tree_converts_to_a_dataframe_check_data_accepts(tree, tmp_path, monkeypatch, capsys):
    build, folder = TREES[tree]
    project = tmp_path / "project"
    project.mkdir()
    src = tmp_path / "datasets" / folder  # outside the project, as a downloaded dataset usually is
    src.mkdir(parents=True)
    expected: Expected = build(src)
    monkeypatch.chdir(project)

    code, out, err = _cli(["convert", tree.split("-")[0], str(src), "--out", "data/bench"], capsys)
    assert code == 0, err
    df = pd.read_csv(project / "data/bench/df.csv", keep_default_na=False)

    # The protocol's counts.
    train, val = df[df["split"] == "train"], df[df["split"] == "validation"]
    assert len(df) == expected.rows
    assert (len(train), train["label"].nunique()) == (expected.train_rows, expected.train_labels)
    assert (len(val), val["label"].nunique()) == (expected.validation_rows, expected.validation_labels)
    assert (val["is_query"] == "True").sum() == expected.queries
    assert (val["is_gallery"] == "True").sum() == expected.galleries
    assert set(train["label"]).isdisjoint(val["label"])  # class-disjoint: no label on both sides
    assert (train[["is_query", "is_gallery"]] == "").all().all()  # train rows leave the flags empty (OML)
    assert ("category" in df.columns) == bool(expected.categories)
    if expected.categories:
        assert df["category"].nunique() == expected.categories
    has_boxes = {"x_1", "x_2", "y_1", "y_2"} <= set(df.columns)
    assert has_boxes == bool(expected.boxes)
    if has_boxes:
        assert (df["x_1"] != "").sum() == expected.boxes
    assert all((src / p).is_file() for p in df["path"])  # relative to SRC, pointing at the real files
    summary = out.splitlines()[0]
    assert f"{expected.rows:,} images; train {expected.train_rows:,} of {expected.train_labels:,} labels" in summary

    # The printed params.yaml lines, as pasted, make `reprokit check-data` accept the data.
    params = _printed_params(out)
    assert params["data"]["dataframe"] == "data/bench/df.csv" and params["data"]["root"] == str(src)
    params["data"]["image_size"] = 16
    params["model"] = {"name": "simple_cnn", "args": {"channels": [4], "embedding_dim": 8}}
    params["train"] = {"n_labels": 2, "n_instances": 2}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    code, checked, err = _cli(["check-data"], capsys)
    assert code == 0, err
    assert checked.startswith(
        f"data/bench/df.csv: ok ({expected.rows} rows: {expected.train_rows} train of {expected.train_labels} labels, "
        f"{expected.validation_rows} validation with {expected.queries} queries;"
    ), checked


def test_protocols_put_the_first_half_of_the_classes_in_training(tmp_path):
    cub_tree(tmp_path / "cub")
    df = pd.read_csv(convert("cub", tmp_path / "cub", tmp_path / "out").csv)
    assert sorted(df.loc[df["split"] == "train", "label"].unique()) == [1, 2]
    assert sorted(df.loc[df["split"] == "validation", "label"].unique()) == [3, 4]
    # bounding_boxes.txt's x y width height -> corners: image 1 is "1 1.0 2.0 20.0 15.0".
    assert df.loc[0, ["x_1", "y_1", "x_2", "y_2"]].tolist() == [1, 2, 21, 17]
    assert df.loc[0, "path"] == "images/001.Black_footed_Albatross/Black_footed_Albatross_0001_796101.jpg"


def test_cub_without_its_box_file_converts_without_boxes_and_says_so(tmp_path):
    cub_tree(tmp_path / "cub")
    (tmp_path / "cub/bounding_boxes.txt").unlink()
    result = convert("cub", tmp_path / "cub", tmp_path / "out")
    assert "x_1" not in pd.read_csv(result.csv).columns and result.boxes == 0
    assert result.notes == ("no bounding_boxes.txt: converted without bounding boxes",)


def test_an_empty_box_is_left_out_and_counted_not_written(tmp_path):
    cub_tree(tmp_path / "cub")
    boxes = (tmp_path / "cub/bounding_boxes.txt").read_text().splitlines()
    boxes[1] = "2 5.0 2.0 0.0 15.0"  # zero width: no crop can be taken from it
    (tmp_path / "cub/bounding_boxes.txt").write_text("\n".join(boxes) + "\n")
    result = convert("cub", tmp_path / "cub", tmp_path / "out")
    df = pd.read_csv(result.csv, keep_default_na=False)
    assert df.loc[1, ["x_1", "y_1", "x_2", "y_2"]].tolist() == ["", "", "", ""] and result.boxes == 11
    assert result.notes == (
        "1 bounding boxes that are empty or negative were left out (those rows use the whole image)",
    )


def test_cars_boxes_become_zero_based_crop_corners(tmp_path):
    cars_tree(tmp_path / "cars")
    df = pd.read_csv(convert("cars", tmp_path / "cars", tmp_path / "out").csv)
    # Image 1: bbox_x1 1, bbox_y1 2, bbox_x2 30, bbox_y2 30 (MATLAB, 1-based inclusive) -> [0, 30) x [1, 30).
    assert df.loc[0, ["path", "x_1", "y_1", "x_2", "y_2"]].tolist() == ["car_ims/000001.jpg", 0, 1, 30, 30]
    # The .mat's `test` flags (the classification split) are not the protocol: classes 1-2 train.
    assert sorted(df.loc[df["split"] == "train", "label"].unique()) == [1, 2]


def test_sop_category_is_the_super_class_and_inshop_uses_its_partition(tmp_path):
    sop_tree(tmp_path / "sop")
    sop = pd.read_csv(convert("sop", tmp_path / "sop", tmp_path / "o1").csv)
    first = sop.loc[0, ["label", "path", "split", "category"]].tolist()
    assert first == [1, "bicycle_final/111085122801_0.JPG", "train", 1]
    inshop_tree(tmp_path / "inshop")
    result = convert("inshop", tmp_path / "inshop", tmp_path / "o2")
    df = pd.read_csv(result.csv)
    item6 = df[df["label"] == 6]
    assert item6["is_query"].tolist() == [True, True, False] and item6["is_gallery"].tolist() == [False, False, True]
    assert 3 not in set(df["label"])  # its single training image cannot form a pair: left out, and said so
    assert any("1 training items with a single image were left out" in note for note in result.notes)
    assert set(df["category"]) == {"WOMEN-Dresses", "WOMEN-Blouses_Shirts", "MEN-Denim", "MEN-Tees_Tanks"}


def test_inshop_with_only_the_high_resolution_images_converts_without_boxes(tmp_path):
    inshop_tree(tmp_path / "s")
    (tmp_path / "s/img").rename(tmp_path / "s/img_highres")
    result = convert("inshop", tmp_path / "s", tmp_path / "out")
    df = pd.read_csv(result.csv)
    assert df["path"].str.startswith("img_highres/").all() and "x_1" not in df.columns
    assert any("img_highres" in note for note in result.notes)


def test_conversion_is_deterministic(tmp_path):
    sop_tree(tmp_path / "sop")
    first = convert("sop", tmp_path / "sop", tmp_path / "a").csv.read_bytes()
    assert convert("sop", tmp_path / "sop", tmp_path / "b").csv.read_bytes() == first


# --- the wrong layout: one line naming the file expected, nothing written ---------------------


def _break_nothing(src: Path) -> None:
    pass


BAD_LAYOUTS = [
    # (dataset, tree, how it is broken, what the one line must say)
    ("cub", "cub", lambda s: (s / "images.txt").unlink(), "images.txt' not found"),
    ("cub", "cub", lambda s: (s / "image_class_labels.txt").unlink(), "image_class_labels.txt' not found"),
    (
        "cub",
        "cub",
        lambda s: (s / "images/002.Laysan_Albatross/Laysan_Albatross_0002_796105.jpg").unlink(),
        "1 of the 12 images the lists name are not in",
    ),
    ("cub", "cub", lambda s: (s / "images.txt").write_text("1 a.jpg\nthree\n"), "images.txt line 2: expected 2 fields"),
    ("cub", "sop", _break_nothing, "images.txt' not found"),  # another dataset's folder
    (
        "cars",
        "cars",
        lambda s: (s / "cars_annos.mat").unlink(),
        "cars_annos.mat' not found (nor devkit/cars_train_annos.mat)",
    ),
    (
        "cars",
        "cars-devkit",
        lambda s: (s / "cars_test_annos_withlabels.mat").unlink(),
        "cars_test_annos_withlabels.mat' not found (nor devkit/cars_test_annos_withlabels.mat)",
    ),
    (
        "cars",
        "cars",
        lambda s: (s / "cars_annos.mat").write_bytes(b"not a mat file"),
        "cars_annos.mat cannot be read as a MATLAB file",
    ),
    # The devkit's unlabelled test annotations where the labelled ones belong.
    (
        "cars",
        "cars-devkit",
        lambda s: shutil.copyfile(s / "devkit/cars_test_annos.mat", s / "cars_test_annos_withlabels.mat"),
        "cars_test_annos_withlabels.mat's annotations lack the field(s) class",
    ),
    ("sop", "sop", lambda s: (s / "Ebay_test.txt").unlink(), "Ebay_test.txt' not found"),
    (
        "sop",
        "sop",
        lambda s: (s / "Ebay_train.txt").write_text("1 1 1 bicycle_final/x.JPG\n"),
        "Ebay_train.txt line 1: expected the header 'image_id class_id super_class_id path'",
    ),
    (
        "inshop",
        "inshop",
        lambda s: (s / "list_eval_partition.txt").unlink(),
        "list_eval_partition.txt' not found (nor Eval/list_eval_partition.txt)",
    ),
    (
        "inshop",
        "inshop",
        lambda s: (s / "list_eval_partition.txt").write_text(
            "\n".join((s / "list_eval_partition.txt").read_text().splitlines()[:-2]) + "\n"
        ),
        "list_eval_partition.txt: line 1 says 17 images but 15 rows follow",
    ),
    ("inshop", "inshop", lambda s: (s / "img").rename(s / "pictures"), "is neither in"),
]


@pytest.mark.parametrize("dataset, tree, breaks, says", BAD_LAYOUTS)
def test_a_wrong_layout_is_one_line_and_writes_nothing(dataset, tree, breaks, says, tmp_path, capsys):
    build, folder = TREES[tree]
    src = tmp_path / folder
    src.mkdir()
    build(src)
    breaks(src)
    out = tmp_path / "out"
    out.mkdir()
    (out / "df.csv").write_text("the previous conversion\n")
    code, stdout, err = _cli(["convert", dataset, str(src), "--out", str(out)], capsys)
    assert code == 1 and stdout == ""
    assert len(err.splitlines()) == 1 and err.startswith("reprokit: error: "), err
    assert says in err, err
    assert [p.name for p in out.iterdir()] == ["df.csv"]  # no temp file left behind
    assert (out / "df.csv").read_text() == "the previous conversion\n"  # and the old CSV untouched


def test_the_folder_above_the_dataset_gets_a_hint_to_pass_the_dataset_folder(tmp_path):
    cub_tree(tmp_path / "CUB_200_2011")
    with pytest.raises(ConvertError) as exc:
        convert("cub", tmp_path, tmp_path / "out")
    assert f"found it in {str(tmp_path / 'CUB_200_2011')!r}: pass that folder" in exc.value.one_line()


def test_an_out_that_cannot_hold_the_csv_is_one_line(tmp_path):
    sop_tree(tmp_path / "sop")
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(ConvertError, match="--out .*taken' is a file; it must be a folder"):
        convert("sop", tmp_path / "sop", tmp_path / "taken")
    with pytest.raises(ConvertError, match="cannot write .*taken/data/df.csv"):  # a file where a folder must go
        convert("sop", tmp_path / "sop", tmp_path / "taken/data")


def test_a_missing_source_folder_says_so(tmp_path):
    with pytest.raises(ConvertError, match="source folder .* does not exist"):
        convert("sop", tmp_path / "nowhere", tmp_path / "out")


# --- what the user is told to do ---------------------------------------------------------------


def test_a_dataset_inside_the_project_is_added_to_dvc_with_relative_params(tmp_path):
    project = tmp_path / "project"
    cub_tree(project / "data/CUB_200_2011")
    text = describe(convert("cub", project / "data/CUB_200_2011", project / "data/cub"), cwd=project)
    assert "  dataframe: data/cub/df.csv" in text and "  root: data/CUB_200_2011" in text
    assert "  dvc add data/CUB_200_2011 data/cub" in text and "outside the project" not in text
    # The CSV written next to the images: one folder to add.
    text = describe(convert("cub", project / "data/CUB_200_2011", project / "data/CUB_200_2011"), cwd=project)
    assert "  dvc add data/CUB_200_2011\n" in text and "dataframe: data/CUB_200_2011/df.csv" in text


def test_a_dataset_outside_the_project_keeps_an_absolute_root(tmp_path):
    src = tmp_path / "my datasets/sop"
    sop_tree(src)
    text = describe(convert("sop", src, tmp_path / "project/data/sop"), cwd=tmp_path / "project")
    assert f'  root: "{src}"' in text  # quoted: the path has a space
    assert "  dvc add data/sop" in text and "outside the project" in text
