"""Checking the arguments of :func:`reprokit.evaluate.metrics.retrieval_metrics`.

Every problem raises :class:`RetrievalInputError` (a ``ReprokitError``, and a ``ValueError`` as
before) with one line naming the argument, the value received and what is allowed.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import NoReturn

import numpy as np
import pandas as pd
import torch

from reprokit.core.errors import ReprokitError
from reprokit.core.metric_names import EXTRA_METRICS, metric_names, unknown_extra_metrics
from reprokit.evaluate.knn import DISTANCES

__all__ = ["RetrievalInputError", "check_options", "check_per_item", "check_tensors", "sequence_codes"]


class RetrievalInputError(ReprokitError, ValueError):
    """An argument of ``retrieval_metrics`` is invalid (also a ``ValueError``, as it always was)."""


def _fail(message: str) -> NoReturn:
    raise RetrievalInputError(message)


def _as_tensor(name: str, value: object) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    raise RetrievalInputError(f"{name} must be a torch.Tensor (or numpy array); got {type(value).__name__}")


def check_tensors(embeddings, labels, is_query, is_gallery, distance):
    """``(embeddings float32/64, labels int64, is_query, is_gallery)``, all on the embeddings' device
    (the search and the metrics run there: no copy to the host), or an error."""
    embeddings = _as_tensor("embeddings", embeddings)
    labels = _as_tensor("labels", labels)
    is_query = _as_tensor("is_query", is_query)
    is_gallery = _as_tensor("is_gallery", is_gallery)
    if embeddings.ndim != 2 or not embeddings.is_floating_point():
        _fail(f"embeddings must be a 2-D float tensor [N, D]; got {embeddings.ndim}-D {embeddings.dtype}")
    n = embeddings.shape[0]
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        _fail(f"labels must be a 1-D integer tensor; got {labels.ndim}-D {labels.dtype}")
    for name, mask in (("is_query", is_query), ("is_gallery", is_gallery)):
        if mask.dtype != torch.bool or mask.ndim != 1:
            _fail(f"{name} must be a 1-D bool tensor; got {mask.ndim}-D {mask.dtype}")
    for name, t in (("labels", labels), ("is_query", is_query), ("is_gallery", is_gallery)):
        if len(t) != n:
            _fail(f"{name} must have one value per embedding row ({n}); got {len(t)}")
    if not bool(is_query.any()):
        _fail(f"is_query selects no item (of {n}); at least one query is needed")
    if not bool(is_gallery.any()):
        _fail(f"is_gallery selects no item (of {n}); at least one gallery item is needed")
    if distance not in DISTANCES:
        _fail(f"distance must be one of {', '.join(DISTANCES)}; got {distance!r}")
    if embeddings.dtype not in (torch.float32, torch.float64):
        embeddings = embeddings.float()  # half precision: compute in float32
    if not bool(torch.isfinite(embeddings).all()):
        bad = int((~torch.isfinite(embeddings)).any(dim=1).nonzero()[0])
        _fail(f"embeddings must be finite; row {bad} holds NaN or inf")
    device = embeddings.device
    return embeddings, labels.long().to(device), is_query.to(device), is_gallery.to(device)


def _check_k(name: str, k: object) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        _fail(f"{name} must hold positive integers; got {k!r}")


def _check_ks(name: str, values: object) -> None:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        _fail(f"{name} must be a sequence of positive integers such as (1, 5); got {values!r}")
    for k in values:
        _check_k(name, k)


def check_options(cmc_top_k, precision_top_k, map_top_k, extra_metrics, retrieve_k, memory_budget_mb) -> list[str]:
    """Check the k lists, the extra metrics, ``retrieve_k`` and the budget; return the metric names."""
    for name, values in (("cmc_top_k", cmc_top_k), ("precision_top_k", precision_top_k), ("map_top_k", map_top_k)):
        _check_ks(name, values)
    if isinstance(extra_metrics, (str, bytes)) or not isinstance(extra_metrics, Sequence):
        _fail(f"extra_metrics must be a sequence of names from {', '.join(EXTRA_METRICS)}; got {extra_metrics!r}")
    unknown = unknown_extra_metrics(extra_metrics)
    if unknown:
        _fail(f"extra_metrics must hold names from {', '.join(EXTRA_METRICS)}; got {unknown[0]!r}")
    if retrieve_k is not None:
        _check_k("retrieve_k", retrieve_k)
    names = metric_names(cmc_top_k, precision_top_k, map_top_k, extra_metrics)
    if not names:
        _fail("cmc_top_k, precision_top_k, map_top_k and extra_metrics are all empty; give at least one metric")
    if isinstance(memory_budget_mb, bool) or not isinstance(memory_budget_mb, (int, float)) or not memory_budget_mb > 0:
        _fail(f"memory_budget_mb must be a positive number; got {memory_budget_mb!r}")
    return names


def check_per_item(name: str, values: Sequence[Hashable] | None, n: int) -> list[Hashable] | None:
    if values is None:
        return None
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    values = list(values)
    if len(values) != n:
        _fail(f"{name} must have one value per item ({n}); got {len(values)}")
    return values


def sequence_codes(sequence_ids: Sequence[Hashable] | None, n: int) -> torch.Tensor | None:
    """[N] long codes, equal for equal ids; missing ids (None, NaN) share one code, as in OML.

    OML turns the column into codes with ``pd.factorize``, which gives every missing value the
    same code (-1): all items without a sequence count as one sequence there, and here.
    """
    if sequence_ids is None:
        return None
    values = check_per_item("sequence_ids", sequence_ids, n)
    try:
        codes, uniques = pd.factorize(pd.Series(values, dtype=object))
    except TypeError as exc:
        raise RetrievalInputError(f"sequence_ids must hold hashable ids (integers, strings); {exc}") from None
    codes = torch.from_numpy(np.asarray(codes, dtype=np.int64))
    return torch.where(codes < 0, len(uniques), codes)
