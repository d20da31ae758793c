"""Cars196 (Stanford Cars, Krause et al. 2013): 16,185 images of 196 car models.

Two official layouts, the first found is read:

- ``cars_annos.mat`` beside ``car_ims/`` (the "all images" download): a struct array
  ``annotations`` with ``relative_im_path`` (``car_ims/000001.jpg``), ``bbox_x1``, ``bbox_y1``,
  ``bbox_x2``, ``bbox_y2``, ``class`` (1..196) and ``test``;
- the devkit: ``devkit/cars_train_annos.mat`` with ``cars_train/`` and
  ``cars_test_annos_withlabels.mat`` (beside ``devkit/`` or in it) with ``cars_test/``, whose
  ``annotations`` hold ``fname`` instead of a path.

Metric-learning protocol: the first half of the classes (1..98) train, the second half (99..196)
is validation, every validation image a query and a gallery item; the ``test`` flags are the
classification split and are not used. Boxes are MATLAB's 1-based inclusive pixels, written as
0-based crop corners (x_1 = bbox_x1 - 1, x_2 = bbox_x2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reprokit.data.convert.source_files import ConvertError, find_file
from reprokit.data.convert.writer import Box, Images, class_disjoint_halves

__all__ = ["read_cars"]

UNPACKS = "the Cars196 folder (holding cars_annos.mat and car_ims/, or devkit/ with cars_train/ and cars_test/)"
BOX_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")


def read_cars(src: Path) -> Images:
    if (src / "cars_annos.mat").is_file():
        entries = [
            (_text(a, "relative_im_path", src / "cars_annos.mat"), a, src / "cars_annos.mat")
            for a in _annotations(src / "cars_annos.mat")
        ]
    else:
        train_mat = find_file(src, "cars", ["cars_annos.mat", "devkit/cars_train_annos.mat"], UNPACKS)
        test_mat = find_file(
            src,
            "cars",
            ["cars_test_annos_withlabels.mat", "devkit/cars_test_annos_withlabels.mat"],
            "the Cars196 folder holding cars_test_annos_withlabels.mat (test annotations with labels)",
        )
        entries = [
            (f"{folder}/{_text(a, 'fname', mat)}", a, mat)
            for folder, mat in (("cars_train", train_mat), ("cars_test", test_mat))
            for a in _annotations(mat)
        ]
    labels = [_number(a, "class", mat) for _, a, mat in entries]
    train = class_disjoint_halves(labels)
    out = Images()
    for (path, a, mat), label in zip(entries, labels):
        out.add(label, path, label in train, box=_box(a, mat))
    return out


def _annotations(path: Path) -> np.ndarray:
    try:
        from scipy.io import loadmat
        from scipy.io.matlab import MatReadError
    except ImportError:  # scikit-learn, a dependency, brings scipy: only a broken install gets here
        raise ConvertError(
            "cars: reading .mat files needs scipy, which is not installed", hint='pip install "scipy>=1.10"'
        ) from None
    try:
        mat = loadmat(str(path))
    # A v7.3 file (HDF5) or a damaged one.
    except (MatReadError, NotImplementedError, ValueError, OSError, TypeError, EOFError) as exc:
        raise ConvertError(
            f"cars: {path.name} cannot be read as a MATLAB file: {' '.join(str(exc).split())}",
            hint="restore it from the dataset's archive",
        ) from None
    if "annotations" not in mat:
        keys = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise ConvertError(
            f"cars: {path.name} has no 'annotations' variable (it has: {keys})",
            hint="expected the official annotation file of Cars196",
        )
    annotations = np.asarray(mat["annotations"]).ravel()
    needed = {"class", *BOX_FIELDS}
    names = set(annotations.dtype.names or ())
    if not needed <= names:
        raise ConvertError(
            f"cars: {path.name}'s annotations lack the field(s) {', '.join(sorted(needed - names))} "
            f"(they have: {', '.join(sorted(names)) or 'none'})",
            hint="the devkit's cars_test_annos.mat has no classes: use cars_test_annos_withlabels.mat",
        )
    return annotations


def _value(a: Any, name: str, path: Path) -> Any:
    if name not in (a.dtype.names or ()):
        raise ConvertError(f"cars: {path.name}'s annotations have no field {name!r}")
    values = np.asarray(a[name]).ravel()
    if values.size != 1:
        raise ConvertError(f"cars: {path.name}: an annotation's {name!r} holds {values.size} values, not one")
    return values[0]


def _text(a: Any, name: str, path: Path) -> str:
    return str(_value(a, name, path)).strip()


def _number(a: Any, name: str, path: Path) -> int:
    value = _value(a, name, path)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConvertError(f"cars: {path.name}: an annotation's {name!r} is not a number: {value!r}") from None


def _box(a: Any, path: Path) -> Box:
    x1, y1, x2, y2 = (_number(a, name, path) for name in BOX_FIELDS)
    return (max(x1 - 1, 0), max(y1 - 1, 0), x2, y2)
