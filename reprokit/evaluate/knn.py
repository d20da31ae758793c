"""Chunked exact k-nearest-neighbour search of queries against a gallery.

The full query x gallery distance matrix is never built: queries are processed in chunks whose
[q, G] block fits the memory budget. Each block costs one GEMM, one vectorised minimum over
64-column segments, and a topk over the few segments that can hold the nearest items (a topk
over the whole row costs about a third of the GEMM), so the search stays close to the cost of the
bare matrix multiplication.

Ranking key. For the Euclidean distance the block holds ``||g||^2 - 2 q.g`` (one ``addmm``): the
``||q||^2`` term is the same along a row, so it cannot change the order and is only added to the
K kept values. For the cosine distance the block holds ``-q.g`` of L2-normalised vectors and the
distance is ``1 - q.g``.

Ties. Equal keys are ordered by gallery position (= by item index, since gallery positions follow
item order), so results never depend on how topk happened to pick among equals: ties inside the
top K are re-sorted, and a tie across the K-th place (detected by asking topk for one extra value)
sends that row to a stable full sort.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

__all__ = ["DISTANCES", "query_chunk_rows", "chunked_knn"]

DISTANCES = ("euclidean", "cosine")

# Rows per chunk are capped: past a few hundred rows the GEMM is already at full speed, and a
# smaller block stays closer to the caches for the segment-minimum pass that reads it right after.
MAX_CHUNK_ROWS = 512
# Columns per segment of the row-minimum prefilter in _smallest.
SEGMENT = 64
# Working memory per block element: the block itself (4 bytes) plus, for the rare rows that need a
# full stable sort, their sorted values and int64 positions, done in sub-batches of at most a
# quarter of the chunk (12 bytes x 1/4 < 4). Hence 2 x 4 bytes.
_BYTES_PER_ELEMENT = 8


def query_chunk_rows(n_gallery: int, memory_budget_mb: float, itemsize: int = 4) -> int:
    """Number of query rows per chunk so that a chunk's working memory fits ``memory_budget_mb``.

    At least one row: a single row always has to be computed, even if it exceeds the budget.
    """
    budget = memory_budget_mb * 1024 * 1024
    per_row = (n_gallery + SEGMENT) * _BYTES_PER_ELEMENT * itemsize / 4
    return int(max(1, min(MAX_CHUNK_ROWS, budget // per_row)))


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _tqdm(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import (
        tqdm,  # lazy: only needed when a bar is shown (installed with Lightning)
    )

    return tqdm(total=total, desc="retrieval", unit="query", file=sys.stderr)


@torch.no_grad()
def chunked_knn(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    k: int,
    self_pos: torch.Tensor,
    distance: str = "euclidean",
    memory_budget_mb: float = 1024,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest gallery rows of every query row, nearest first.

    Args:
        queries: [Q, D] float tensor.
        gallery: [G, D] float tensor.
        k: neighbours per query, 0 <= k <= G.
        self_pos: [Q] long tensor, the gallery position of the query itself (never retrieved for
            it), or -1 when the query is not a gallery item.
        distance: "euclidean" or "cosine".

    Returns:
        ``(positions, distances)``: [Q, k] long gallery positions and [Q, k] float distances.
        A query with fewer than ``k`` retrievable items (possible only when ``k`` equals G and the
        query is itself in the gallery) gets position -1 and distance inf in its last slot.
    """
    n_q, n_g = queries.shape[0], gallery.shape[0]
    if k == 0 or n_q == 0:
        return torch.full((n_q, k), -1, dtype=torch.long), torch.full((n_q, k), float("inf"))

    # key = bias + alpha * q.g, smallest = nearest (see the module docstring).
    if distance == "euclidean":
        bias = (gallery * gallery).sum(dim=1)
        alpha = -2.0
    elif distance == "cosine":
        queries = F.normalize(queries, dim=1)
        gallery = F.normalize(gallery, dim=1)
        bias = torch.zeros(n_g, dtype=queries.dtype)
        alpha = -1.0
    else:
        raise ValueError(f"distance must be one of {', '.join(DISTANCES)}; got {distance!r}")
    gallery_t = gallery.T  # a view: BLAS reads the transposed layout directly

    def keys(buf: torch.Tensor, rows: torch.Tensor | slice) -> torch.Tensor:
        """Ranking keys of the query ``rows`` in ``buf`` (reused), own item masked with +inf."""
        q = queries[rows]
        block = buf[: q.shape[0]]
        torch.addmm(bias[None, :], q, gallery_t, beta=1, alpha=alpha, out=block[:, :n_g])
        own = self_pos[rows]
        has_own = own >= 0
        block[torch.nonzero(has_own).squeeze(1), own[has_own]] = float("inf")
        return block

    n_rows = query_chunk_rows(n_g, memory_budget_mb, queries.element_size())
    kk = min(k + 1, n_g)  # one extra value reveals a tie across the k-th place
    # One block buffer for every chunk, its width rounded up to whole segments; the extra columns
    # stay +inf so they are never selected.
    n_seg = -(-n_g // SEGMENT)
    use_segments = n_seg >= 4 * kk
    width = n_seg * SEGMENT if use_segments else n_g
    buf = torch.full((min(n_rows, n_q), width), float("inf"), dtype=queries.dtype)
    # Per chunk only the search itself; everything on the small [Q, k] result is done once at the
    # end (fewer small operations per chunk: they cost most when the cores are shared).
    top_vals = torch.empty((n_q, kk), dtype=queries.dtype)
    top_pos = torch.empty((n_q, kk), dtype=torch.long)
    bar = _tqdm(n_q, progress)
    try:
        for start in range(0, n_q, n_rows):
            stop = min(start + n_rows, n_q)
            block = keys(buf, slice(start, stop))
            top_vals[start:stop], top_pos[start:stop] = _smallest(block, kk, n_seg if use_segments else 0)
            bar.update(stop - start)
    finally:
        bar.close()

    vals, pos = _order_ties_by_position(top_vals[:, :k], top_pos[:, :k])
    if kk > k:
        boundary_tie = (top_vals[:, k] == top_vals[:, k - 1]) & torch.isfinite(top_vals[:, k - 1])
        tied = torch.nonzero(boundary_tie).squeeze(1)
        # Rare with real embeddings: recompute those rows' keys and sort them whole, stably.
        sub_rows = max(1, buf.shape[0] // 4)
        for i in range(0, len(tied), sub_rows):
            sub = tied[i : i + sub_rows]
            sorted_vals, sorted_pos = torch.sort(keys(buf, sub), dim=1, stable=True)
            vals[sub], pos[sub] = sorted_vals[:, :k], sorted_pos[:, :k]

    if distance == "euclidean":
        dists = (vals + (queries * queries).sum(dim=1)[:, None]).clamp_(min=0).sqrt_()
    else:
        dists = vals + 1.0
    # Slots past a query's retrievable items hold its own masked entry: mark them as padding.
    n_retrievable = n_g - (self_pos >= 0).long()
    pad = torch.arange(k)[None, :] >= n_retrievable[:, None]
    pos[pad] = -1
    dists[pad] = float("inf")
    return pos, dists


def _smallest(block: torch.Tensor, kk: int, n_seg: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``kk`` smallest values of each row (sorted) and their columns.

    With ``n_seg`` segments, topk runs on the ``kk`` segments with the smallest minima only: any
    element outside them is >= the minima of ``kk`` chosen segments, i.e. >= ``kk`` chosen
    elements, so the ``kk`` smallest values are found exactly (ties included, as values). A
    vectorised row-segment minimum is several times cheaper than topk over the whole row.
    """
    if n_seg == 0:
        return torch.topk(block, kk, dim=1, largest=False, sorted=True)
    n_rows = block.shape[0]
    segments = block.view(n_rows, n_seg, SEGMENT)
    _, seg = torch.topk(segments.amin(dim=2), kk, dim=1, largest=False, sorted=False)
    cand = segments.gather(1, seg[:, :, None].expand(n_rows, kk, SEGMENT)).view(n_rows, kk * SEGMENT)
    vals, at = torch.topk(cand, kk, dim=1, largest=False, sorted=True)
    cols = seg.gather(1, at // SEGMENT) * SEGMENT + at % SEGMENT
    return vals, cols


def _order_ties_by_position(vals: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder each row by (value, position); topk's order among equal values is unspecified."""
    by_pos = pos.argsort(dim=1)
    vals, pos = vals.gather(1, by_pos), pos.gather(1, by_pos)
    by_val = vals.argsort(dim=1, stable=True)
    return vals.gather(1, by_val), pos.gather(1, by_val)
