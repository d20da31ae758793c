"""Embedded default datasets, generated from data that ships inside a package (no download)."""

from reprokit.datasets.digits import generate_digits

__all__ = ["generate_digits"]
