"""The OML dataframe checker: one broken dataframe per failure kind, and the normalised valid frame.

Everything is real: CSV files and PNGs written to tmp_path, Pillow decoding them.
"""

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from reprokit.core.errors import DataFrameError
from reprokit.data.dataframe import check_dataframe, load_dataframe, resolve_image_paths

HEADER = ["label", "path", "split", "is_query", "is_gallery", "category", "x_1", "x_2", "y_1", "y_2"]
# Row numbers in messages: data row 1 = the first row after the header.
VALID_ROWS = [
    ["0", "images/a0.png", "train", "", "", "cat", "", "", "", ""],  # row 1
    ["0", "images/a1.png", "train", "", "", "cat", "1", "10", "2", "12"],  # row 2
    ["1", "images/b0.png", "validation", "True", "True", "dog", "", "", "", ""],  # row 3
    ["1", "images/b1.png", "validation", "false", "1", "dog", "0", "16", "0", "16"],  # row 4
    ["2", "images/c0.png", "validation", "1", "true", "NA", "", "", "", ""],  # row 5
]
GOOD_IMAGES = ["a0", "a1", "b0", "b1", "c0", "c1", "d0", "d1", "e0", "e1", "f0", "f1"]


def _png(path: Path, mode: str = "L", seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    shape = (16, 16) if mode == "L" else (16, 16, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path, format="PNG")


@pytest.fixture
def root(tmp_path) -> Path:
    """A dataset folder: good PNGs, a non-image .png, a truncated PNG, and a good PNG outside it."""
    root = tmp_path / "dataset"
    for i, name in enumerate(GOOD_IMAGES):
        _png(root / "images" / f"{name}.png", mode="RGB" if name == "b1" else "L", seed=i)
    (root / "images" / "text.png").write_text("not an image\n")
    whole = (root / "images" / "a0.png").read_bytes()
    (root / "images" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    _png(tmp_path / "outside.png")
    return root


def _write(root: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    path = root / "df.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return path


def _rows() -> list[list[str]]:
    return [list(r) for r in VALID_ROWS]


def _set(row: int, column: str, value: str):
    """A mutation setting one cell; ``row`` counted like the messages (1 = first data row)."""

    def mutate(rows, header):
        rows[row - 1][header.index(column)] = value
        return rows, header

    return mutate


def _drop_column(column: str):
    def mutate(rows, header):
        k = header.index(column)
        return [r[:k] + r[k + 1 :] for r in rows], header[:k] + header[k + 1 :]

    return mutate


def _chain(*mutations):
    def mutate(rows, header):
        for m in mutations:
            rows, header = m(rows, header)
        return rows, header

    return mutate


def _append(row: list[str]):
    return lambda rows, header: (rows + [list(row)], header)


def _missing_images(rows, header):
    extra = [[str(10 + i), f"images/gone{i}.png", "train", "", "", "cat", "", "", "", ""] for i in range(5)]
    rows[0][1] = "images/text.png"  # row 1: not an image
    rows[2][1] = "images/truncated.png"  # row 3: header fine, pixel data cut
    return rows + extra, header  # rows 6..10: missing -> 7 bad rows in all


# (id, mutation of the valid CSV, fragments the one-line message must contain)
CASES = [
    (
        "missing_columns",
        _chain(_drop_column("is_gallery"), _drop_column("split")),
        ["missing required column(s) split, is_gallery", "found columns: 'label', 'path'"],
    ),
    (
        "label_not_integer",
        _chain(_set(2, "label", "1.5"), _set(4, "label", "a"), _set(5, "label", "")),
        ["column 'label'", "3 rows", "row 2 = '1.5'", "row 4 = 'a'", "row 5 = (empty)"],
    ),
    (
        "label_out_of_range",
        _chain(_set(3, "label", "99999999999999999999"), _set(4, "label", "1e99999999999999999999")),
        ["column 'label'", "row 3 = '99999999999999999999'", "row 4 = '1e99999999999999999999'"],
    ),
    (
        "split_value",
        _chain(_set(3, "split", "test"), _set(4, "split", "Validation")),
        ["column 'split'", "row 3 = 'test'", "row 4 = 'Validation'", "'train' or 'validation'"],
    ),
    ("is_query_missing", _set(3, "is_query", ""), ["column 'is_query'", "validation", "row 3 = (empty)"]),
    ("is_gallery_not_boolean", _set(4, "is_gallery", "yes"), ["column 'is_gallery'", "row 4 = 'yes'"]),
    ("train_flag_not_boolean", _set(1, "is_query", "maybe"), ["column 'is_query'", "train", "row 1 = 'maybe'"]),
    (
        "neither_query_nor_gallery",
        _chain(_set(4, "is_query", "False"), _set(4, "is_gallery", "0")),
        ["'is_query'/'is_gallery'", "neither", "row 4 = ('False', '0')"],
    ),
    (
        "no_query_at_all",
        _chain(_set(3, "is_query", "false"), _set(5, "is_query", "0")),
        ["column 'is_query'", "none of the 3 validation rows"],
    ),
    (
        "query_label_not_in_gallery",
        _append(["7", "images/c1.png", "validation", "True", "False", "dog", "", "", "", ""]),
        ["column 'label'", "no gallery row", "row 6 = 7"],
    ),
    (
        "images_missing_or_unreadable",
        _missing_images,
        [
            "column 'path'",
            "7 rows (of 10)",
            "row 1 = 'images/text.png' (unreadable",
            "row 3 = 'images/truncated.png' (unreadable",
            "image file is truncated",
            "row 6 = 'images/gone0.png' (missing)",
            "and 2 more",
        ],
    ),
    (
        "path_leaves_root",
        _chain(_set(1, "path", "../outside.png"), _set(2, "path", "images/../../outside.png")),
        ["column 'path'", "leaving the dataset root", "row 1 = '../outside.png'", "row 2 = 'images/../../outside.png'"],
    ),
    (
        "path_absolute",
        _set(3, "path", "/etc/hostname"),
        ["column 'path'", "row 3 = '/etc/hostname'", "allow_outside_root"],
    ),
    ("path_empty", _set(2, "path", ""), ["column 'path'", "without an image path", "row 2 = (empty)"]),
    ("bbox_partial_columns", _drop_column("y_2"), ["bounding-box columns incomplete", "x_1, x_2, y_1", "not y_2"]),
    (
        "bbox_partial_row",
        _set(2, "x_2", ""),
        ["'x_1'/'x_2'/'y_1'/'y_2'", "partial", "row 2 = ('1', (empty), '2', '12')"],
    ),
    ("bbox_not_integer", _set(2, "x_2", "4.5"), ["column 'x_2'", "row 2 = '4.5'"]),
    ("bbox_negative", _set(4, "y_1", "-3"), ["column 'y_1'", "negative", "row 4 = -3"]),
    ("bbox_x1_not_below_x2", _set(2, "x_1", "10"), ["columns 'x_1'/'x_2'", "x_1 >= x_2", "row 2 = (10, 10)"]),
    ("bbox_y1_not_below_y2", _set(4, "y_2", "0"), ["columns 'y_1'/'y_2'", "y_1 >= y_2", "row 4 = (0, 0)"]),
    ("category_empty", _set(3, "category", ""), ["column 'category'", "row 3 = (empty)"]),
    (
        "empty_train_split",
        lambda rows, header: (rows[2:], header),
        ["column 'split'", "the train split is empty", "0 train and 3 validation rows"],
    ),
    (
        "empty_validation_split",
        lambda rows, header: (rows[:2], header),
        ["column 'split'", "the validation split is empty", "2 train and 0 validation rows"],
    ),
    (
        "duplicated_rows",
        _chain(_append(VALID_ROWS[1]), _append(VALID_ROWS[3])),
        ["duplicated rows", "every column identical", "row 6 = row 2 (path 'images/a1.png', label 0", "row 7 = row 4"],
    ),
    ("no_rows", lambda rows, header: ([], header), ["no data rows"]),
    # Files that are not a CSV table at all: the mutation is the file's whole content.
    ("empty_file", b"", ["the file is empty"]),
    ("blank_lines_only", b"\n\n  \n", ["the file is empty"]),  # blank and whitespace-only lines are skipped
    (
        "wrong_field_count",
        b"label,path,split\n1,a.png,train\n2,b.png,train,extra\n3,c,d,e,f\n",
        ["cannot be parsed as CSV", "2 rows without", "row 2 = 4 fields", "row 3 = 5 fields", "header's 3 fields"],
    ),
    ("bad_quoting", b'label,path\n1,"unclosed\n', ["cannot be parsed as CSV"]),
    ("not_utf8", b"label,path\n\xff\xfe\x00,1\n", ["not a UTF-8 text file"]),
]


@pytest.mark.parametrize("mutate, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_broken_dataframe_fails_with_one_line_naming_column_rows_and_fix(root, mutate, fragments):
    if isinstance(mutate, bytes):
        csv_path = root / "df.csv"
        csv_path.write_bytes(mutate)
    else:
        csv_path = _write(root, *mutate(_rows(), list(HEADER)))
    with pytest.raises(DataFrameError) as info:
        load_dataframe(csv_path)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    assert message.startswith(f"{csv_path}: ")
    assert fragments[0] in message  # the column (or the file-level problem) is in the message proper
    line = info.value.one_line()  # what the user sees: message + the fix
    assert info.value.hint and line == f"{message} (hint: {info.value.hint})"
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"


def test_missing_csv_file_is_a_dataframe_error(tmp_path):
    with pytest.raises(DataFrameError, match="df.csv: file not found"):
        load_dataframe(tmp_path / "df.csv")


def test_truncated_png_opens_but_is_rejected_because_it_cannot_be_decoded(root):
    # Image.open only reads the header: the check must decode the pixels to catch this file.
    with Image.open(root / "images" / "truncated.png") as img:
        assert img.size == (16, 16)
    rows = _rows()
    rows[1][1] = "images/truncated.png"
    with pytest.raises(DataFrameError, match=r"row 2 = 'images/truncated.png' \(unreadable: OSError"):
        load_dataframe(_write(root, rows))


def test_a_folder_as_image_path_is_reported(root):
    rows = _rows()
    rows[0][1] = "images"
    with pytest.raises(DataFrameError, match=r"row 1 = 'images' \(not a file\)"):
        load_dataframe(_write(root, rows))


def test_valid_csv_passes_and_is_normalised(root):
    df = load_dataframe(_write(root, _rows()))
    assert list(df.columns) == HEADER
    assert list(df.index) == [0, 1, 2, 3, 4]
    assert df["label"].dtype == np.int64 and df["label"].tolist() == [0, 0, 1, 1, 2]
    assert df["path"].tolist() == [r[1] for r in VALID_ROWS]  # order unchanged
    assert df["split"].tolist() == ["train", "train", "validation", "validation", "validation"]
    assert df["is_query"].dtype == bool and df["is_gallery"].dtype == bool
    assert df["is_query"].tolist() == [False, False, True, False, True]
    assert df["is_gallery"].tolist() == [False, False, True, True, True]
    assert df["category"].tolist() == ["cat", "cat", "dog", "dog", "NA"]  # 'NA' is a category, not missing
    assert all(isinstance(c, str) for c in df["category"])
    assert str(df["x_1"].dtype) == "Int64"
    assert df["x_1"].isna().tolist() == [True, False, True, False, True]
    assert [int(df[c][1]) for c in ("x_1", "x_2", "y_1", "y_2")] == [1, 10, 2, 12]


def test_resolved_paths_are_absolute_and_open_with_pil(root, monkeypatch):
    _write(root, _rows())
    monkeypatch.chdir(root.parent)  # a relative CSV path and root, as a stage passes them
    df = load_dataframe(Path("dataset") / "df.csv")
    paths = resolve_image_paths(df, Path("dataset"))
    assert len(paths) == len(df)
    assert all(p.is_absolute() for p in paths)
    assert paths[0] == root / "images" / "a0.png"
    for p in paths:
        with Image.open(p) as img:
            assert img.convert("RGB").size == (16, 16)


def test_dataframe_input_with_real_types_and_any_index(root):
    df = pd.DataFrame(
        {
            "label": [5, 5, 6, 6],
            "path": ["images/a0.png", "images/a1.png", "images/b0.png", "images/b1.png"],
            "split": ["train", "train", "validation", "validation"],
            "is_query": [None, np.nan, True, np.bool_(False)],
            "is_gallery": [None, None, 1.0, True],
            "category": [3, 3, 4, 4],
            "extra": ["kept", "as", "it", "is"],
        },
        index=[10, 20, 30, 40],
    )
    out = check_dataframe(df, root)
    assert list(out.index) == [0, 1, 2, 3]
    assert out["is_query"].tolist() == [False, False, True, False]
    assert out["is_gallery"].tolist() == [False, False, True, True]
    assert out["category"].tolist() == ["3", "3", "4", "4"]
    assert out["extra"].tolist() == ["kept", "as", "it", "is"]
    assert df["category"].tolist() == [3, 3, 4, 4]  # the input is not modified

    df["label"] = [5.0, 5.0, 2.5, 6.0]
    with pytest.raises(DataFrameError, match=r"column 'label': 1 row with a non-integer value: row 3 = 2\.5"):
        check_dataframe(df, root)  # row 3 = third row, whatever the index says


def test_integral_floats_are_integers(root):
    rows = _rows()
    rows[0][0], rows[1][6], rows[1][7] = "0.0", "1.0", "1e1"
    df = load_dataframe(_write(root, rows))
    assert df["label"][0] == 0 and int(df["x_1"][1]) == 1 and int(df["x_2"][1]) == 10


def test_outside_root_paths_pass_when_allowed(root, tmp_path):
    rows = _rows()
    rows[0][1] = "../outside.png"
    rows[1][1] = str(tmp_path / "outside.png")
    csv_path = _write(root, rows)
    with pytest.raises(DataFrameError, match="leaving the dataset root"):
        load_dataframe(csv_path)
    df = load_dataframe(csv_path, allow_outside_root=True)
    paths = resolve_image_paths(df, root)
    assert paths[1] == tmp_path / "outside.png"
    assert paths[0].resolve() == (tmp_path / "outside.png").resolve()


def test_check_images_false_skips_files_but_not_the_root_check(root):
    rows = _rows()
    rows[0][1] = "images/never_written.png"
    assert len(load_dataframe(_write(root, rows), check_images=False)) == 5
    rows[1][1] = "../x.png"
    with pytest.raises(DataFrameError, match="leaving the dataset root"):
        load_dataframe(_write(root, rows), check_images=False)


def test_explicit_root_differs_from_csv_folder(root, tmp_path):
    elsewhere = tmp_path / "csvs"
    elsewhere.mkdir()
    csv_path = elsewhere / "df.csv"
    _write(root, _rows()).rename(csv_path)
    with pytest.raises(DataFrameError, match=r"5 rows \(of 5\) with a missing or unreadable image") as info:
        load_dataframe(csv_path)  # root defaults to the CSV's folder, where no image is
    assert str(elsewhere) in str(info.value)
    assert len(load_dataframe(csv_path, root=root)) == 5


def test_blank_lines_are_skipped_and_not_counted(root):
    csv_path = _write(root, _rows())
    lines = csv_path.read_text().splitlines()
    lines.insert(2, "")  # a blank line between data rows 1 and 2
    lines[3] = lines[3].replace("train", "tarin")  # data row 2, now on file line 4
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFrameError, match=r"row 2 = 'tarin'"):
        load_dataframe(csv_path)


def test_more_than_five_offenders_are_counted_not_listed(root):
    rows = _rows() + [[f"x{i}", f"images/{GOOD_IMAGES[i]}.png", "train", "", "", "c", "", "", "", ""] for i in range(8)]
    with pytest.raises(DataFrameError) as info:
        load_dataframe(_write(root, rows))
    message = str(info.value)
    assert "8 rows" in message and "row 10 = 'x4'" in message and "and 3 more" in message
    assert "row 11" not in message


@pytest.mark.parametrize("mutate, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_collecting_every_problem_starts_with_the_one_a_stage_stops_at(root, mutate, fragments):
    """`reprokit check-data` runs the same checks: its first problem is the stage's error, word for word."""
    from reprokit.data.dataframe import find_dataframe_problems

    if isinstance(mutate, bytes):
        csv_path = root / "df.csv"
        csv_path.write_bytes(mutate)
    else:
        csv_path = _write(root, *mutate(_rows(), list(HEADER)))
    with pytest.raises(DataFrameError) as info:
        load_dataframe(csv_path)
    df, problems = find_dataframe_problems(csv_path)
    assert df is None and problems
    assert problems[0].one_line() == info.value.one_line()


def test_collecting_goes_on_past_a_broken_column(root):
    from reprokit.data.dataframe import find_dataframe_problems

    rows = _rows()
    rows[1][0] = "1.5"  # label
    rows[3][4] = "yes"  # is_gallery
    rows[0][6] = "-1"  # x_1 negative (and a box without x_2...: partial)
    rows[2][5] = ""  # category
    df, problems = find_dataframe_problems(_write(root, rows))
    subjects = [str(p).split(": ")[1] for p in problems]
    assert df is None
    assert subjects == [
        "column 'label'",
        "column 'is_gallery'",
        "columns 'x_1'/'x_2'/'y_1'/'y_2'",
        "column 'x_1'",
        "column 'category'",
    ], subjects
    # No check judged a broken column: no "query label not in the gallery" from the unparsed label.
    assert not any("no gallery row" in str(p) for p in problems)
