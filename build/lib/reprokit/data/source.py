"""Where a stage's data comes from: the user's OML dataframe, or the embedded digits dataset."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reprokit.core.config import Config
from reprokit.core.errors import DataFrameError
from reprokit.data.dataframe import load_dataframe, resolve_image_paths

__all__ = ["load_dataset", "split_rows"]


def load_dataset(cfg: Config, check_images: bool = True) -> tuple[pd.DataFrame, list[Path], Path]:
    """(checked dataframe, absolute image paths, CSV path); every check runs before any compute."""
    csv_path = cfg.data.dataframe_path()
    if not csv_path.exists():
        hint = (
            "run `dvc repro prepare` to generate the default dataset"
            if cfg.data.dataframe is None
            else "set data.dataframe in params.yaml to an existing OML-format CSV"
        )
        raise DataFrameError(f"data.dataframe: file {str(csv_path)!r} not found", hint=hint)
    root = cfg.data.root_path()
    df = load_dataframe(
        csv_path, root=root, allow_outside_root=cfg.data.allow_outside_root, check_images=check_images
    )
    return df, resolve_image_paths(df, root), csv_path


def split_rows(df: pd.DataFrame, paths: list[Path], split: str) -> tuple[pd.DataFrame, list[Path]]:
    """The rows of one split (re-indexed 0..n-1) and their image paths, in the same order."""
    keep = (df["split"] == split).to_numpy()
    return df[keep].reset_index(drop=True), [p for p, k in zip(paths, keep) if k]
