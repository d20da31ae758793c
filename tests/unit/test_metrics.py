"""retrieval_metrics against a slow pure-Python reference, hand-computed cases and edge cases."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from reprokit.evaluate.gather import gather_for_metrics
from reprokit.evaluate.knn import SEGMENT, chunked_knn, query_chunk_rows
from reprokit.evaluate.metrics import metrics_from_relevance, retrieval_metrics

KS = dict(cmc_top_k=(1, 3), precision_top_k=(2, 5), map_top_k=(3, 5))


# ---------------------------------------------------------------- reference (obviously correct)
def reference(emb, labels, is_query, is_gallery, cmc_top_k, precision_top_k, map_top_k, distance="euclidean"):
    """Per query: (item, ranked [(dist, gallery item)], n_gt, {metric: value or None})."""
    out = []
    for q in range(len(emb)):
        if not is_query[q]:
            continue
        ranked = []
        for g in range(len(emb)):
            if is_gallery[g] and g != q:
                if distance == "euclidean":
                    d = math.sqrt(sum((a - b) ** 2 for a, b in zip(emb[q], emb[g])))
                else:
                    dot = sum(a * b for a, b in zip(emb[q], emb[g]))
                    d = 1 - dot / (math.hypot(*emb[q]) * math.hypot(*emb[g]))
                ranked.append((d, g))
        ranked.sort()  # by distance, then by item index
        rel = [labels[g] == labels[q] for _, g in ranked]
        n_gt = sum(rel)
        m = {}
        for k in cmc_top_k:
            m[f"cmc@{k}"] = 1.0 if any(rel[:k]) else 0.0
        for k in precision_top_k:
            kp = min(k, len(rel))
            m[f"precision@{k}"] = sum(rel[:kp]) / min(n_gt, kp) if n_gt else 0.0
        for k in map_top_k:
            hits, total = 0, 0.0
            for i, r in enumerate(rel[:k]):
                if r:
                    hits += 1
                    total += hits / (i + 1)
            m[f"map@{k}"] = total / hits if hits else 0.0
        out.append((q, ranked, n_gt, m if n_gt else None))
    return out


def _random_case(rng: random.Random, n: int, dim: int, n_labels: int, distance: str, max_k: int):
    """Random embeddings whose ranked distances are at least 1e-3 apart (ties excluded)."""
    while True:
        emb = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(n)]
        labels = [rng.randrange(n_labels) for _ in range(n)]
        is_query = [rng.random() < 0.7 for _ in range(n)]
        is_gallery = [(not q) or rng.random() < 0.6 for q in is_query]
        if not any(is_query) or not any(is_gallery):
            continue
        ref = reference(emb, labels, is_query, is_gallery, (1,), (), (), distance)
        gaps_ok = all(
            b[0] - a[0] > 1e-3 for _, ranked, _, _ in ref for a, b in zip(ranked[: max_k + 1], ranked[1 : max_k + 2])
        )
        if gaps_ok and any(r[3] for r in ref):
            return emb, labels, is_query, is_gallery


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_on_random_cases(seed, distance):
    rng = random.Random(seed)
    n = rng.randrange(5, 40)
    emb, labels, is_query, is_gallery = _random_case(rng, n, rng.randrange(1, 6), rng.randrange(1, 6), distance, 5)
    cats = [rng.choice("xyz") for _ in range(n)]
    res = retrieval_metrics(
        torch.tensor(emb), torch.tensor(labels), torch.tensor(is_query), torch.tensor(is_gallery),
        categories=cats, distance=distance, **KS,
    )  # fmt: skip
    ref = reference(emb, labels, is_query, is_gallery, distance=distance, **KS)

    assert res.per_query["item"].tolist() == [r[0] for r in ref]
    assert res.per_query["n_gt"].tolist() == [r[2] for r in ref]
    k = res.retrieved.shape[1]
    for row, (_, ranked, _, m) in enumerate(ref):
        assert res.per_query["retrieved"][row] == [g for _, g in ranked[:k]]
        np.testing.assert_allclose(res.per_query["distances"][row], [d for d, _ in ranked[:k]], rtol=1e-4, atol=1e-5)
        for name in res.metric_names:
            got = res.per_query[name][row]
            assert math.isnan(got) if m is None else got == pytest.approx(m[name], abs=1e-12)
    valid = [r[3] for r in ref if r[3]]
    for name in res.metric_names:
        assert res.overall[name] == pytest.approx(sum(v[name] for v in valid) / len(valid), abs=1e-12)
    assert res.n_skipped == sum(1 for r in ref if r[3] is None)
    for cat, values in res.by_category.items():
        in_cat = [r[3] for r in ref if r[3] and cats[r[0]] == cat]
        for name in res.metric_names:
            assert values[name] == pytest.approx(sum(v[name] for v in in_cat) / len(in_cat), abs=1e-12)


def test_ties_are_broken_by_item_index_like_the_reference():
    """Integer coordinates: many exactly equal distances, computed exactly in float32."""
    rng = random.Random(3)
    emb = [[rng.randrange(-2, 3) for _ in range(2)] for _ in range(300)]
    labels = [rng.randrange(10) for _ in range(300)]
    flags = [True] * 300
    res = retrieval_metrics(torch.tensor(emb, dtype=torch.float32), torch.tensor(labels), torch.tensor(flags),
                            torch.tensor(flags), cmc_top_k=(1, 7), precision_top_k=(7,), map_top_k=(7,))  # fmt: skip
    ref = reference(emb, labels, flags, flags, (1, 7), (7,), (7,))
    for row, (_, ranked, _, m) in enumerate(ref):
        assert res.retrieved[row].tolist() == [g for _, g in ranked[:7]]
        assert res.per_query["map@7"][row] == pytest.approx(m["map@7"], abs=1e-12)


# ---------------------------------------------------------------- hand-computed
def test_hand_computed_small_case():
    # Positions on a line; labels [0,0,0,0,1,1]; every item is both query and gallery.
    x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [3.0], [11.0]])
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    both = torch.ones(6, dtype=torch.bool)
    res = retrieval_metrics(x, labels, both, both, categories=["a", "a", "b", "b", "a", "b"],
                            cmc_top_k=(1, 5), precision_top_k=(2, 5), map_top_k=(2, 5))  # fmt: skip
    # Rankings by hand (ties by item index): q0 -> 1,2,4,3,5   q1 -> 0,2,4,3,5 (0 and 2 both at 1)
    # q2 -> 1,4,0,3,5 (1 and 4 at 1)   q3 -> 5,4,2,1,0   q4 -> 2,1,0,3,5   q5 -> 3,4,2,1,0
    assert res.retrieved.tolist() == [[1, 2, 4, 3, 5], [0, 2, 4, 3, 5], [1, 4, 0, 3, 5],
                                      [5, 4, 2, 1, 0], [2, 1, 0, 3, 5], [3, 4, 2, 1, 0]]  # fmt: skip
    # relevance: q0,q1 [1,1,0,1,0]; q2 [1,0,1,1,0]; q3 [0,0,1,1,1]; q4 [0,0,0,0,1]; q5 [0,1,0,0,0]
    # n_gt: 3,3,3,3,1,1
    expected = {
        "cmc@1": [1, 1, 1, 0, 0, 0],
        "cmc@5": [1, 1, 1, 1, 1, 1],
        "precision@2": [2 / 2, 2 / 2, 1 / 2, 0 / 2, 0 / 1, 1 / 1],
        "precision@5": [3 / 3, 3 / 3, 3 / 3, 3 / 3, 1 / 1, 1 / 1],
        "map@2": [(1 + 1) / 2, (1 + 1) / 2, 1 / 1, 0, 0, (1 / 2) / 1],
        "map@5": [
            (1 + 1 + 3 / 4) / 3,
            (1 + 1 + 3 / 4) / 3,
            (1 + 2 / 3 + 3 / 4) / 3,
            (1 / 3 + 2 / 4 + 3 / 5) / 3,
            (1 / 5) / 1,
            (1 / 2) / 1,
        ],
    }
    assert res.metric_names == ["cmc@1", "cmc@5", "precision@2", "precision@5", "map@2", "map@5"]
    for name, per_query in expected.items():
        assert res.per_query[name].tolist() == pytest.approx(per_query, abs=1e-12), name
        assert res.overall[name] == pytest.approx(sum(per_query) / 6, abs=1e-12), name
        a, b = [per_query[i] for i in (0, 1, 4)], [per_query[i] for i in (2, 3, 5)]
        assert res.by_category["a"][name] == pytest.approx(sum(a) / 3, abs=1e-12)
        assert res.by_category["b"][name] == pytest.approx(sum(b) / 3, abs=1e-12)
    assert res.per_query["n_gt"].tolist() == [3, 3, 3, 3, 1, 1]
    assert res.distances[3].tolist() == pytest.approx([1, 7, 8, 9, 10])
    assert res.n_queries == 6 and res.n_skipped == 0


def test_metric_math_matches_oml_docstring_examples():
    rel = torch.tensor([[1, 0], [0, 1], [0, 0]], dtype=torch.bool)
    n_gt = torch.tensor([2, 3, 5])
    m = metrics_from_relevance(rel, n_gt, torch.tensor([9, 9, 9]), (1, 2), (1, 2), (1, 2))
    assert m["cmc@1"].tolist() == [1, 0, 0] and m["cmc@2"].tolist() == [1, 1, 0]
    assert m["precision@1"].tolist() == [1, 0, 0] and m["precision@2"].tolist() == [0.5, 0.5, 0]
    assert m["map@1"].tolist() == [1, 0, 0] and m["map@2"].tolist() == [1, 0.5, 0]


# ---------------------------------------------------------------- edge cases
def test_k_larger_than_gallery_with_disjoint_query_and_gallery():
    # Queries 0..2, gallery 3..6 (Q != G, disjoint); k = 10 > G = 4.
    x = torch.tensor([[0.0], [5.0], [9.0], [1.0], [2.0], [6.0], [20.0]])
    labels = torch.tensor([0, 1, 2, 0, 0, 1, 2])
    is_query = torch.tensor([True, True, True, False, False, False, False])
    res = retrieval_metrics(x, labels, is_query, ~is_query, cmc_top_k=(1, 10), precision_top_k=(10,), map_top_k=(10,))
    assert res.retrieved.shape == (3, 4)
    assert res.retrieved.tolist() == [[3, 4, 5, 6], [5, 4, 3, 6], [5, 4, 3, 6]]
    # q0: rel [1,1,0,0], n_gt 2 -> precision@10 = 2/min(2, 4) = 1; map = (1 + 1)/2 = 1
    # q1: rel [1,0,0,0], n_gt 1 -> 1; map 1.   q2: rel [0,0,0,1], n_gt 1 -> precision 1, map 1/4
    assert res.per_query["precision@10"].tolist() == [1, 1, 1]
    assert res.per_query["map@10"].tolist() == pytest.approx([1, 1, 0.25])
    assert res.per_query["cmc@1"].tolist() == [1, 1, 0]
    assert res.overall["map@10"] == pytest.approx(2.25 / 3)


def test_query_whose_only_relevant_item_is_itself_is_skipped():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    labels = torch.tensor([0, 0, 1, 2])  # items 2 and 3: alone with their label
    both = torch.ones(4, dtype=torch.bool)
    res = retrieval_metrics(x, labels, both, both, categories=["c", "c", "c", "lonely"])
    assert res.n_queries == 4 and res.n_skipped == 2
    assert res.per_query["n_gt"].tolist() == [1, 1, 0, 0]
    assert res.per_query["cmc@1"][:2].tolist() == [1, 1]
    assert res.per_query[["cmc@1", "map@5"]].iloc[2:].isna().all().all()
    assert res.overall == {"cmc@1": 1.0, "cmc@5": 1.0, "precision@5": 1.0, "map@5": 1.0}
    assert list(res.by_category) == ["c"]  # "lonely" has no query with ground truth
    assert not any(math.isnan(v) for v in res.overall.values())
    assert 2 not in res.retrieved[2].tolist()  # never retrieved for itself
    assert res.to_json_dict()["n_queries_without_gt"] == 2


def test_no_query_with_ground_truth_raises():
    both = torch.ones(3, dtype=torch.bool)
    with pytest.raises(ValueError, match="no query has a ground-truth item"):
        retrieval_metrics(torch.randn(3, 2), torch.tensor([0, 1, 2]), both, both)


def test_categories_with_a_single_query():
    x = torch.tensor([[0.0], [1.0], [4.0], [4.5], [9.0]])
    labels = torch.tensor([0, 0, 1, 1, 0])
    is_query = torch.tensor([True, False, True, False, False])
    res = retrieval_metrics(x, labels, is_query, ~is_query, categories=[10, 10, 2, 2, 10], cmc_top_k=(1,))
    assert set(res.by_category) == {10, 2}
    assert res.by_category[10] == res.per_query.iloc[0][res.metric_names].to_dict()
    assert res.by_category[2] == res.per_query.iloc[1][res.metric_names].to_dict()
    assert list(res.to_json_dict()["by_category"]) == ["10", "2"]  # strings, sorted


def test_query_in_gallery_and_k_at_gallery_size_pads_with_minus_one():
    # Item 0 is query and gallery (3 retrievable), item 1 only a query (4 retrievable).
    x = torch.tensor([[0.0], [0.4], [1.0], [2.0], [3.0]])
    labels = torch.tensor([0, 0, 1, 0, 1])
    is_query = torch.tensor([True, True, False, False, False])
    is_gallery = torch.tensor([True, False, True, True, True])
    res = retrieval_metrics(x, labels, is_query, is_gallery, cmc_top_k=(4,), precision_top_k=(4,), map_top_k=(4,))
    assert res.retrieved.tolist() == [[2, 3, 4, -1], [0, 2, 3, 4]]
    assert math.isinf(res.distances[0, 3])
    assert res.per_query["retrieved"].tolist() == [[2, 3, 4], [0, 2, 3, 4]]
    assert [len(d) for d in res.per_query["distances"]] == [3, 4]
    # q0: rel [0,1,0], n_gt 1 -> precision 1/min(1,3); map (1/2)/1.  q1: rel [1,0,1,0], n_gt 2
    assert res.per_query["precision@4"].tolist() == [1, 1]
    assert res.per_query["map@4"].tolist() == pytest.approx([0.5, (1 + 2 / 3) / 2])


def test_cosine_ignores_scale_and_matches_one_minus_cos():
    rng = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=rng)
    labels = torch.randint(0, 4, (30,), generator=rng)
    both = torch.ones(30, dtype=torch.bool)
    scaled = x * torch.rand(30, 1, generator=rng).add(0.5) * 10
    a = retrieval_metrics(x, labels, both, both, distance="cosine")
    b = retrieval_metrics(scaled, labels, both, both, distance="cosine")
    assert torch.equal(a.retrieved, b.retrieved) and a.overall == pytest.approx(b.overall)
    xn = torch.nn.functional.normalize(x.double(), dim=1)
    q, g = 0, int(a.retrieved[0, 0])
    assert float(a.distances[0, 0]) == pytest.approx(1 - float(xn[q] @ xn[g]), abs=1e-5)
    assert not torch.equal(a.retrieved, retrieval_metrics(x, labels, both, both).retrieved)


# ---------------------------------------------------------------- determinism, chunking, extras
def test_deterministic_and_independent_of_chunking():
    rng = torch.Generator().manual_seed(1)
    x = torch.randn(700, 16, generator=rng)
    labels = torch.randint(0, 50, (700,), generator=rng)
    is_query = torch.rand(700, generator=rng) < 0.8
    is_gallery = torch.rand(700, generator=rng) < 0.8
    first = retrieval_metrics(x, labels, is_query, is_gallery)
    again = retrieval_metrics(x, labels, is_query, is_gallery)
    assert torch.equal(first.retrieved, again.retrieved) and torch.equal(first.distances, again.distances)
    assert first.to_json_dict() == again.to_json_dict()
    assert query_chunk_rows(int(is_gallery.sum()), 0.001) == 1
    tiny = retrieval_metrics(x, labels, is_query, is_gallery, memory_budget_mb=0.001)  # one row per chunk
    assert torch.equal(first.retrieved, tiny.retrieved)
    torch.testing.assert_close(first.distances, tiny.distances)


def test_segment_prefilter_matches_full_sort_with_many_ties():
    # 2,000-item gallery, k = 5: 32 segments of 64 columns >= 4 x (k + 1), so the prefilter runs.
    # Integer coordinates: many exact ties, inside the top k and across the k-th place.
    assert -(-2000 // SEGMENT) >= 4 * 6
    x = torch.randint(-3, 4, (2000, 3), generator=torch.Generator().manual_seed(2)).float()
    self_pos = torch.arange(2000)
    key = (x * x).sum(1)[None, :] - 2 * x @ x.T
    key.fill_diagonal_(float("inf"))
    expected = torch.sort(key, dim=1, stable=True).indices[:, :5]
    for budget in (1, 0.01):  # several rows per chunk, then a single row
        pos, _ = chunked_knn(x, x, 5, self_pos, memory_budget_mb=budget)
        assert torch.equal(pos, expected)
    random_x = torch.randn(2000, 3, generator=torch.Generator().manual_seed(3))
    pos, dist = chunked_knn(random_x, random_x, 5, self_pos)
    full = torch.cdist(random_x, random_x).fill_diagonal_(float("inf"))
    assert torch.equal(pos, full.topk(5, dim=1, largest=False).indices)


def test_retrieve_k_progress_and_per_query_columns(capsys):
    rng = torch.Generator().manual_seed(3)
    x, labels = torch.randn(40, 8, generator=rng), torch.randint(0, 5, (40,), generator=rng)
    both = torch.ones(40, dtype=torch.bool)
    res = retrieval_metrics(x, labels, both, both, cmc_top_k=(1,), precision_top_k=(), map_top_k=(),
                            retrieve_k=6, progress=True)  # fmt: skip
    assert "retrieval" in capsys.readouterr().err
    assert res.retrieved.shape == (40, 6) and res.distances.dtype == torch.float32
    assert res.metric_names == ["cmc@1"]
    assert list(res.per_query.columns) == ["item", "label", "category", "cmc@1", "n_gt", "retrieved", "distances"]
    assert res.per_query["category"].isna().all() and res.by_category == {}
    assert (res.distances[:, 1:] >= res.distances[:, :-1]).all()
    assert retrieval_metrics(x, labels, both, both, retrieve_k=100).retrieved.shape == (40, 39)  # capped


def test_to_json_dict_is_plain_and_serialisable():
    x = torch.tensor([[0.0], [1.0], [5.0], [6.0]])
    both = torch.ones(4, dtype=torch.bool)
    res = retrieval_metrics(x, torch.tensor([0, 0, 1, 1]), both, both, categories=[3, 3, 1, 1])
    d = res.to_json_dict()
    assert json.loads(json.dumps(d)) == d
    assert set(d) == {"overall", "by_category", "n_queries", "n_queries_without_gt"}
    assert list(d["by_category"]) == ["1", "3"] and d["n_queries"] == 4
    assert all(type(v) is float for v in d["overall"].values())


def test_unusual_labels_and_dtypes():
    x = torch.tensor([[0.0], [1.0], [5.0], [6.0]], dtype=torch.float64)
    labels = torch.tensor([-7, -7, 10**12, 10**12], dtype=torch.int64)
    both = torch.ones(4, dtype=torch.bool)
    res = retrieval_metrics(x, labels, both, both)
    assert res.per_query["n_gt"].tolist() == [1, 1, 1, 1] and res.overall["cmc@1"] == 1.0
    half = retrieval_metrics(x.half(), labels.int(), both.numpy(), both)
    assert half.overall == res.overall


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(labels=torch.tensor([0, 1, 0])), "labels must have one value per embedding row"),
        (dict(labels=torch.tensor([0.0, 1, 0, 1])), "labels must be a 1-D integer tensor"),
        (dict(is_query=torch.tensor([1, 1, 0, 0])), "is_query must be a 1-D bool tensor"),
        (dict(is_gallery=torch.zeros(4, dtype=torch.bool)), "is_gallery selects no item"),
        (dict(is_query=torch.zeros(4, dtype=torch.bool)), "is_query selects no item"),
        (dict(cmc_top_k=(1, 0)), "cmc_top_k must hold positive integers; got 0"),
        (dict(map_top_k=5), "map_top_k must be a sequence"),
        (dict(retrieve_k=-1), "retrieve_k must hold positive integers"),
        (dict(distance="manhattan"), "distance must be one of euclidean, cosine; got 'manhattan'"),
        (dict(embeddings=torch.tensor([[0.0], [float("nan")], [1.0], [2.0]])), "row 1 holds NaN"),
        (dict(embeddings=torch.zeros(4)), "embeddings must be a 2-D float tensor"),
        (dict(categories=["a"]), "categories must have one value per item"),
        (dict(memory_budget_mb=0), "memory_budget_mb must be a positive number"),
        (dict(cmc_top_k=(), precision_top_k=(), map_top_k=()), "all empty"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(change, match):
    args = dict(
        embeddings=torch.tensor([[0.0], [1.0], [2.0], [3.0]]),
        labels=torch.tensor([0, 0, 1, 1]),
        is_query=torch.ones(4, dtype=torch.bool),
        is_gallery=torch.ones(4, dtype=torch.bool),
    )
    with pytest.raises(ValueError, match=match):
        retrieval_metrics(**{**args, **change})


def test_gather_for_metrics_without_process_group_sorts_and_deduplicates():
    idx = torch.tensor([4, 1, 3, 1, 0])
    emb = torch.tensor([[4.0], [1.0], [3.0], [1.5], [0.0]])
    flags = torch.tensor([True, False, True, True, False])
    out_idx, out_emb, out_flags = gather_for_metrics(idx, emb, flags)
    assert out_idx.tolist() == [0, 1, 3, 4]
    assert out_emb.flatten().tolist() == [0.0, 1.0, 3.0, 4.0]  # first occurrence of 1 kept
    assert out_flags.tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match=r"tensors\[0\] must have one row per index"):
        gather_for_metrics(idx, emb[:3])
