"""Retrieval metrics: OML's CMC@k, Precision@k, MAP@k and PML's MAP@R, R-precision, MRR, AP.

Every one overall, per category and per query. Definitions of the first three (those of
open-metric-learning >= 3.0, so numbers are comparable with OML's):

- Every query is ranked against the gallery by distance ("euclidean" or "cosine" = 1 - cos),
  nearest first; equal distances are ordered by item index. An item that is both a query and a
  gallery item is never retrieved for itself. With ``sequence_ids``, a gallery item of the
  query's own sequence is never retrieved for it either (OML's ``sequence`` column).
- Ground truth of a query: the gallery items with the same label that it may retrieve (not
  itself, not its sequence); ``n_gt`` is their number. ``rel_i`` is 1 when the i-th retrieved
  item is ground truth.
- ``k' = min(k, number of items retrievable for the query)``.
- CMC@k = 1 if any of the first k' retrieved items is relevant, else 0.
- Precision@k = (relevant among the first k') / min(n_gt, k').
- MAP@k = sum_{i <= k'} precision-at-i * rel_i / (relevant among the first k'); 0 when none of
  the first k' is relevant. (precision-at-i = relevant among the first i, divided by i.)
- A query with no ground truth in the gallery (``n_gt == 0``) is left out of every average; its
  per-query metrics are NaN and ``n_skipped`` counts it. Averages therefore never hold NaN.
- Per category: the same averages over the queries of that category. A category whose queries
  all lack ground truth has nothing to average and is left out of ``by_category``.

``extra_metrics`` adds pytorch-metric-learning's ``map@r``, ``r_precision``, ``mrr`` and ``ap``
(defined in :mod:`reprokit.evaluate.ranks`, from the ranks of the ground truth in the whole
ranking), under the same rules. Each costs what it needs: ``map@r`` and ``r_precision`` alone come
from a top-K search, K = the largest class (:mod:`reprokit.evaluate.top_r`); ``mrr`` or ``ap``
rank every ground-truth item in the whole ranking, and only when asked for.

Everything runs on the embeddings' device. With ``distributed=True`` under a process group of
several ranks, each rank searches a contiguous share of the queries against the whole gallery and
the per-query results are gathered: every number and list is the one process's (a query's row
never depends on which other queries share its chunk).

The search lives in :mod:`reprokit.evaluate.knn` (chunked GEMM + topk, memory bounded by
``memory_budget_mb``, never Q x G at once); this module turns the [Q, K] retrieved lists into
relevance and metrics, and packages the result.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from reprokit.core.metric_names import EXTRA_METRICS, metric_names
from reprokit.evaluate.exclusions import Exclusions
from reprokit.evaluate.gather import gather_rows, process_share, share_of_queries
from reprokit.evaluate.inputs import RetrievalInputError, check_options, check_per_item, check_tensors, sequence_codes
from reprokit.evaluate.knn import chunked_knn
from reprokit.evaluate.ranks import GroundTruthRanks
from reprokit.evaluate.top_r import bounded_k, needs_whole_ranking, top_r_metrics

__all__ = [
    "EXTRA_METRICS",
    "RetrievalInputError",
    "RetrievalResult",
    "metric_names",
    "metrics_from_relevance",
    "retrieval_metrics",
]


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
    zero = torch.zeros(n_q, 1, dtype=torch.float64, device=relevant.device)
    hits = torch.cat([zero, hits], dim=1)  # hits[:, i], i = 0..K
    ranks = torch.arange(1, n_k + 1, dtype=torch.float64, device=relevant.device)
    ap_terms = torch.cat([zero, (hits[:, 1:] / ranks * relevant).cumsum(dim=1)], dim=1)
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
    sequence_ids: Sequence[Hashable] | None = None,
    extra_metrics: Sequence[str] = (),
    distributed: bool = False,
) -> RetrievalResult:
    """Rank every query against the gallery and score it; see the module docstring for definitions.

    ``retrieve_k`` asks for at least that many retrieved items per query (K = max of every k and
    ``retrieve_k``, capped at the number of retrievable gallery items). ``progress`` shows a bar
    over the query chunks on stderr. ``sequence_ids``: one id per item (any hashable; None/NaN
    count as one shared id, as in OML). ``extra_metrics``: any of ``map@r``, ``r_precision``,
    ``mrr``, ``ap``. Invalid input raises :class:`RetrievalInputError` (a ``ValueError``).

    ``distributed``: under an initialised ``torch.distributed`` process group of several ranks,
    called by every rank with the same (whole) inputs, each rank searches its share of the
    queries against the whole gallery and the per-query results are gathered: every rank
    returns the result one process gives, to the bit. Tensors stay on the embeddings' device.
    """
    embeddings, labels, is_query, is_gallery = check_tensors(embeddings, labels, is_query, is_gallery, distance)
    names = check_options(cmc_top_k, precision_top_k, map_top_k, extra_metrics, retrieve_k, memory_budget_mb)
    categories = check_per_item("categories", categories, len(embeddings))
    split = _Split(is_query, is_gallery, labels, sequence_codes(sequence_ids, len(embeddings)))

    wanted = max([*cmc_top_k, *precision_top_k, *map_top_k, retrieve_k or 0])
    k = min(wanted, int(split.n_retrievable.max()))
    gallery = embeddings if bool(is_gallery.all()) else embeddings[split.gallery_items]
    rank, world = process_share() if distributed else (0, 1)
    rows = share_of_queries(len(split.query_items), rank, world)
    # All queries and one process: no copy of the embeddings; otherwise only this rank's queries.
    queries = embeddings[rows] if bool(is_query.all()) else embeddings[split.query_items[rows]]
    ks = (cmc_top_k, precision_top_k, map_top_k)
    search = (distance, memory_budget_mb, progress)
    if rows.stop > rows.start:
        per_query, retrieved, dists = _score_share(split, labels, queries, gallery, rows, k, ks, extra_metrics, search)
    else:  # an empty share (more ranks than queries): nothing to search, rows of nothing to send
        per_query = {name: np.empty(0) for name in names}
        retrieved = torch.empty((0, k), dtype=torch.long, device=embeddings.device)
        dists = torch.empty((0, k), dtype=embeddings.dtype, device=embeddings.device)
    per_query = {name: per_query[name] for name in names}  # one order on every rank
    if world > 1:  # every rank scored its share: gather them (rank order = query order)
        stacked = torch.from_numpy(np.stack([per_query[n] for n in per_query], axis=1)).to(retrieved.device)
        retrieved, dists, stacked = (gather_rows(t) for t in (retrieved, dists, stacked))
        per_query = {n: stacked[:, i].cpu().numpy() for i, n in enumerate(per_query)}
    query_cats = [categories[i] for i in split.query_items.tolist()] if categories is not None else None
    query_labels = labels[split.query_items]
    return _result(split, query_labels.cpu(), query_cats, per_query, retrieved.cpu(), dists.cpu(), names)


def _score_share(split, labels, queries, gallery, rows, k, ks, extra_metrics, search):
    """Per-query metrics (float64 numpy), retrieved items and distances of the queries ``rows``.

    map@r and r_precision alone come from a top-K search, K = the largest R (``top_r``); mrr or
    ap from every ground-truth item's rank (``GroundTruthRanks`` watching the search's blocks).
    """
    distance, budget, show = search
    self_pos, excl = split.self_pos[rows], split.exclusions.subset(rows)
    n_gt, n_retrievable = split.n_gt[rows], split.n_retrievable[rows]
    query_codes, query_labels = split.query_codes[rows], labels[split.query_items[rows]]
    whole = bool(extra_metrics) and needs_whole_ranking(extra_metrics)
    k_search, big = k, None
    if extra_metrics and not whole:
        cap = bounded_k(len(n_gt), budget)
        big = n_gt > cap  # a class too large for the budget: the whole-ranking path, same numbers
        r_max = int(n_gt[~big].max()) if bool((~big).any()) else 0
        k_search = max(k, min(r_max, int(n_retrievable.max()) if len(n_retrievable) else 0))
    observer = GroundTruthRanks(query_codes, split.gallery_codes, excl, extra_metrics) if whole else None
    try:
        pos, dists = chunked_knn(queries, gallery, k_search, self_pos, distance, budget, show, excl, observer)
    finally:
        if observer is not None:
            observer.close()
    retrieved = torch.where(pos >= 0, split.gallery_items[pos.clamp(min=0)], pos)
    relevant = (labels[retrieved.clamp(min=0)] == query_labels[:, None]) & (pos >= 0)
    oml = metrics_from_relevance(relevant[:, :k], n_gt, n_retrievable, *ks)
    found = {name: values.cpu().numpy() for name, values in oml.items()}
    if observer is not None:
        found |= observer.values
    elif extra_metrics:
        found |= top_r_metrics(relevant, n_gt, extra_metrics)
        if bool(big.any()):
            found_big = _whole_ranking(split, queries, gallery, rows, big, extra_metrics, search)
            at = big.cpu().numpy()
            for name, values in found_big.items():
                found[name][at] = values
    return found, retrieved[:, :k], dists[:, :k]


def _whole_ranking(split, queries, gallery, rows, big, extra_metrics, search) -> dict[str, np.ndarray]:
    """Rank metrics of the queries ``big`` (of ``rows``) from their whole rankings."""
    distance, budget, show = search
    at = torch.nonzero(big).squeeze(1)
    excl = split.exclusions.subset(rows).subset(at)
    observer = GroundTruthRanks(split.query_codes[rows][at], split.gallery_codes, excl, extra_metrics)
    try:
        chunked_knn(queries[at], gallery, 0, excl.self_pos, distance, budget, show, excl, observer)
    finally:
        observer.close()
    return observer.values


class _Split:
    """Queries and gallery items, where each query sits in the gallery, what it may not retrieve."""

    def __init__(self, is_query, is_gallery, labels: torch.Tensor, groups: torch.Tensor | None) -> None:
        n = len(is_query)
        self.query_items = torch.nonzero(is_query).squeeze(1)
        self.gallery_items = torch.nonzero(is_gallery).squeeze(1)
        n_g = len(self.gallery_items)
        # Position of every item in the gallery (-1 if not a gallery item): masks each query's self-match.
        gallery_pos_of_item = torch.full((n,), -1, dtype=torch.long, device=labels.device)
        gallery_pos_of_item[self.gallery_items] = torch.arange(n_g, device=labels.device)
        self.self_pos = gallery_pos_of_item[self.query_items]
        groups = groups.to(labels.device) if groups is not None else None
        if groups is None:
            self.exclusions = Exclusions(self.self_pos, n_g)
        else:
            self.exclusions = Exclusions(self.self_pos, n_g, groups[self.query_items], groups[self.gallery_items])
        self.n_retrievable = n_g - self.exclusions.count()
        codes = torch.unique(labels, return_inverse=True)[1]  # labels as 0..L-1: any int64 value
        self.query_codes, self.gallery_codes = codes[self.query_items], codes[self.gallery_items]
        self.n_gt = _count_ground_truth(self.gallery_codes, self.query_codes)
        if groups is None:
            self.n_gt -= (self.self_pos >= 0).long()
        else:  # same label, own sequence (the query itself included): label code x group code pairs
            n_groups = int(groups.max()) + 1
            pair = codes * n_groups + groups
            self.n_gt -= _count_ground_truth(pair[self.gallery_items], pair[self.query_items])


def _result(split, query_labels, query_cats, per_query, retrieved, dists, names) -> RetrievalResult:
    """Averages over the queries with ground truth, overall and per category, and the per-query table."""
    n_gt = split.n_gt.cpu()
    has_gt = (n_gt > 0).numpy()
    if not has_gt.any():
        raise RetrievalInputError(
            f"no query has a ground-truth item in the gallery ({len(split.query_items)} queries): every query "
            "label must appear on another gallery item (outside the query's sequence, with sequence_ids)"
        )
    overall = {name: float(np.mean(values[has_gt])) for name, values in per_query.items()}
    by_category = _by_category(per_query, has_gt, query_cats) if query_cats is not None else {}
    table = _per_query_table(split.query_items.cpu(), query_labels, query_cats, per_query, n_gt, retrieved, dists)
    return RetrievalResult(
        overall=overall,
        by_category=by_category,
        per_query=table,
        retrieved=retrieved,
        distances=dists.float(),
        n_queries=len(split.query_items),
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
