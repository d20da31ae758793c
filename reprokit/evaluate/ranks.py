"""MAP@R, R-precision, MRR and AP: metrics of the ranks of each query's ground-truth items.

Definitions (those of pytorch-metric-learning 2.9.0's ``AccuracyCalculator``, in reprokit's
query/gallery model). ``R`` is a query's number of ground-truth gallery items (``n_gt``) and
``r_1 < r_2 < ... < r_R`` their ranks (1-based) in its whole ranking, ties by item index:

- ``map@r`` = (1/R) * sum over j with r_j <= R of j / r_j  (MAP@R, Musgrave et al. 2020)
- ``r_precision`` = (number of j with r_j <= R) / R
- ``mrr`` = 1 / r_1
- ``ap`` = (1/R) * sum over all j of j / r_j  (average precision over the whole ranking)

(``j / r_j`` is the precision at the j-th relevant item.) Queries with R = 0 get NaN.

How. :class:`GroundTruthRanks` is a block observer of :func:`reprokit.evaluate.knn.chunked_knn`:
for each query chunk it sorts the keys of every row (numpy's vectorised sort, about half a GEMM
here, spread over the torch threads), looks up each ground-truth item's key by binary search and
reduces the ranks to the four numbers at once. Memory stays within the chunk: ranks are never
kept, a class of 10,000 items costs 10,000 entries per query of the chunk, processed in
sub-batches. A row where a ground-truth key equals another key (an exact tie) is ranked by a
stable sort instead, which orders equal keys by position as the kNN does.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from reprokit.evaluate.exclusions import Exclusions

__all__ = ["GroundTruthRanks", "metrics_from_ranks"]

# Entries (query x ground-truth item) per sub-batch, relative to the chunk's block elements.
_ENTRIES_PER_ELEMENT = 1 / 8


class GroundTruthRanks:
    """Block observer computing ``wanted`` rank metrics of every query, chunk by chunk.

    Args:
        query_codes: [Q] long label codes of the queries.
        gallery_codes: [G] long label codes of the gallery items.
        exclusions: the gallery items each query never retrieves (never ground truth either).
        wanted: names among ``map@r``, ``r_precision``, ``mrr``, ``ap``.
    """

    # The sorted copy of the block (4 bytes) plus the sub-batched ground-truth entries (about
    # 60 bytes each, at most one per 8 block elements).
    bytes_per_element: float = 12

    def __init__(
        self, query_codes: torch.Tensor, gallery_codes: torch.Tensor, exclusions: Exclusions, wanted: Sequence[str]
    ) -> None:
        self.wanted = list(wanted)
        n_g = self.n_gallery = len(gallery_codes)
        n_codes = int(max(query_codes.max(), gallery_codes.max())) + 1
        self._query_codes = query_codes.cpu().numpy()
        # The gallery positions of each label, in position order: label c at _order[_start[c]:][:_count[c]].
        gallery_codes = gallery_codes.cpu()
        self._order = (torch.sort(gallery_codes * n_g + torch.arange(n_g)).values % n_g).numpy()
        self._count = torch.bincount(gallery_codes, minlength=n_codes).numpy()
        self._start = np.cumsum(self._count) - self._count
        self._self_pos = exclusions.self_pos.cpu().numpy()
        query_group, gallery_group = exclusions.query_group, exclusions.gallery_group  # both or neither
        self._query_group = query_group.cpu().numpy() if query_group is not None else None
        self._gallery_group = gallery_group.cpu().numpy() if gallery_group is not None else None
        self.values = {name: np.full(len(query_codes), np.nan) for name in self.wanted}
        # map@r and r_precision need the ranks up to R only: the smallest max(R) + 1 keys of a row.
        self._whole_ranking = bool({"mrr", "ap"} & set(self.wanted))
        self._threads = max(1, torch.get_num_threads())
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, rows: slice, block: torch.Tensor) -> None:
        # numpy ranks on the host: a block on a GPU is copied (only the whole-ranking path does this).
        keys = block[:, : self.n_gallery].cpu().numpy()
        n = keys.shape[0]
        parts = [(i * n // self._threads, (i + 1) * n // self._threads) for i in range(self._threads)]
        if self._threads == 1 or n < 2 * self._threads:
            self._part(rows.start, keys)
            return
        self._pool = self._pool or ThreadPoolExecutor(self._threads)
        list(self._pool.map(lambda part: self._part(rows.start + part[0], keys[part[0] : part[1]]), parts))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _part(self, first: int, keys: np.ndarray) -> None:
        """Ranks and metrics of the query rows ``first, first + 1, ...`` (numpy: runs in a worker thread)."""
        widest = int(self._count[self._query_codes[first : first + len(keys)]].max())
        if self._whole_ranking:
            sorted_keys = np.sort(keys, axis=1)
        else:  # a partition is about 3 times cheaper than a sort
            k = min(widest, self.n_gallery - 1)
            sorted_keys = np.sort(np.partition(keys, k, axis=1)[:, : k + 1], axis=1)
        step = max(1, int(keys.size * _ENTRIES_PER_ELEMENT) // max(1, widest))
        for a in range(0, len(keys), step):
            b = min(a + step, len(keys))
            pos, valid = self._ground_truth(first + a, first + b)
            ranks, n_gt = _ranks(keys[a:b], sorted_keys[a:b], pos, valid)
            for name, values in metrics_from_ranks(ranks, n_gt, self.wanted).items():
                self.values[name][first + a : first + b] = values

    def _ground_truth(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """[q, m] gallery positions of the ground truth of queries a..b-1 (padded) and which are valid."""
        codes = self._query_codes[a:b]
        count = self._count[codes]
        j = np.arange(count.max() if len(codes) else 0)
        valid = j[None, :] < count[:, None]
        pos = self._order[np.minimum(self._start[codes][:, None] + j[None, :], self.n_gallery - 1)]
        valid &= pos != self._self_pos[a:b, None]
        if self._gallery_group is not None and self._query_group is not None:
            valid &= self._gallery_group[pos] != self._query_group[a:b, None]
        return pos, valid


def _ranks(keys: np.ndarray, sorted_keys: np.ndarray, pos: np.ndarray, valid: np.ndarray):
    """[q, m] ranks of each query's ground-truth items, ascending (the first ``n_gt`` valid), and n_gt.

    The rank of an item is 1 + the number of keys below its own, plus, on an exact tie, the number
    of equal keys at smaller positions (the kNN's order). ``sorted_keys`` holds each row's smallest
    keys, sorted (all of them for the whole ranking): a rank past them comes out as their number
    + 1 or more, larger than any R they were chosen for.
    """
    n, g = sorted_keys.shape
    n_gt = valid.sum(axis=1)
    t = np.take_along_axis(keys, pos, axis=1)
    t[~valid] = np.inf
    t_sorted = np.sort(t, axis=1)
    below = np.empty(t.shape, dtype=np.int64)
    for row in range(n):
        below[row] = np.searchsorted(sorted_keys[row], t_sorted[row])
    in_gt = np.arange(t.shape[1])[None, :] < n_gt[:, None]
    after = np.take_along_axis(sorted_keys, np.minimum(below + 1, g - 1), axis=1)
    tied = in_gt & (below + 1 < g) & (after == t_sorted)  # another key equals this one
    ranks = below + 1
    for i in np.flatnonzero(tied.any(axis=1)):  # rare with real embeddings
        p = pos[i][np.argsort(t[i], kind="stable")]
        for e in np.flatnonzero(tied[i]):
            ranks[i, e] += np.count_nonzero(keys[i, : p[e]] == t_sorted[i, e])
        ranks[i, : n_gt[i]] = np.sort(ranks[i, : n_gt[i]])
    return ranks, n_gt


def metrics_from_ranks(ranks, n_gt, wanted: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-query float64 metrics from the ascending [Q, m] ranks of the ground truth (first ``n_gt`` valid)."""
    ranks, n_gt = np.asarray(ranks), np.asarray(n_gt)
    n_q, m = ranks.shape
    j = np.arange(1, m + 1, dtype=np.float64)
    in_gt = j[None, :] <= n_gt[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(in_gt, j / ranks, 0.0)  # precision at each ground-truth item
        within_r = in_gt & (ranks <= n_gt[:, None])
        r = n_gt.astype(np.float64)
        out = {}
        for name in wanted:
            if name == "map@r":
                out[name] = _row_sums(np.where(within_r, precision, 0.0)) / r
            elif name == "r_precision":
                out[name] = within_r.sum(axis=1) / r
            elif name == "mrr":
                out[name] = precision[:, 0].copy() if m else np.zeros(n_q)
            elif name == "ap":
                out[name] = _row_sums(precision) / r
            else:
                raise ValueError(f"unknown rank metric {name!r}")
    for values in out.values():
        values[n_gt == 0] = np.nan
    return out


def _row_sums(values: np.ndarray) -> np.ndarray:
    """Row sums added left to right: the trailing zero padding (which depends on the chunk) never
    changes the rounding, as a pairwise ``sum`` could."""
    if values.shape[1] == 0:
        return np.zeros(values.shape[0])
    return np.cumsum(values, axis=1)[:, -1]
