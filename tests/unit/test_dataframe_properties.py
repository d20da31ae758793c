"""Property-based tests of the dataframe checker: accept-and-loadable, or a DataFrameError; nothing else.

Random small dataframes mix valid and invalid values in every column (labels, paths to good,
corrupt, truncated, missing, outside-root files, splits, flags, categories, bounding boxes) and
are written as real CSV files beside real PNGs. Whenever the checker accepts one, every row must
load with Pillow exactly as the data loader does it (``reprokit.data.images.load_images``).
"""

import csv
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from reprokit.core.errors import DataFrameError
from reprokit.data.dataframe import (
    BBOX_COLUMNS,
    REQUIRED_COLUMNS,
    check_dataframe,
    load_dataframe,
    resolve_image_paths,
)

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

GOOD_PATHS = [
    "images/g0.png",
    "images/g1.png",
    "images/g2.png",
    "images/rgb.png",
    "images/pal.png",
    "images/i16.png",
    "images/./g0.png",
    "images/sub/../g1.png",
]
BAD_PATHS = [
    "images/corrupt.png",
    "images/truncated.png",
    "images/missing.png",
    "images",
    "",
    "../outside.png",
    "images/../../outside.png",
    "ABSOLUTE",
    "a\nb.png",
    "NA",
]
# Invalid (or oddly written) values per column; some of them are in fact accepted ("1.0", " 2 ").
LABEL_ODD = [
    "1.5",
    "a",
    "",
    "1.0",
    " 2 ",
    "-1",
    "99999999999999999999",
    "1e3",
    "nan",
    "1e999999",
    "1e99999999999999999999",
    "0x10",
    "1_000",
    "inf",
    "True",
    "\uff11",
]
SPLIT_ODD = ["test", "", "Train", " train", "valid"]
FLAG_ODD = ["True", "False", "true", "false", "1", "0", "", "yes", "2", "1.0", "NaN", "TRUE"]
CATEGORY_ODD = ["", " ", "a,b", 'q"uote', "line\nbreak", "\u00e9", "NA"]
BOX_ODD = ["", "-1", "2.5", "x", "3.0", "20", "0", "1e1", "99999999999999999999"]
# x_1 < x_2, y_1 < y_2, some within the 12x12 images and some beyond them; or no box at all.
BOXES = [(x, x + w, y, y + h) for x in (0, 2, 5) for w in (1, 4, 8) for y in (0, 3) for h in (2, 7)] + [("",) * 4]
MODES = st.sampled_from(["L", "RGB"])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """dataset/images: L, RGB, palette and 16-bit PNGs, a corrupt and a truncated one; ../outside.png."""
    base = tmp_path_factory.mktemp("props")
    images = base / "dataset" / "images"
    (images / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(images / f"g{i}.png")
    Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(images / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (9, 12), dtype=np.uint8)).convert("P").save(images / "pal.png")
    Image.fromarray(rng.integers(0, 60000, (12, 12)).astype(np.uint16)).save(images / "i16.png")
    (images / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    whole = (images / "g0.png").read_bytes()
    (images / "truncated.png").write_bytes(whole[: len(whole) * 2 // 3])
    Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(base / "outside.png")
    return base / "dataset"


def _pool(valid: list, odd: list, p_odd: float):
    """One cheap draw: a valid value, or an odd one with probability about ``p_odd``."""
    if not p_odd:
        return st.sampled_from(valid)
    repeat = max(1, round(len(odd) * (1 - p_odd) / (p_odd * len(valid))))
    return st.sampled_from(valid * repeat + odd)  # valid first: shrinking moves towards valid values


def _chance(p: float):
    """True with probability about p (False first: hypothesis favours and shrinks towards it)."""
    return st.sampled_from([False] * round(1 / p - 1) + [True]) if p else st.just(False)


@st.composite
def csv_tables(draw, p_odd: float):
    """(header, rows) of strings; with p_odd = 0 the table is valid except for duplicated rows."""
    n = draw(st.integers(2, 8))
    header = ["label", "path", "split", "is_query", "is_gallery"]
    if draw(st.booleans()):
        header.append("category")
    bbox = draw(st.sampled_from(["none", "all", "partial"] if p_odd else ["none", "all"]))
    if bbox == "all":
        header += list(BBOX_COLUMNS)
    elif bbox == "partial":
        header += draw(st.lists(st.sampled_from(BBOX_COLUMNS), min_size=1, max_size=3, unique=True))
    if draw(_chance(p_odd / 2)):  # now and then a required column is missing
        header.remove(draw(st.sampled_from(header)))
    header = draw(st.permutations(header))

    pools = {
        "label": _pool(["0", "1", "2", "3"], LABEL_ODD, p_odd),
        "path": _pool(GOOD_PATHS, BAD_PATHS, p_odd),
        "category": _pool(["a", "b", "NA"], CATEGORY_ODD, p_odd),
        "train_flag": _pool([""], FLAG_ODD, p_odd),
        "validation_flag": _pool(["True", "true", "1"], FLAG_ODD, p_odd),
        **{c: _pool([None], BOX_ODD, p_odd) for c in BBOX_COLUMNS},  # None: the row's valid box corner
    }
    rows = []
    for i in range(n):
        # Rows 1 and 2 make both splits non-empty unless an odd value hits them.
        split = ["train", "validation"][i] if i < 2 else draw(st.sampled_from(["train", "validation"]))
        split = draw(_pool([split], SPLIT_ODD, p_odd))
        box = dict(zip(BBOX_COLUMNS, map(str, draw(st.sampled_from(BOXES)))))
        row = []
        for c in header:
            if c == "split":
                row.append(split)
            elif c in ("is_query", "is_gallery"):
                row.append(draw(pools["validation_flag" if split == "validation" else "train_flag"]))
            elif c in BBOX_COLUMNS:
                v = draw(pools[c])
                row.append(box[c] if v is None else v)
            else:
                row.append(draw(pools[c]))
        rows.append(row)
    if draw(_chance(p_odd / 2)):  # a row with one field too many
        rows[draw(st.integers(0, n - 1))].append("extra")
    return header, rows


def _write(dataset: Path, header, rows) -> Path:
    absolute = str(dataset.parent / "outside.png")
    path = dataset / "df.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header] + [[absolute if v == "ABSOLUTE" else v for v in r] for r in rows])
    return path


def _assert_accepted_frame_loads(df: pd.DataFrame, dataset: Path, mode: str) -> None:
    """What the rest of reprokit relies on, for a frame the checker accepted."""
    from reprokit.data.images import (
        load_images,  # the real data loader (imports torch: only when needed)
    )

    assert list(df.index) == list(range(len(df)))
    assert df["label"].dtype == np.int64
    assert set(df["split"]) == {"train", "validation"}
    val = (df["split"] == "validation").to_numpy()
    q, g = df["is_query"].to_numpy(dtype=bool), df["is_gallery"].to_numpy(dtype=bool)
    assert not (q | g)[~val].any() and (q | g)[val].all() and q.any()
    assert set(df["label"][q]) <= set(df["label"][g])
    assert len(set(zip(*([str(v) for v in df[c].tolist()] for c in df.columns)))) == len(df)  # no duplicates
    paths = resolve_image_paths(df, dataset)
    assert len(paths) == len(df) and all(p.is_absolute() for p in paths)
    # The real loader: Image.open(path).convert(mode), cropped to the row's box, for every row.
    images = load_images(df, paths, size=8, mode=mode)
    assert tuple(images.shape) == (len(df), 1 if mode == "L" else 3, 8, 8)


def _run(dataset: Path, header, rows, allow_outside_root: bool, mode: str) -> pd.DataFrame | None:
    """The checked frame, or None after checking the rejection is a one-line DataFrameError."""
    csv_path = _write(dataset, header, rows)
    try:
        df = load_dataframe(csv_path, allow_outside_root=allow_outside_root)
    except DataFrameError as exc:  # any other exception fails the test
        assert "\n" not in str(exc) and exc.hint and "\n" not in exc.hint
        event(f"rejected: {_kind(exc)}")
        return None
    event("accepted")
    _assert_accepted_frame_loads(df, dataset, mode)
    return df


def _kind(exc: DataFrameError) -> str:
    """The failure kind for hypothesis' statistics: the message up to the first row listing."""
    text = str(exc).split(".csv: ", 1)[-1].split(": row")[0]
    return re.sub(r"'/[^']*'", "'...'", re.sub(r"\d+ rows?", "N rows", text))[:80]


@SETTINGS
@given(table=csv_tables(p_odd=0.03), allow=st.booleans(), mode=MODES)
def test_random_csv_is_accepted_and_loadable_or_rejected_with_dataframe_error(dataset, table, allow, mode):
    _run(dataset, *table, allow_outside_root=allow, mode=mode)


@SETTINGS
@given(table=csv_tables(p_odd=0.0), mode=MODES)
def test_valid_csv_without_duplicates_is_always_accepted(dataset, table, mode):
    header, rows = table
    # Flags are spelt several ways ('True', 'true', '1') but mean the same: keep the first row of
    # each (label, path, split, category, box), the rest would be duplicates once normalised.
    flags = {header.index("is_query"), header.index("is_gallery")}
    keys = {tuple(v for k, v in enumerate(r) if k not in flags): r for r in reversed(rows)}
    unique = [r for r in rows if keys[tuple(v for k, v in enumerate(r) if k not in flags)] is r]
    df = _run(dataset, header, unique, allow_outside_root=False, mode=mode)
    assert df is not None, "a valid table was rejected"
    assert df["path"].tolist() == [r[header.index("path")] for r in unique]


JUNK = st.one_of(
    st.none(),
    st.just(math.nan),
    st.booleans(),
    st.integers(-3, 5),
    st.integers(2**62, 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.just(np.int64(1)),
    st.just(np.float32(2.0)),
    st.lists(st.integers(), max_size=2),
    st.just(Path("images/g0.png")),
    st.just(b"images/g0.png"),
    st.sampled_from(["../outside.png", "images/missing.png", "images/corrupt.png", "images/truncated.png", "test"]),
)
# Per column: plausible Python values (often accepted), or anything at all (JUNK).
PLAUSIBLE = {
    "label": st.sampled_from([0, 1, 2, np.int64(1), 2.0]),
    "path": st.sampled_from(GOOD_PATHS),
    "split": st.sampled_from(["train", "validation"]),
    "is_query": st.sampled_from([True, False, np.bool_(True), 1, "true"]),
    "is_gallery": st.sampled_from([True, np.bool_(True), 1.0, "1"]),
    "category": st.sampled_from(["a", 3, "NA"]),
    "sequence": st.sampled_from(["s1", 2, None]),
    **{c: st.integers(0, 3).map(lambda v, c=c: v + 4 * (c in ("x_2", "y_2"))) for c in BBOX_COLUMNS},
}


@SETTINGS
@given(data=st.data(), mode=MODES)
def test_random_python_values_in_a_dataframe_never_crash_the_checker(dataset, data, mode):
    n = data.draw(st.sampled_from([1, 2, 3, 4, 5, 6] * 3 + [0]))
    columns = [c for c in REQUIRED_COLUMNS if not data.draw(_chance(0.05))]
    columns += [c for c in ("category", "sequence") if data.draw(st.booleans())]
    bbox = data.draw(st.sampled_from(["none"] * 4 + ["all"] * 4 + ["partial"]))
    columns += list(BBOX_COLUMNS) if bbox == "all" else BBOX_COLUMNS[:2] if bbox == "partial" else []
    junk_in = data.draw(st.sampled_from([0, 0, 20, 5]))  # a cell is junk 1 time in junk_in (0: never)
    table = {
        c: [data.draw(JUNK if junk_in and data.draw(_chance(1 / junk_in)) else PLAUSIBLE[c]) for _ in range(n)]
        for c in columns
    }
    df = pd.DataFrame(table, dtype=object)
    try:
        out = check_dataframe(df, dataset)
    except DataFrameError as exc:
        assert "\n" not in str(exc)
        event(f"rejected: {_kind(exc)}")
        return
    event("accepted")
    _assert_accepted_frame_loads(out, dataset, mode)
