"""A progress bar on stderr for long loops outside Lightning (embedding, metric chunks)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = ["progress"]


def progress(items: Iterable[T], desc: str, enabled: bool = True) -> Iterator[T]:
    if not enabled:
        yield from items
        return
    from tqdm.auto import tqdm  # installed with Lightning

    # mininterval keeps the cost negligible; leave=False keeps DVC's log short.
    yield from tqdm(items, desc=desc, file=sys.stderr, mininterval=0.5, leave=False, dynamic_ncols=True)
