"""Dataframe column names shared by the layers that read a dataframe (data, and above it) and those that
only compare committed ones (provenance), without the dataframe checks' imports."""

from __future__ import annotations

__all__ = ["BBOX_COLUMNS"]

# A row's bounding box, all four or none (reprokit.data.dataframe checks that).
BBOX_COLUMNS = ("x_1", "x_2", "y_1", "y_2")
