"""Where a stage's data comes from: the user's OML dataframe, or the embedded digits dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reprokit.core.config import Config, tune_label_count
from reprokit.core.errors import DataFrameError, ReprokitError
from reprokit.data.dataframe import LABEL_MAP_KEY, find_dataframe_problems, load_dataframe, resolve_image_paths
from reprokit.data.sampler import LabelBalancedBatchSampler

__all__ = [
    "load_dataset",
    "dataset_problems",
    "split_rows",
    "scored_rows",
    "check_fits_config",
    "fit_problems",
    "with_tune_split",
    "TUNE_SPLIT",
]

TUNE_SPLIT = "tune"  # the split value of the training rows data.tune_fraction holds out


def load_dataset(cfg: Config, check_images: bool = True) -> tuple[pd.DataFrame, list[Path], Path]:
    """(checked dataframe, absolute image paths, CSV path); every check runs before any compute."""
    csv_path = cfg.data.dataframe_path()
    if not csv_path.exists():
        raise _not_found(cfg, csv_path)
    root = cfg.data.root_path()
    df = load_dataframe(
        csv_path,
        root=root,
        allow_outside_root=cfg.data.allow_outside_root,
        check_images=check_images,
        label_map=cfg.data.label_map,
    )
    df = with_tune_split(df, cfg.data.tune_fraction, cfg.data.tune_seed)
    check_fits_config(cfg, df)
    return df, resolve_image_paths(df, root), csv_path


def dataset_problems(cfg: Config) -> tuple[pd.DataFrame | None, Path, list[ReprokitError]]:
    """(checked dataframe or None, CSV path, every problem): what `load_dataset` checks, all of it at once."""
    csv_path = cfg.data.dataframe_path()
    if not csv_path.exists():
        return None, csv_path, [_not_found(cfg, csv_path)]
    df, found = find_dataframe_problems(
        csv_path,
        root=cfg.data.root_path(),
        allow_outside_root=cfg.data.allow_outside_root,
        label_map=cfg.data.label_map,
    )
    problems: list[ReprokitError] = list(found)
    if df is not None:
        try:
            df = with_tune_split(df, cfg.data.tune_fraction, cfg.data.tune_seed)  # as the stages see the data
        except DataFrameError as exc:
            return None, csv_path, [*problems, exc]
        problems += fit_problems(cfg, df)
    return (df if not problems else None), csv_path, problems


def _not_found(cfg: Config, csv_path: Path) -> DataFrameError:
    hint = (
        "run `dvc repro` to generate the embedded dataset (data.generate: [digits])"
        if "digits" in cfg.data.generate
        else "set data.dataframe in params.yaml to an existing OML-format CSV"
    )
    return DataFrameError(f"data.dataframe: file {str(csv_path)!r} not found", hint=hint)


def check_fits_config(cfg: Config, df: pd.DataFrame) -> None:
    """The rules that need both the config and the data, at load time: the first one broken is raised."""
    problems = fit_problems(cfg, df)
    if problems:
        raise problems[0]


def fit_problems(cfg: Config, df: pd.DataFrame) -> list[ReprokitError]:
    """Every rule that needs both the config and the data (what `reprokit check-data` lists): training
    batches can be formed, and some validation query has a ground truth to find."""
    found: list[ReprokitError] = []
    train_labels = df.loc[df["split"] == "train", "label"].to_numpy()
    if len(train_labels):
        # The sampler states its own rule about n_labels / n_instances against the labels: one owner.
        mapping = df.attrs.get(LABEL_MAP_KEY)
        text_of = {code: text for text, code in mapping.items()} if mapping is not None else {}
        found += LabelBalancedBatchSampler.problems(
            train_labels,
            cfg.train.n_labels,
            cfg.train.n_instances,
            shown=lambda code: f"{code} ({text_of[code]!r})" if code in text_of else str(code),
        )
    val = df[df["split"] == "validation"]
    if len(val) and not _some_query_has_ground_truth(val):
        found.append(
            DataFrameError(
                "validation: no query has a ground-truth gallery item other than itself (and its own sequence)",
                hint="each query label needs at least one more gallery row of that label",
            )
        )
    return found


def _some_query_has_ground_truth(val: pd.DataFrame) -> bool:
    gallery = val[val["is_gallery"].astype(bool)]
    queries = val[val["is_query"].astype(bool)]
    per_label = gallery.groupby("label").size()
    available = queries["label"].map(per_label).fillna(0).to_numpy()
    if "sequence" in val.columns:
        # Items of the query's own sequence are neither retrieved nor counted (OML): itself included.
        seq = gallery.groupby(["label", "sequence"], dropna=False).size()
        keys = list(zip(queries["label"], queries["sequence"]))
        available = available - pd.Series(keys).map(lambda k: seq.get(k, 0)).to_numpy()
    else:
        available = available - queries["is_gallery"].astype(bool).to_numpy()
    return bool((available > 0).any())


def with_tune_split(df: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """``df`` with ``round(fraction × training labels)`` training labels, drawn with ``seed``, moved to the
    ``tune`` split, every row of it a query and a gallery item (as validation rows are).

    Class-disjoint: a label is wholly in training or wholly in tuning. The draw depends only on the
    sorted training labels, ``fraction`` and ``seed``: every trial of a sweep holds out the same labels.
    """
    if fraction <= 0:
        return df
    is_train = (df["split"] == "train").to_numpy()
    labels = np.unique(df.loc[is_train, "label"].to_numpy())
    n_tune = tune_label_count(len(labels), fraction)
    if not 1 <= n_tune < len(labels):
        raise DataFrameError(
            f"data.tune_fraction {fraction} holds out {n_tune} of the {len(labels)} training labels; "
            "it must leave at least one label for tuning and one for training",
            hint="use a larger or smaller data.tune_fraction",
        )
    tune = np.random.default_rng(seed).choice(labels, size=n_tune, replace=False)
    moved = is_train & df["label"].isin(tune).to_numpy()
    out = df.copy()
    out.loc[moved, "split"] = TUNE_SPLIT
    out.loc[moved, ["is_query", "is_gallery"]] = True
    return out


def scored_rows(cfg: Config, df: pd.DataFrame, paths: list[Path]) -> tuple[pd.DataFrame, list[Path]]:
    """The rows validate scores (and visualize shows): ``validate.split``, the validation or the tuning split."""
    return split_rows(df, paths, TUNE_SPLIT if cfg.validate.split == "tune" else "validation")


def split_rows(df: pd.DataFrame, paths: list[Path], split: str) -> tuple[pd.DataFrame, list[Path]]:
    """The rows of one split (re-indexed 0..n-1) and their image paths, in the same order."""
    keep = (df["split"] == split).to_numpy()
    return df[keep].reset_index(drop=True), [p for p, k in zip(paths, keep) if k]
