"""Rules that need the config and the data together run at load time, as one line, before any compute."""

from __future__ import annotations

import pandas as pd
import pytest

from reprokit.core.config import config_from_dict
from reprokit.core.errors import ConfigError, DataFrameError
from reprokit.data.source import check_fits_config


def _frame(train_labels: int = 4, views: int = 3, val: list[tuple[int, bool, bool]] | None = None) -> pd.DataFrame:
    rows = [
        {"label": lab, "split": "train", "is_query": None, "is_gallery": None}
        for lab in range(train_labels)
        for _ in range(views)
    ]
    for lab, q, g in val if val is not None else [(100, True, True), (100, True, True)]:
        rows.append({"label": lab, "split": "validation", "is_query": q, "is_gallery": g})
    return pd.DataFrame(rows)


def _cfg(n_labels: int, n_instances: int):
    return config_from_dict(
        {"data": {"dataframe": "own.csv", "generate": []}, "train": {"n_labels": n_labels, "n_instances": n_instances}}
    )


def test_a_batch_needing_more_labels_than_the_data_has_is_one_line():
    with pytest.raises(ConfigError, match=r"train.n_labels must be <= the number of training labels \(4\); got 5"):
        check_fits_config(_cfg(5, 2), _frame())


def test_a_batch_needing_more_instances_than_a_label_has_is_one_line():
    with pytest.raises(ConfigError, match=r"train.n_instances .* got 4"):
        check_fits_config(_cfg(2, 4), _frame(views=3))


def test_validation_where_no_query_can_find_anything_is_refused():
    lonely = [(100, True, True), (101, True, True)]  # each query's only gallery item is itself
    with pytest.raises(DataFrameError, match="no query has a ground-truth gallery item"):
        check_fits_config(_cfg(2, 2), _frame(val=lonely))


def test_data_that_fits_passes():
    check_fits_config(_cfg(4, 3), _frame())


def test_validate_embeds_on_the_device_trainer_names():
    import torch

    from reprokit.evaluate.scoring import embedding_device

    assert embedding_device(config_from_dict({"trainer": {"accelerator": "cpu"}}).trainer) == torch.device("cpu")
    auto = embedding_device(config_from_dict({"trainer": {"accelerator": "auto"}}).trainer)
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="trainer.accelerator is 'gpu' but this machine has no CUDA GPU"):
            embedding_device(config_from_dict({"trainer": {"accelerator": "gpu"}}).trainer)
