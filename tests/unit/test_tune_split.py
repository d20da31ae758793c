"""The tuning split (data.tune_fraction): class-disjoint from training, the same labels for every trial."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from reprokit.core.config import config_from_dict
from reprokit.core.errors import ConfigError, DataFrameError
from reprokit.core.strict_yaml import StrictLoader
from reprokit.data.source import TUNE_SPLIT, scored_rows, with_tune_split


def frame(n_train: int = 20, n_val: int = 5, views: int = 3) -> pd.DataFrame:
    rows = []
    for label in range(n_train + n_val):
        split = "train" if label < n_train else "validation"
        for v in range(views):
            rows.append(
                {
                    "label": label,
                    "path": f"{label}_{v}.png",
                    "split": split,
                    "is_query": split == "validation",
                    "is_gallery": split == "validation",
                }
            )
    return pd.DataFrame(rows)


def test_tune_split_holds_out_whole_training_labels_as_queries_and_gallery():
    df = frame()
    out = with_tune_split(df, 0.25, seed=3)
    tune = out[out["split"] == TUNE_SPLIT]
    train = out[out["split"] == "train"]
    assert tune["label"].nunique() == 5  # round(20 × 0.25)
    assert set(tune["label"]).isdisjoint(train["label"])  # class-disjoint
    assert len(tune) == 5 * 3 and tune["is_query"].all() and tune["is_gallery"].all()
    assert not train["is_query"].any() and not train["is_gallery"].any()
    # Validation rows are never touched; the input frame is not changed.
    pd.testing.assert_frame_equal(out[out["split"] == "validation"], df[df["split"] == "validation"])
    assert (df["split"] != TUNE_SPLIT).all()


def test_tune_split_depends_only_on_seed_and_fraction():
    df = frame()
    a = with_tune_split(df, 0.25, seed=3)
    b = with_tune_split(df.sample(frac=1.0, random_state=1).sort_index(), 0.25, seed=3)
    assert set(a.loc[a["split"] == TUNE_SPLIT, "label"]) == set(b.loc[b["split"] == TUNE_SPLIT, "label"])
    others = {frozenset(with_tune_split(df, 0.25, seed=s).query("split == 'tune'")["label"]) for s in range(6)}
    assert len(others) > 1  # the seed decides which labels
    assert with_tune_split(df, 0.0, seed=3) is df


def test_a_tune_fraction_that_leaves_no_label_is_one_line():
    with pytest.raises(DataFrameError, match=r"data.tune_fraction 0.01 holds out 0 of the 20 training labels"):
        with_tune_split(frame(), 0.01, seed=0)


def test_validate_split_chooses_the_scored_rows():
    df = with_tune_split(frame(), 0.25, seed=3)
    paths = [f"/x/{p}" for p in df["path"]]
    tune_cfg = config_from_dict({"data": {"tune_fraction": 0.25}, "validate": {"split": "tune"}})
    rows, rows_paths = scored_rows(tune_cfg, df, paths)
    assert set(rows["split"]) == {TUNE_SPLIT} and len(rows_paths) == len(rows) == 15
    rows, _ = scored_rows(config_from_dict({}), df, paths)
    assert set(rows["split"]) == {"validation"}


def test_scoring_a_tuning_split_that_is_not_there_is_one_line():
    with pytest.raises(ConfigError, match="validate.split is 'tune' but data.tune_fraction is 0"):
        config_from_dict({"validate": {"split": "tune"}})


def test_the_digits_counts_take_the_tuning_split_into_account():
    # 240 sources, 0.33 validation: 161 training labels; 0.9 of them (145) held out leaves 16.
    base = {"data": {"digits": {"n_source": 240}, "tune_fraction": 0.9}}
    config_from_dict({**base, "train": {"n_labels": 16}})
    with pytest.raises(ConfigError, match=r"train.n_labels must be ≤ 16.*less 145 held out by data.tune_fraction"):
        config_from_dict({**base, "train": {"n_labels": 17}})


@pytest.mark.parametrize("text, value", [("5e-05", 5e-05), ("1e3", 1000.0), ("-2.5E+2", -250.0), ("0.25", 0.25)])
def test_params_yaml_reads_exponent_numbers_as_dvc_writes_them(text, value):
    # `dvc exp run -S train.lr=0.00005` writes `lr: 5e-05` back: a number, not a string.
    assert yaml.load(f"lr: {text}", Loader=StrictLoader) == {"lr": value}
    assert yaml.load("lr: '5e-05'", Loader=StrictLoader) == {"lr": "5e-05"}
    assert np.isclose(
        config_from_dict(yaml.load(f"train: {{lr: {abs(value)}}}", Loader=StrictLoader)).train.lr, abs(value)
    )
