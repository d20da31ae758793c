"""The per-query table (``runs/validate/per_query.tsv``): its list cells, written by validate, read by
visualize, the report and ``reprokit compare``.

One row per validation query: ``item`` (its row in the validation split), ``path`` (its image,
the dataframe's ``path``: the item's stable identity across runs), ``label``, ``category`` (when
the dataframe has one), one column per metric (empty: the query has no ground truth), ``n_gt``, and
its top-k retrieved gallery items three ways, nearest first:

- ``retrieved``: their rows in the validation split, space-separated integers;
- ``distances``: their distances to the query, space-separated numbers;
- ``retrieved_paths``: their ``path``s, space-separated, each percent-encoded (``%20`` for a space,
  ``%25`` for ``%``; ``/`` kept) so that any path survives the round trip. Runs written before
  this column existed lack it: readers then fall back to ``retrieved``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote

import pandas as pd

__all__ = ["encode_paths", "decode_paths", "encode_ints", "encode_floats", "read_per_query", "LIST_COLUMNS"]

LIST_COLUMNS = ("retrieved", "distances", "retrieved_paths")


def encode_paths(paths: Iterable[str]) -> str:
    return " ".join(quote(str(p), safe="/") for p in paths)


def decode_paths(cell: object) -> list[str]:
    return [unquote(p) for p in cell.split(" ") if p] if isinstance(cell, str) else []


def encode_ints(values: Iterable[int]) -> str:
    return " ".join(str(int(v)) for v in values)


def encode_floats(values: Iterable[float], digits: int = 6) -> str:
    return " ".join(repr(round(float(v), digits)) for v in values)


def _split(cell: object, kind: type) -> list:
    return [kind(x) for x in cell.split()] if isinstance(cell, str) else []


def read_per_query(source: str | Path | IO[str]) -> pd.DataFrame:
    """The table with its list cells as Python lists (``retrieved_paths`` only when the run wrote it)."""
    # retrieved_paths decoded from the raw text of its cells (a converter sees it before NA parsing).
    pq = pd.read_csv(
        source,
        sep="\t",
        keep_default_na=True,
        dtype={"category": str, "path": str},
        converters={"retrieved_paths": decode_paths},
    )
    pq["retrieved"] = [_split(s, int) for s in pq["retrieved"]]
    pq["distances"] = [_split(s, float) for s in pq["distances"]]
    return pq
