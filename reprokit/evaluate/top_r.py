"""MAP@R and R-precision from a top-K search: the rank metrics that need only each query's top R.

A query's ``map@r`` and ``r_precision`` (see :mod:`reprokit.evaluate.ranks`) depend only on its
ground-truth items ranked within its first ``R = n_gt`` places. So the kNN search is asked for
``K`` = the largest ``R`` of any query (that is all pytorch-metric-learning's
``k="max_bin_count"`` does too), and the ranks of the ground truth within each query's first R
retrieved items are read off the retrieved lists; a ground-truth item ranked past R gets a rank
past R. The metrics then come from :func:`reprokit.evaluate.ranks.metrics_from_ranks`, the same
code as the whole-ranking path, so the two give the same float64 numbers bit for bit (the
retrieved lists order ties by item index, as the ranks do).

``K`` is capped by the memory budget (the [Q, K] search result and its relevance cost about
``BYTES_PER_SLOT`` bytes per slot): a query whose class is larger than the cap allows is ranked
by the whole-ranking path instead (:class:`reprokit.evaluate.ranks.GroundTruthRanks` over those
queries alone), with the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from reprokit.evaluate.ranks import metrics_from_ranks

__all__ = ["BOUNDED_METRICS", "BYTES_PER_SLOT", "bounded_k", "needs_whole_ranking", "top_r_metrics"]

# The rank metrics a top-R search answers; mrr and ap need every ground-truth item's rank.
BOUNDED_METRICS = ("map@r", "r_precision")
# Bytes per [Q, K] slot while the top-K result is made and read: keys and positions (12), the
# tie-ordering copies (about 24), the relevance and ranks (9).
BYTES_PER_SLOT = 48


def needs_whole_ranking(wanted: Sequence[str]) -> bool:
    return any(name not in BOUNDED_METRICS for name in wanted)


def bounded_k(n_queries: int, memory_budget_mb: float) -> int:
    """The largest K whose [n_queries, K] result fits ``memory_budget_mb`` (at least 1)."""
    return int(max(1, memory_budget_mb * 2**20 // (max(1, n_queries) * BYTES_PER_SLOT)))


def top_r_metrics(relevant: torch.Tensor, n_gt: torch.Tensor, wanted: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-query float64 ``wanted`` (map@r, r_precision) from the [Q, K] relevance of the retrieved
    lists, K >= every query's ``n_gt`` or its retrievable items (``relevant`` False in padding).

    Queries with ``n_gt == 0`` get NaN.
    """
    n_q, n_k = relevant.shape
    m = int(n_gt.max()) if n_q else 0
    m = min(m, n_k)
    slot = torch.arange(m, device=relevant.device)
    within = relevant[:, :m] & (slot[None, :] < n_gt[:, None])  # ground truth within the first R
    nth = within.cumsum(dim=1) - 1  # which ground-truth item (0-based) a relevant slot holds
    row, col = torch.nonzero(within, as_tuple=True)
    # A ground-truth item not within the first R: any rank past R (here past every R).
    past = int(n_gt.max()) + 1 if n_q else 1
    ranks = torch.full((n_q, max(m, 1)), past, dtype=torch.long, device=relevant.device)
    ranks[row, nth[row, col]] = col + 1
    return metrics_from_ranks(ranks[:, :m].cpu().numpy(), n_gt.cpu().numpy(), list(wanted))
