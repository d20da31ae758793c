"""An independent, obviously-correct reference for the retrieval metrics (float64, plain sorts).

Nothing here imports reprokit: every query's whole ranking is a Python sort of its float64
distances to every gallery item it may retrieve, ties by item index, and each metric is written
from its definition (OML's CMC@k, Precision@k, MAP@k; PML 2.9.0's MAP@R, R-precision, MRR, AP).
"""

from __future__ import annotations

import math

import numpy as np


def ranking(emb: np.ndarray, q: int, gallery: list[int], excluded: set[int], distance: str) -> list[tuple[float, int]]:
    """[(distance, item)] of every retrievable gallery item, nearest first, ties by item index."""
    a = emb[q].astype(np.float64)
    out = []
    for g in gallery:
        if g in excluded:
            continue
        b = emb[g].astype(np.float64)
        if distance == "euclidean":
            d = math.sqrt(float(((a - b) ** 2).sum()))
        else:
            d = 1.0 - float(a @ b) / (math.sqrt(float(a @ a)) * math.sqrt(float(b @ b)))
        out.append((d, g))
    return sorted(out)


def metrics_of(rel: list[bool], n_gt: int, ks: dict[str, tuple[int, ...]]) -> dict[str, float] | None:
    """Every metric of one query from its relevance list over the whole ranking (None if n_gt == 0)."""
    if n_gt == 0:
        return None
    m: dict[str, float] = {}
    for k in ks.get("cmc_top_k", ()):
        m[f"cmc@{k}"] = 1.0 if any(rel[:k]) else 0.0
    for k in ks.get("precision_top_k", ()):
        kp = min(k, len(rel))
        m[f"precision@{k}"] = sum(rel[:kp]) / min(n_gt, kp)
    for k in ks.get("map_top_k", ()):
        hits, total = 0, 0.0
        for i, r in enumerate(rel[:k]):
            if r:
                hits += 1
                total += hits / (i + 1)
        m[f"map@{k}"] = total / hits if hits else 0.0
    ranks = [i + 1 for i, r in enumerate(rel) if r]  # 1-based ranks of the ground truth
    assert len(ranks) == n_gt
    m["map@r"] = sum(j / r for j, r in enumerate(ranks, start=1) if r <= n_gt) / n_gt
    m["r_precision"] = sum(1 for r in ranks if r <= n_gt) / n_gt
    m["mrr"] = 1.0 / ranks[0]
    m["ap"] = sum(j / r for j, r in enumerate(ranks, start=1)) / n_gt
    return m


def reference(emb, labels, is_query, is_gallery, ks, distance="euclidean", sequences=None, categories=None):
    """Per query (item, [(distance, item)] ranking, n_gt, metrics or None), then the averages.

    ``sequences``: one id per item or None; a gallery item of the query's own sequence (equal ids)
    is neither retrieved nor ground truth. Returns ``(rows, overall, by_category)``.
    """
    emb = np.asarray(emb)
    gallery = [i for i in range(len(emb)) if is_gallery[i]]
    rows = []
    for q in range(len(emb)):
        if not is_query[q]:
            continue
        excluded = {q}
        if sequences is not None:
            excluded |= {g for g in gallery if _same(sequences[g], sequences[q])}
        ranked = ranking(emb, q, gallery, excluded, distance)
        rel = [labels[g] == labels[q] for _, g in ranked]
        rows.append((q, ranked, sum(rel), metrics_of(rel, sum(rel), ks)))
    scored = [r for r in rows if r[3] is not None]
    names = list(scored[0][3]) if scored else []
    overall = {n: float(np.mean([r[3][n] for r in scored])) for n in names}
    by_category = {}
    if categories is not None:
        for cat in {categories[r[0]] for r in scored}:
            in_cat = [r[3] for r in scored if categories[r[0]] == cat]
            by_category[cat] = {n: float(np.mean([m[n] for m in in_cat])) for n in names}
    return rows, overall, by_category


def _same(a, b) -> bool:
    """Equal sequence ids; all missing ids (None, NaN) count as one id, as pandas' factorize does."""
    missing_a = a is None or (isinstance(a, float) and math.isnan(a))
    missing_b = b is None or (isinstance(b, float) and math.isnan(b))
    return (missing_a and missing_b) or (not missing_a and not missing_b and a == b)
