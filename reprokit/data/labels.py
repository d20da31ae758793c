"""The ``label`` column: integers, or (``data.label_map: auto``) any text numbered in sorted order.

OML's format and every metric here need integer labels (the identity an image shows). Real
catalogues often name them instead (SKUs such as ``"SKU-0042"``). With ``label_map: auto`` each
distinct label text becomes an integer, 0 for the first in sorted (Unicode code point) order,
1 for the next...: a pure function of the set of label texts, so every stage reading the same
dataframe gets the same numbers, and the train stage records them in
``runs/train/artifacts/label_map.csv`` (``label,label_text``). Integer labels are kept as they
are, mapped or not.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from reprokit.core.fileio import write_text
from reprokit.core.layout import ArtifactsDir
from reprokit.data.cells import INVALID, is_missing, show, to_int
from reprokit.data.problems import Problems

__all__ = [
    "LABEL_MAP_KEY",
    "LABEL_MAP_FILE",
    "LabelMap",
    "check_labels",
    "write_label_map",
    "read_label_map",
    "number_labels",
]

LABEL_MAP_KEY = "reprokit_label_map"  # DataFrame.attrs key of the {text: integer} mapping
LABEL_MAP_FILE = ArtifactsDir.label_map.as_posix()
_INTEGER_HINT = "every row needs an integer label (the identity its image shows), e.g. 0, 17, 4021"
_TEXT_HINT = (
    "; these look like names (SKUs): set data.label_map: auto in params.yaml to number the distinct labels in "
    "sorted order (recorded in runs/train/artifacts/label_map.csv), or map them yourself, "
    "e.g. df['label'] = pd.factorize(df['label'], sort=True)[0]"
)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else str(value.item() if isinstance(value, np.generic) else value)


class LabelMap(Mapping[str, int]):
    """``{label text: integer}``, immutable: the distinct texts in sorted order, numbered from 0.

    A copy is the object itself: pandas deep-copies ``DataFrame.attrs``, where the checked frame
    carries it, on every operation (a dict of 100,000 SKUs made each one about 200 times slower).
    """

    def __init__(self, texts: list[str]) -> None:
        self._codes = {t: i for i, t in enumerate(sorted(set(texts)))}

    def __getitem__(self, text: str) -> int:
        return self._codes[text]

    def __iter__(self) -> Iterator[str]:
        return iter(self._codes)

    def __len__(self) -> int:
        return len(self._codes)

    def __copy__(self) -> LabelMap:
        return self

    def __deepcopy__(self, memo: dict) -> LabelMap:
        return self

    def __repr__(self) -> str:
        return f"LabelMap({len(self)} labels)"


def number_labels(texts: list[str]) -> LabelMap:
    """``{text: integer}``: the distinct texts in sorted order, numbered from 0."""
    return LabelMap(texts)


def check_labels(values: list, rep: Problems, label_map: str | None = None) -> tuple[np.ndarray, LabelMap | None]:
    """(int64 labels, the mapping used or None); problems go to ``rep`` (a broken column: ``label``)."""
    parsed = [None if is_missing(v) else to_int(v) for v in values]
    if label_map == "auto" and any(x is INVALID for x in parsed):
        empty = [i for i, x in enumerate(parsed) if x is None]
        if empty:
            rep.fail(
                "'label'",
                "without a label",
                empty,
                ["(empty)"] * len(empty),
                hint="every row needs a label (the identity its image shows)",
                broken="label",
            )
        texts = [None if x is None else _text(v) for v, x in zip(values, parsed)]
        mapping = number_labels([t for t in texts if t is not None])
        return np.asarray([-1 if t is None else mapping[t] for t in texts], dtype=np.int64), mapping
    bad = [i for i, x in enumerate(parsed) if x is None or x is INVALID]
    if bad:
        # A text that is no number at all is a name: say how to map names, not how to write integers.
        named = any(parsed[i] is INVALID and isinstance(values[i], str) and not _numeric(values[i]) for i in bad)
        rep.fail(
            "'label'",
            "with a non-integer value",
            bad,
            [show(values[i]) for i in bad],
            hint=_INTEGER_HINT + (_TEXT_HINT if named else ""),
            broken="label",
        )
        return np.asarray([-1 if x is None or x is INVALID else x for x in parsed], dtype=np.int64), None
    return np.asarray(parsed, dtype=np.int64), None


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_label_map(path: Path, mapping: Mapping[str, int]) -> Path:
    """``label,label_text`` rows in label order (csv quoting for texts holding commas or quotes)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["label", "label_text"])
    writer.writerows(sorted(((code, text) for text, code in mapping.items())))
    return write_text(path, buf.getvalue())


def read_label_map(path: Path) -> dict[str, int]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["label_text"]: int(row["label"]) for row in csv.DictReader(fh)}
