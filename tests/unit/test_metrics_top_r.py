"""map@r and r_precision from a top-K search (K = the largest class) equal the whole-ranking path's.

The bounded path (``reprokit.evaluate.top_r``) is taken when neither mrr nor ap is asked for; a
query whose class is larger than the memory budget allows falls back to the whole ranking. Both
must give the whole-ranking numbers bit for bit, whatever the budget.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprokit.evaluate import metrics as metrics_module
from reprokit.evaluate.metrics import retrieval_metrics
from reprokit.evaluate.top_r import BYTES_PER_SLOT, bounded_k, needs_whole_ranking

BOUNDED = ("map@r", "r_precision")
ALL = ("map@r", "r_precision", "mrr", "ap")


@st.composite
def cases(draw):
    """Small sets with ties (integer points), unequal classes, optional disjoint query/gallery and sequences."""
    n = draw(st.integers(2, 60))
    spread = draw(st.sampled_from([1, 2, 1000]))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randint(-spread, spread + 1, (n, draw(st.integers(1, 3))), generator=gen).float()
    big = draw(st.integers(0, n))  # one class of `big` items beside small ones: larger than a tiny budget
    labels = torch.cat([torch.zeros(big, dtype=torch.long), torch.randint(1, 6, (n - big,), generator=gen)])
    is_query = torch.rand(n, generator=gen) < draw(st.sampled_from([0.5, 1.0]))
    is_gallery = ~is_query | (torch.rand(n, generator=gen) < 0.8)
    sequences = torch.randint(0, 4, (n,), generator=gen).tolist() if draw(st.booleans()) else None
    cap = draw(st.integers(1, 6))  # K the budget allows
    return emb, labels, is_query, is_gallery, sequences, cap


def _run(emb, labels, is_query, is_gallery, sequences, extra, budget=1024):
    return retrieval_metrics(emb, labels, is_query, is_gallery, sequence_ids=sequences, extra_metrics=extra,
                             memory_budget_mb=budget, cmc_top_k=(1, 2), precision_top_k=(2,), map_top_k=(3,))  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_bounded_path_equals_the_whole_ranking_even_past_the_budget(case):
    emb, labels, is_query, is_gallery, sequences, cap = case
    if not is_query.any() or not is_gallery.any():
        return
    try:
        whole = _run(emb, labels, is_query, is_gallery, sequences, ALL)
    except ValueError as exc:
        assert "no query has a ground-truth item" in str(exc)
        return
    n_q = int(is_query.sum())
    tiny = (cap * n_q * BYTES_PER_SLOT + 1) / 2**20  # a budget whose top-K holds K = cap
    assert bounded_k(n_q, tiny) == cap
    for budget in (1024, tiny):
        bounded = _run(emb, labels, is_query, is_gallery, sequences, BOUNDED, budget)
        for name in BOUNDED:
            np.testing.assert_array_equal(bounded.per_query[name].to_numpy(), whole.per_query[name].to_numpy())
            assert bounded.overall[name] == whole.overall[name]
        # The OML metrics and the retrieved lists do not depend on the longer top-K search.
        assert torch.equal(bounded.retrieved, whole.retrieved) and torch.equal(bounded.distances, whole.distances)
        for name in ("cmc@1", "cmc@2", "precision@2", "map@3"):
            np.testing.assert_array_equal(bounded.per_query[name].to_numpy(), whole.per_query[name].to_numpy())


def test_a_class_past_the_budget_is_ranked_whole_and_the_rest_from_the_top_k(monkeypatch):
    """With a budget for K = 3, the class of 30 goes to the whole ranking, the classes of 3 do not."""
    calls = []
    original = metrics_module._whole_ranking

    def recording(split, queries, gallery, rows, big, *args):
        calls.append(int(big.sum()))
        return original(split, queries, gallery, rows, big, *args)

    monkeypatch.setattr(metrics_module, "_whole_ranking", recording)
    gen = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.zeros(30, dtype=torch.long), torch.arange(1, 31).repeat_interleave(3)])
    x = torch.randn(len(labels), 4, generator=gen)
    both = torch.ones(len(labels), dtype=torch.bool)
    budget = (3 * len(labels) * BYTES_PER_SLOT + 1) / 2**20
    bounded = _run(x, labels, both, both, None, BOUNDED, budget)
    assert calls == [30]  # the 30 queries of class 0 (R = 29 > 3); the 90 others (R = 2) from the top K
    whole = _run(x, labels, both, both, None, ALL)
    for name in BOUNDED:
        np.testing.assert_array_equal(bounded.per_query[name].to_numpy(), whole.per_query[name].to_numpy())


def test_hand_computed_map_at_r():
    """One query, R = 3, ground truth at ranks 1, 3 and 5: map@r = (1/1 + 2/3) / 3, r_precision = 2/3."""
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [100.0]])
    labels = torch.tensor([0, 0, 1, 0, 2, 0, 1])
    is_query = torch.tensor([True, False, False, False, False, False, False])
    res = retrieval_metrics(x, labels, is_query, ~is_query, extra_metrics=BOUNDED, cmc_top_k=(1,),
                            precision_top_k=(), map_top_k=())  # fmt: skip
    assert res.overall["map@r"] == pytest.approx((1 / 1 + 2 / 3) / 3, abs=1e-15)
    assert res.overall["r_precision"] == pytest.approx(2 / 3, abs=1e-15)
    assert res.retrieved.shape[1] == 1  # the top-K search's extra columns are not kept


def test_which_metrics_need_the_whole_ranking():
    assert not needs_whole_ranking(BOUNDED) and not needs_whole_ranking(("r_precision",))
    assert needs_whole_ranking(("map@r", "mrr")) and needs_whole_ranking(("ap",))
