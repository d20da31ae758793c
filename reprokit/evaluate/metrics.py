"""Retrieval metrics: CMC@k, Precision@k and MAP@k, overall, per category and per query.

Definitions (those of open-metric-learning >= 3.0, so numbers are comparable with OML's):

- Every query is ranked against the gallery by distance ("euclidean" or "cosine" = 1 - cos),
  nearest first; equal distances are ordered by item index. An item that is both a query and a
  gallery item is never retrieved for itself.
- Ground truth of a query: the gallery items with the same label, except the query item itself;
  ``n_gt`` is their number. ``rel_i`` is 1 when the i-th retrieved item is ground truth.
- ``k' = min(k, number of items retrievable for the query)``.
- CMC@k = 1 if any of the first k' retrieved items is relevant, else 0.
- Precision@k = (relevant among the first k') / min(n_gt, k').
- MAP@k = sum_{i <= k'} precision-at-i * rel_i / (relevant among the first k'); 0 when none of
  the first k' is relevant. (precision-at-i = relevant among the first i, divided by i.)
- A query with no ground truth in the gallery (``n_gt == 0``) is left out of every average; its
  per-query metrics are NaN and ``n_skipped`` counts it. Averages therefore never hold NaN.
- Per category: the same averages over the queries of that category. A category whose queries
  all lack ground truth has nothing to average and is left out of ``by_category``.

The search itself lives in :mod:`reprokit.evaluate.knn` (chunked GEMM + topk, memory bounded by
``memory_budget_mb``, never Q x G at once); this module validates inputs, turns the [Q, K]
retrieved lists into relevance and metrics, and packages the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Hashable

import numpy as np
import pandas as pd
import torch

from reprokit.evaluate.knn import DISTANCES, chunked_knn

__all__ = ["RetrievalResult", "retrieval_metrics", "metric_names", "metrics_from_relevance"]


@dataclass(frozen=True)
class RetrievalResult:
    overall: dict[str, float]
    by_category: dict[Hashable, dict[str, float]]
    per_query: pd.DataFrame
    retrieved: torch.Tensor  # [Q, K] long item indices, nearest first (-1 = padding, see knn)
    distances: torch.Tensor  # [Q, K] float
    n_queries: int  # all queries, including the skipped ones
    n_skipped: int  # queries without ground truth in the gallery
    metric_names: list[str] = field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        """Plain-Python form of runs/validate/metrics.json (category keys as sorted strings)."""
        by_cat = {str(c): {m: float(v) for m, v in vals.items()} for c, vals in self.by_category.items()}
        return {
            "overall": {m: float(v) for m, v in self.overall.items()},
            "by_category": {c: by_cat[c] for c in sorted(by_cat)},
            "n_queries": int(self.n_queries),
            "n_queries_without_gt": int(self.n_skipped),
        }


def metric_names(cmc_top_k: Sequence[int], precision_top_k: Sequence[int], map_top_k: Sequence[int]) -> list[str]:
    names = [f"cmc@{k}" for k in cmc_top_k] + [f"precision@{k}" for k in precision_top_k]
    names += [f"map@{k}" for k in map_top_k]
    return list(dict.fromkeys(names))  # duplicates once, order kept


def metrics_from_relevance(
    relevant: torch.Tensor,
    n_gt: torch.Tensor,
    n_retrievable: torch.Tensor,
    cmc_top_k: Sequence[int],
    precision_top_k: Sequence[int],
    map_top_k: Sequence[int],
) -> dict[str, torch.Tensor]:
    """Per-query metrics (float64 [Q]) from the [Q, K] relevance of the retrieved lists.

    ``relevant`` must be False in padding slots. Queries with ``n_gt == 0`` get NaN.
    """
    n_q, n_k = relevant.shape
    hits = relevant.to(torch.float64).cumsum(dim=1)  # relevant among the first i (exact: 0/1 sums)
    hits = torch.cat([torch.zeros(n_q, 1, dtype=torch.float64), hits], dim=1)  # hits[:, i], i = 0..K
    ranks = torch.arange(1, n_k + 1, dtype=torch.float64)
    ap_terms = torch.cat(
        [torch.zeros(n_q, 1, dtype=torch.float64), (hits[:, 1:] / ranks * relevant).cumsum(dim=1)], dim=1
    )
    out: dict[str, torch.Tensor] = {}
    for k in cmc_top_k:
        out[f"cmc@{k}"] = (hits[:, min(k, n_k)] > 0).to(torch.float64)
    for k in precision_top_k:
        k_eff = torch.clamp(n_retrievable, max=k)
        denom = torch.minimum(n_gt, k_eff).clamp(min=1).to(torch.float64)
        out[f"precision@{k}"] = hits[:, min(k, n_k)] / denom
    for k in map_top_k:
        n_rel = hits[:, min(k, n_k)]
        ap = ap_terms[:, min(k, n_k)]
        out[f"map@{k}"] = torch.where(n_rel > 0, ap / n_rel.clamp(min=1), torch.zeros_like(ap))
    no_gt = n_gt == 0
    for values in out.values():
        values[no_gt] = math.nan
    return out


def retrieval_metrics(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    is_query: torch.Tensor,
    is_gallery: torch.Tensor,
    categories: Sequence[Hashable] | None = None,
    cmc_top_k: Sequence[int] = (1, 5),
    precision_top_k: Sequence[int] = (5,),
    map_top_k: Sequence[int] = (5,),
    distance: str = "euclidean",
    memory_budget_mb: float = 1024,
    retrieve_k: int | None = None,
    progress: bool = False,
) -> RetrievalResult:
    """Rank every query against the gallery and score it; see the module docstring for definitions.

    ``retrieve_k`` asks for at least that many retrieved items per query (K = max of every k and
    ``retrieve_k``, capped at the number of retrievable gallery items). ``progress`` shows a bar
    over the query chunks on stderr. Invalid input raises ``ValueError`` naming the argument.
    """
    embeddings, labels, is_query, is_gallery = _check_inputs(embeddings, labels, is_query, is_gallery, distance)
    ks = {"cmc_top_k": cmc_top_k, "precision_top_k": precision_top_k, "map_top_k": map_top_k}
    for name, values in ks.items():
        _check_ks(name, values)
    if retrieve_k is not None:
        _check_k("retrieve_k", retrieve_k)
    names = metric_names(cmc_top_k, precision_top_k, map_top_k)
    if not names:
        raise ValueError("cmc_top_k, precision_top_k and map_top_k are all empty; give at least one k")
    if isinstance(memory_budget_mb, bool) or not isinstance(memory_budget_mb, (int, float)) or not memory_budget_mb > 0:
        raise ValueError(f"memory_budget_mb must be a positive number; got {memory_budget_mb!r}")
    n = embeddings.shape[0]
    if categories is not None:
        categories = list(categories)
        if len(categories) != n:
            raise ValueError(f"categories must have one value per item ({n}); got {len(categories)}")

    query_items = torch.nonzero(is_query).squeeze(1)
    gallery_items = torch.nonzero(is_gallery).squeeze(1)
    n_g = len(gallery_items)
    # Position of every item in the gallery (-1 if not a gallery item): masks each query's self-match.
    gallery_pos_of_item = torch.full((n,), -1, dtype=torch.long)
    gallery_pos_of_item[gallery_items] = torch.arange(n_g)
    self_pos = gallery_pos_of_item[query_items]
    n_retrievable = n_g - (self_pos >= 0).long()

    wanted = max([*cmc_top_k, *precision_top_k, *map_top_k, retrieve_k or 0])
    k = min(wanted, int(n_retrievable.max()))
    queries = embeddings if bool(is_query.all()) else embeddings[query_items]  # no copy when all
    gallery = embeddings if bool(is_gallery.all()) else embeddings[gallery_items]
    pos, dists = chunked_knn(queries, gallery, k, self_pos, distance, memory_budget_mb, progress)

    retrieved = torch.where(pos >= 0, gallery_items[pos.clamp(min=0)], pos)
    query_labels = labels[query_items]
    relevant = (labels[retrieved.clamp(min=0)] == query_labels[:, None]) & (pos >= 0)
    n_gt = _count_ground_truth(labels[gallery_items], query_labels) - (self_pos >= 0).long()
    per_query = metrics_from_relevance(relevant, n_gt, n_retrievable, cmc_top_k, precision_top_k, map_top_k)
    per_query = {name: per_query[name].numpy() for name in names}

    has_gt = (n_gt > 0).numpy()
    if not has_gt.any():
        raise ValueError(
            f"no query has a ground-truth item in the gallery ({len(query_items)} queries): every query "
            "label must appear on another gallery item"
        )
    overall = {name: float(np.mean(values[has_gt])) for name, values in per_query.items()}
    query_cats = [categories[i] for i in query_items.tolist()] if categories is not None else None
    by_category = _by_category(per_query, has_gt, query_cats) if query_cats is not None else {}

    table = _per_query_table(query_items, query_labels, query_cats, per_query, n_gt, retrieved, dists)
    return RetrievalResult(
        overall=overall,
        by_category=by_category,
        per_query=table,
        retrieved=retrieved,
        distances=dists.float(),
        n_queries=len(query_items),
        n_skipped=int((~has_gt).sum()),
        metric_names=names,
    )


def _count_ground_truth(gallery_labels: torch.Tensor, query_labels: torch.Tensor) -> torch.Tensor:
    """Gallery items sharing each query's label, from a label histogram (never a Q x G mask)."""
    uniq, counts = torch.unique(gallery_labels, return_counts=True)  # sorted
    at = torch.searchsorted(uniq, query_labels).clamp(max=len(uniq) - 1)
    return torch.where(uniq[at] == query_labels, counts[at], torch.zeros_like(counts[at]))


def _by_category(
    per_query: dict[str, np.ndarray], has_gt: np.ndarray, query_cats: list[Hashable]
) -> dict[Hashable, dict[str, float]]:
    groups: dict[Hashable, list[int]] = {}
    for row, cat in enumerate(query_cats):
        if has_gt[row]:
            groups.setdefault(cat, []).append(row)
    out = {}
    for cat in sorted(groups, key=str):  # deterministic order whatever the category type
        rows = np.asarray(groups[cat])
        out[cat] = {name: float(np.mean(values[rows])) for name, values in per_query.items()}
    return out


def _per_query_table(query_items, query_labels, query_cats, per_query, n_gt, retrieved, dists) -> pd.DataFrame:
    n_q = len(query_items)
    retrieved_lists = retrieved.tolist()
    dist_lists = dists.tolist()
    if bool((retrieved < 0).any()):  # drop padding slots (only when K equals the gallery size)
        retrieved_lists = [[i for i in r if i >= 0] for r in retrieved_lists]
        dist_lists = [d[: len(r)] for d, r in zip(dist_lists, retrieved_lists)]
    data: dict[str, Any] = {
        "item": query_items.numpy(),
        "label": query_labels.numpy(),
        "category": query_cats if query_cats is not None else [None] * n_q,
    }
    data.update(per_query)
    data["n_gt"] = n_gt.numpy()
    data["retrieved"] = retrieved_lists
    data["distances"] = dist_lists
    return pd.DataFrame(data, columns=list(data))


def _check_k(name: str, k: object) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"{name} must hold positive integers; got {k!r}")


def _check_ks(name: str, values: object) -> None:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a sequence of positive integers such as (1, 5); got {values!r}")
    for k in values:
        _check_k(name, k)


def _as_tensor(name: str, value: object) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    raise ValueError(f"{name} must be a torch.Tensor (or numpy array); got {type(value).__name__}")


def _check_inputs(embeddings, labels, is_query, is_gallery, distance):
    embeddings = _as_tensor("embeddings", embeddings)
    labels = _as_tensor("labels", labels)
    is_query = _as_tensor("is_query", is_query)
    is_gallery = _as_tensor("is_gallery", is_gallery)
    if embeddings.ndim != 2 or not embeddings.is_floating_point():
        raise ValueError(
            f"embeddings must be a 2-D float tensor [N, D]; got {embeddings.ndim}-D {embeddings.dtype}"
        )
    n = embeddings.shape[0]
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D integer tensor; got {labels.ndim}-D {labels.dtype}")
    for name, mask in (("is_query", is_query), ("is_gallery", is_gallery)):
        if mask.dtype != torch.bool or mask.ndim != 1:
            raise ValueError(f"{name} must be a 1-D bool tensor; got {mask.ndim}-D {mask.dtype}")
    for name, t in (("labels", labels), ("is_query", is_query), ("is_gallery", is_gallery)):
        if len(t) != n:
            raise ValueError(f"{name} must have one value per embedding row ({n}); got {len(t)}")
    if not bool(is_query.any()):
        raise ValueError(f"is_query selects no item (of {n}); at least one query is needed")
    if not bool(is_gallery.any()):
        raise ValueError(f"is_gallery selects no item (of {n}); at least one gallery item is needed")
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {', '.join(DISTANCES)}; got {distance!r}")
    if embeddings.dtype not in (torch.float32, torch.float64):
        embeddings = embeddings.float()  # half precision: compute in float32
    if not bool(torch.isfinite(embeddings).all()):
        bad = int((~torch.isfinite(embeddings)).any(dim=1).nonzero()[0])
        raise ValueError(f"embeddings must be finite; row {bad} holds NaN or inf")
    return embeddings, labels.long(), is_query, is_gallery
