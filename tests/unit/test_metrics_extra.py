"""PML's map@r, r_precision, mrr and ap: against the float64 reference, by hand, by property, and PML.

Where pytorch-metric-learning 2.9.0 (and faiss) are installed (the ``dev`` extra), the same
cases run against its ``AccuracyCalculator``, overall and per category.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprokit.core.errors import ReprokitError
from reprokit.evaluate import knn
from reprokit.evaluate.metrics import EXTRA_METRICS, retrieval_metrics
from reprokit.evaluate.ranks import metrics_from_ranks
from tests.unit.metrics_reference import reference

ALL = ("map@r", "r_precision", "mrr", "ap")
KS = {"cmc_top_k": (1, 3), "precision_top_k": (2,), "map_top_k": (3,)}


def check_against_reference(emb, labels, is_query, is_gallery, distance="euclidean", sequences=None, categories=None,
                            **options):  # fmt: skip
    """retrieval_metrics equals the reference per query, overall and per category (abs 1e-12)."""
    res = retrieval_metrics(
        torch.as_tensor(emb), torch.as_tensor(labels), torch.as_tensor(is_query), torch.as_tensor(is_gallery),
        categories=categories, distance=distance, sequence_ids=sequences, extra_metrics=ALL, **KS, **options,
    )  # fmt: skip
    rows, overall, by_category = reference(emb, labels, is_query, is_gallery, KS, distance, sequences, categories)
    assert res.per_query["item"].tolist() == [r[0] for r in rows]
    assert res.per_query["n_gt"].tolist() == [r[2] for r in rows]
    k = res.retrieved.shape[1]
    for row, (_, ranked, _, m) in enumerate(rows):
        assert res.per_query["retrieved"][row] == [g for _, g in ranked[:k]]
        for name in res.metric_names:
            got = res.per_query[name][row]
            assert math.isnan(got) if m is None else got == pytest.approx(m[name], abs=1e-12), (row, name)
    assert res.overall == pytest.approx(overall, abs=1e-12)
    assert set(res.by_category) == set(by_category)
    for cat, values in by_category.items():
        assert res.by_category[cat] == pytest.approx(values, abs=1e-12)
    return res


# ---------------------------------------------------------------- cases shared with the PML checks
def classes_1_to_40(seed=0):
    """Queries = gallery; one class of each size 1..40 (a class of 1 has no ground truth)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(40), np.arange(1, 41))
    emb = rng.integers(-1000, 1001, size=(len(labels), 3)).astype(np.float32)  # exact keys in float32
    both = np.ones(len(labels), dtype=bool)
    return emb, labels, both, both


def disjoint_with_missing_labels(seed=1):
    """Queries and gallery disjoint; a third of the query labels are not in the gallery."""
    rng = np.random.default_rng(seed)
    n_q, n_g = 120, 300
    emb = rng.integers(-1000, 1001, size=(n_q + n_g, 4)).astype(np.float32)
    labels = np.concatenate([rng.integers(0, 30, n_q), rng.integers(0, 20, n_g)])  # 20..29: queries only
    is_query = np.arange(n_q + n_g) < n_q
    return emb, labels, is_query, ~is_query


def exact_ties(seed=2):
    """Integer points on a 5 x 5 grid: most distances tie, many items coincide."""
    rng = np.random.default_rng(seed)
    emb = rng.integers(-2, 3, size=(200, 2)).astype(np.float32)
    labels = rng.integers(0, 8, 200)
    both = np.ones(200, dtype=bool)
    return emb, labels, both, both


def big_labels(seed=3):
    """Labels above 2^24, neighbours differing by 1: float32 would merge them (PML casts to float)."""
    emb, labels, q, g = classes_1_to_40(seed)
    return emb, labels + 2**24, q, g


def cosine_case(seed=4):
    """Float vectors whose cosine distances are at least 1e-6 apart in every ranking (no near-ties)."""
    rng = np.random.default_rng(seed)
    while True:
        emb = rng.normal(size=(60, 4)).astype(np.float32)
        unit = emb.astype(np.float64) / np.linalg.norm(emb.astype(np.float64), axis=1, keepdims=True)
        gaps = np.diff(np.sort(1 - unit @ unit.T, axis=1), axis=1)
        if gaps.min() > 1e-6:
            labels = rng.integers(0, 6, 60)
            both = np.ones(60, dtype=bool)
            return emb, labels, both, both


CASES = {
    "classes_1_to_40": (classes_1_to_40, "euclidean"),
    "disjoint_missing_labels": (disjoint_with_missing_labels, "euclidean"),
    "exact_ties": (exact_ties, "euclidean"),
    "labels_above_2**24": (big_labels, "euclidean"),
    "cosine": (cosine_case, "cosine"),
}


@pytest.mark.parametrize("case", CASES)
def test_matches_the_float64_reference(case):
    make, distance = CASES[case]
    emb, labels, is_query, is_gallery = make()
    categories = [int(c) % 3 for c in labels]
    res = check_against_reference(emb, labels, is_query, is_gallery, distance, categories=categories)
    assert res.metric_names[-4:] == list(ALL)


def test_labels_above_2_24_stay_distinct():
    # 2^24 and 2^24 + 1 are the same float32: a float cast would make them one class.
    x = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
    labels = torch.tensor([2**24, 2**24 + 1, 2**24, 2**24 + 1])
    both = torch.ones(4, dtype=torch.bool)
    res = retrieval_metrics(x, labels, both, both, extra_metrics=ALL)
    assert res.per_query["n_gt"].tolist() == [1, 1, 1, 1]
    assert res.per_query["r_precision"].tolist() == [0, 0, 0, 0]  # the nearest item is the other label


# ---------------------------------------------------------------- hand-computed
def test_hand_computed_small_case():
    # Same points as test_metrics.test_hand_computed_small_case; whole rankings by hand (ties by index):
    # q0 -> 1,2,4,3,5 (R = 3, ground-truth ranks 1,2,4)   q1 -> 0,2,4,3,5 (ranks 1,2,4)
    # q2 -> 1,4,0,3,5 (ranks 1,3,4)   q3 -> 5,4,2,1,0 (ranks 3,4,5)
    # q4 -> 2,1,0,3,5 (R = 1, item 5 at rank 5)   q5 -> 3,4,2,1,0 (R = 1, item 4 at rank 2)
    x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [3.0], [11.0]])
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    both = torch.ones(6, dtype=torch.bool)
    res = retrieval_metrics(x, labels, both, both, categories=list("aabbab"), map_top_k=(5,), extra_metrics=ALL)
    ranks = {0: [1, 2, 4], 1: [1, 2, 4], 2: [1, 3, 4], 3: [3, 4, 5], 4: [5], 5: [2]}
    expected = {
        "map@r": [(1 + 1) / 3, (1 + 1) / 3, (1 + 2 / 3) / 3, (1 / 3) / 3, 0, 0],
        "r_precision": [2 / 3, 2 / 3, 2 / 3, 1 / 3, 0, 0],
        "mrr": [1, 1, 1, 1 / 3, 1 / 5, 1 / 2],
        "ap": [
            (1 + 1 + 3 / 4) / 3,
            (1 + 1 + 3 / 4) / 3,
            (1 + 2 / 3 + 3 / 4) / 3,
            (1 / 3 + 2 / 4 + 3 / 5) / 3,
            1 / 5,
            1 / 2,
        ],
    }
    for name, values in expected.items():
        assert res.per_query[name].tolist() == pytest.approx(values, abs=1e-12), name
        assert res.overall[name] == pytest.approx(sum(values) / 6, abs=1e-12)
        assert res.by_category["a"][name] == pytest.approx((values[0] + values[1] + values[4]) / 3, abs=1e-12)
    got = metrics_from_ranks(torch.tensor([ranks[3]]), torch.tensor([3]), ALL)
    assert got["ap"].item() == pytest.approx(expected["ap"][3], abs=1e-15)
    # OML's map@5 divides by the relevant items found in the top 5, PML's map@r by R and stops at R:
    assert res.per_query["map@5"][[3, 4]].tolist() == pytest.approx([(1 / 3 + 2 / 4 + 3 / 5) / 3, 1 / 5])
    assert res.per_query["map@r"][[3, 4]].tolist() == pytest.approx([1 / 9, 0])


def test_any_subset_in_the_order_given_and_unknown_names_fail_once():
    x, labels = torch.tensor([[0.0], [1.0], [5.0], [6.0]]), torch.tensor([0, 0, 1, 1])
    both = torch.ones(4, dtype=torch.bool)
    res = retrieval_metrics(x, labels, both, both, cmc_top_k=(1,), precision_top_k=(), map_top_k=(),
                            extra_metrics=("ap", "mrr"))  # fmt: skip
    assert res.metric_names == ["cmc@1", "ap", "mrr"]
    assert list(res.per_query.columns)[3:6] == ["cmc@1", "ap", "mrr"]
    only = retrieval_metrics(
        x, labels, both, both, cmc_top_k=(), precision_top_k=(), map_top_k=(), extra_metrics=("mrr",)
    )
    assert only.metric_names == ["mrr"] and only.overall == {"mrr": 1.0}
    for bad, shown in ((("map@R",), "'map@R'"), (("ap", "ndcg"), "'ndcg'"), ("ap", "'ap'")):
        with pytest.raises(ReprokitError) as info:
            retrieval_metrics(x, labels, both, both, extra_metrics=bad)
        message = info.value.one_line()
        assert "extra_metrics" in message and shown in message and ", ".join(EXTRA_METRICS) in message
        assert isinstance(info.value, ValueError) and "\n" not in message


# ---------------------------------------------------------------- properties
@st.composite
def datasets(draw):
    n = draw(st.integers(2, 40))
    dim = draw(st.integers(1, 3))
    spread = draw(st.sampled_from([1, 3, 1000]))  # 1: ties everywhere; 1000: rare ties
    emb = draw(st.lists(st.lists(st.integers(-spread, spread), min_size=dim, max_size=dim), min_size=n, max_size=n))
    labels = draw(st.lists(st.integers(0, draw(st.integers(0, 5))), min_size=n, max_size=n))
    is_query = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    is_gallery = [g or not q for g, q in zip(draw(st.lists(st.booleans(), min_size=n, max_size=n)), is_query)]
    sequences = draw(st.none() | st.lists(st.sampled_from(["a", "b", 3, None]), min_size=n, max_size=n))
    return np.asarray(emb, dtype=np.float32), labels, is_query, is_gallery, sequences


def _metrics(data, **options):
    emb, labels, is_query, is_gallery, sequences = data
    return retrieval_metrics(
        torch.as_tensor(emb), torch.as_tensor(labels), torch.as_tensor(is_query), torch.as_tensor(is_gallery),
        sequence_ids=sequences, extra_metrics=ALL, **KS, **options,
    )  # fmt: skip


def _usable(data) -> bool:
    _, _, is_query, is_gallery, _ = data
    return any(is_query) and any(is_gallery)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_properties_and_the_reference(data):
    if not _usable(data):
        return
    try:
        res = _metrics(data)
    except ValueError as exc:  # every query without ground truth
        assert "no query has a ground-truth item" in str(exc)
        return
    pq = res.per_query[res.per_query["n_gt"] > 0]
    assert (pq["map@r"] <= pq["r_precision"] + 1e-15).all()
    assert (pq["map@r"] <= pq["ap"] + 1e-15).all()
    assert ((pq["mrr"] == 1.0) == (pq["cmc@1"] == 1.0)).all()
    assert ((0 < pq["mrr"]) & (pq["mrr"] <= 1) & (pq["ap"] > 0) & (pq["ap"] <= 1)).all()
    emb, labels, is_query, is_gallery, sequences = data
    check_against_reference(emb, labels, is_query, is_gallery, sequences=sequences)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_map_at_r_and_r_precision_alone_take_the_partial_ranking_and_agree(data):
    """Without mrr and ap only the smallest max(R) + 1 keys of each row are sorted: same numbers."""
    if not _usable(data):
        return
    try:
        whole = _metrics(data)
    except ValueError:
        return
    emb, labels, is_query, is_gallery, sequences = data
    partial = retrieval_metrics(
        torch.as_tensor(emb),
        torch.as_tensor(labels),
        torch.as_tensor(is_query),
        torch.as_tensor(is_gallery),
        sequence_ids=sequences,
        extra_metrics=("r_precision", "map@r"),
        cmc_top_k=(1,),
        precision_top_k=(),
        map_top_k=(),
    )
    for name in ("map@r", "r_precision"):
        np.testing.assert_array_equal(partial.per_query[name].to_numpy(), whole.per_query[name].to_numpy())
        assert partial.overall[name] == whole.overall[name]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 200), ties=st.booleans(), grouped=st.booleans())
def test_chunking_tiling_and_budget_never_change_a_number(seed, n, ties, grouped):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(-2, 3, (n, 3), generator=gen).float() if ties else torch.randn(n, 3, generator=gen)
    labels = torch.randint(0, max(1, n // 8), (n,), generator=gen)
    is_query = torch.rand(n, generator=gen) < 0.8
    is_gallery = ~is_query | (torch.rand(n, generator=gen) < 0.7)
    if not is_query.any():
        return
    sequences = torch.randint(0, max(1, n // 4), (n,), generator=gen).tolist() if grouped else None
    runs = []
    for budget, tile in ((1024, None), (0.02, None), (1e-4, None), (1024, 64), (0.05, 16)):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(knn, "TILE_COLUMNS", tile)
            try:
                runs.append(_metrics((x, labels, is_query, is_gallery, sequences), memory_budget_mb=budget))
            except ValueError:
                return  # no query has ground truth
    first = runs[0]
    for other in runs[1:]:
        assert other.to_json_dict() == first.to_json_dict()
        assert torch.equal(other.retrieved, first.retrieved) and torch.equal(other.distances, first.distances)
        for name in first.metric_names:
            np.testing.assert_array_equal(other.per_query[name].to_numpy(), first.per_query[name].to_numpy())


def test_a_class_of_10000_items_is_ranked_in_bounded_sub_batches(monkeypatch):
    """Ground-truth entries are held per sub-batch, never per query x R for the whole run."""
    from reprokit.evaluate import ranks

    sizes = []
    original = ranks.GroundTruthRanks._ground_truth

    def recording(self, a, b):
        pos, valid = original(self, a, b)
        sizes.append(pos.size)
        return pos, valid

    monkeypatch.setattr(ranks.GroundTruthRanks, "_ground_truth", recording)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12000, 8, generator=g)
    labels = torch.cat([torch.zeros(10000, dtype=torch.long), torch.arange(2, 2002) // 2])
    is_query = torch.zeros(12000, dtype=torch.bool)
    is_query[::40] = True  # 250 of the big class, 50 others
    res = retrieval_metrics(x, labels, is_query, torch.ones(12000, dtype=torch.bool), memory_budget_mb=16,
                            extra_metrics=ALL)  # fmt: skip
    rows = knn.query_chunk_rows(12000, 16, 4, ranks.GroundTruthRanks.bytes_per_element)
    assert max(sizes) <= max(10000, rows * 12000 // 8)
    assert res.per_query["n_gt"].max() == 9999
    pq = res.per_query[res.per_query["n_gt"] > 0]
    assert ((0 < pq["ap"]) & (pq["ap"] <= 1) & (pq["map@r"] <= pq["r_precision"])).all()


@pytest.mark.slow
def test_a_class_of_10000_items_keeps_memory_linear():
    """Peak memory of a run whose largest class has 10,000 items (all queries) stays far below Q x R."""
    import subprocess
    import sys

    code = (
        "import resource, torch\n"
        "from reprokit.evaluate.metrics import retrieval_metrics\n"
        "g = torch.Generator().manual_seed(0)\n"
        "x = torch.randn(12000, 16, generator=g)\n"
        "labels = torch.cat([torch.zeros(10000, dtype=torch.long), torch.arange(2, 2002) // 2])\n"
        "both = torch.ones(12000, dtype=torch.bool)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "res = retrieval_metrics(x, labels, both, both, memory_budget_mb=64, extra_metrics=('map@r', 'r_precision', 'mrr', 'ap'))\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, res.overall['ap'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    growth_mb, ap = float(out[0]), float(out[1])
    # The 10,000 x 9,999 ground-truth ranks alone would take 800 MB as int64.
    assert growth_mb < 400, f"peak memory grew by {growth_mb:.0f} MB"
    assert 0 < ap <= 1


# ---------------------------------------------------------------- against pytorch-metric-learning
PML_NAMES = {"map@r": "mean_average_precision_at_r", "r_precision": "r_precision",
             "mrr": "mean_reciprocal_rank", "ap": "mean_average_precision"}  # fmt: skip


@pytest.fixture(scope="module")
def pml_calculator():
    reason = "pytorch-metric-learning and faiss-cpu are not installed (pip install -e '.[dev]')"
    accuracy = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator", reason=reason)
    pytest.importorskip("faiss", reason=reason)
    return accuracy.AccuracyCalculator(include=tuple(PML_NAMES.values()), device=torch.device("cpu"))


def _pml(calc, query, query_labels, reference=None, reference_labels=None, ref_includes_query=False):
    got = calc.get_accuracy(
        torch.as_tensor(query), torch.as_tensor(query_labels),
        None if reference is None else torch.as_tensor(reference),
        None if reference_labels is None else torch.as_tensor(reference_labels), ref_includes_query,
    )  # fmt: skip
    return {ours: got[theirs] for ours, theirs in PML_NAMES.items()}


@pytest.mark.parametrize("case", CASES)
def test_matches_pytorch_metric_learning(pml_calculator, case):
    make, distance = CASES[case]
    emb, labels, is_query, is_gallery = make()
    categories = [int(c) % 3 for c in labels]
    ours = retrieval_metrics(torch.as_tensor(emb), torch.as_tensor(labels), torch.as_tensor(is_query),
                             torch.as_tensor(is_gallery), categories=categories, distance=distance,
                             extra_metrics=ALL)  # fmt: skip
    if distance == "cosine":  # PML's default kNN is L2: on unit vectors it ranks as the cosine does
        emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    # PML casts labels to float32: give it small codes (ours keep the raw labels).
    codes = np.unique(labels, return_inverse=True)[1]
    if is_query.all() and is_gallery.all():
        theirs = _pml(pml_calculator, emb, codes)
        # Per category, PML needs the category's items first: a new order, which would break ties differently.
        for cat in ours.by_category if case != "exact_ties" else ():
            order = np.argsort([c != cat for c in categories], kind="stable")
            n_cat = sum(c == cat for c in categories)
            got = _pml(pml_calculator, emb[order[:n_cat]], codes[order[:n_cat]], emb[order], codes[order], True)
            assert ours.by_category[cat] == pytest.approx({**ours.by_category[cat], **got}, abs=1e-6)
    else:
        theirs = _pml(pml_calculator, emb[is_query], codes[is_query], emb[is_gallery], codes[is_gallery])
    assert {m: ours.overall[m] for m in ALL} == pytest.approx(theirs, abs=1e-6)  # PML's MRR is float32


def test_pml_is_wrong_for_labels_above_2_24_and_we_are_not(pml_calculator):
    x = np.array([[0.0], [1.0], [10.0], [11.0]], dtype=np.float32)
    labels = np.array([2**24, 2**24 + 1, 2**24, 2**24 + 1])
    both = torch.ones(4, dtype=torch.bool)
    ours = retrieval_metrics(torch.tensor(x), torch.tensor(labels), both, both, extra_metrics=ALL)
    assert ours.overall["r_precision"] == 0.0
    assert _pml(pml_calculator, x, labels)["r_precision"] == 1.0  # float32 made one class of two
