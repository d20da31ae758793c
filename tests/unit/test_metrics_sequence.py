"""``sequence_ids`` (OML's ``sequence`` column): the query's own sequence is neither retrieved nor ground truth."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from reprokit.core.config import config_from_dict
from reprokit.evaluate.exclusions import Exclusions
from reprokit.evaluate.metrics import retrieval_metrics
from reprokit.evaluate.scoring import score
from tests.unit.metrics_reference import reference
from tests.unit.test_metrics_extra import ALL, KS, check_against_reference


def test_hand_computed_case():
    # Points on a line; label 0 = items 0-3, label 1 = items 4, 5. Sequences: {0, 1}, {2, 4}, {3}, {5}.
    x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [3.0], [11.0]])
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    both = torch.ones(6, dtype=torch.bool)
    seq = ["v1", "v1", "v2", "v3", "v2", "v4"]
    res = retrieval_metrics(x, labels, both, both, sequence_ids=seq, cmc_top_k=(1, 5), precision_top_k=(2,),
                            map_top_k=(5,), extra_metrics=ALL)  # fmt: skip
    # q0 may not retrieve 1: ranking 2,4,3,5 (gt 2, 3)   q1 (not 0): 2,4,3,5   q2 (not 4): 1,0,3,5 (gt 1, 0, 3)
    # q3: 5,4,2,1,0 (gt 2, 1, 0)   q4 (not 2): 1,0,3,5 (gt 5)   q5: 3,4,2,1,0 (gt 4)
    assert res.retrieved.tolist() == [[2, 4, 3, 5, -1], [2, 4, 3, 5, -1], [1, 0, 3, 5, -1],
                                      [5, 4, 2, 1, 0], [1, 0, 3, 5, -1], [3, 4, 2, 1, 0]]  # fmt: skip
    assert res.per_query["n_gt"].tolist() == [2, 2, 3, 3, 1, 1]
    assert res.per_query["cmc@1"].tolist() == [1, 1, 1, 0, 0, 0]
    assert res.per_query["precision@2"].tolist() == pytest.approx([1 / 2, 1 / 2, 1, 0, 0, 1])
    # ground-truth ranks: q0 [1, 3]  q2 [1, 2, 3]  q3 [3, 4, 5]  q4 [4]  q5 [2]
    assert res.per_query["ap"].tolist() == pytest.approx([(1 + 2 / 3) / 2, (1 + 2 / 3) / 2, 1,
                                                          (1 / 3 + 2 / 4 + 3 / 5) / 3, 1 / 4, 1 / 2])  # fmt: skip
    assert res.per_query["map@r"].tolist() == pytest.approx([1 / 2, 1 / 2, 1, 1 / 9, 0, 0])
    assert res.per_query["mrr"].tolist() == pytest.approx([1, 1, 1, 1 / 3, 1 / 4, 1 / 2])
    assert res.per_query["retrieved"][0] == [2, 4, 3, 5]  # the padding is dropped


def test_a_query_whose_ground_truth_is_all_in_its_sequence_is_skipped():
    x = torch.tensor([[0.0], [1.0], [5.0], [6.0]])
    labels = torch.tensor([0, 0, 1, 1])
    both = torch.ones(4, dtype=torch.bool)
    res = retrieval_metrics(x, labels, both, both, sequence_ids=[7, 7, 8, 9], extra_metrics=ALL)
    assert res.per_query["n_gt"].tolist() == [0, 0, 1, 1] and res.n_skipped == 2
    assert res.per_query[list(ALL)].iloc[:2].isna().all().all()
    assert res.overall["cmc@1"] == 1.0 and res.overall["ap"] == 1.0
    with pytest.raises(ValueError, match="no query has a ground-truth item"):
        retrieval_metrics(x, labels, both, both, sequence_ids=[1, 1, 2, 2])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_matches_the_reference_overall_per_category_and_per_query(seed, distance):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 90))
    emb = rng.integers(-50, 51, size=(n, 3)).astype(np.float32)
    labels = rng.integers(0, 6, n)
    is_query = rng.random(n) < 0.7
    is_gallery = ~is_query | (rng.random(n) < 0.6)
    sequences = [["a", "b", 7, None, float("nan")][i] for i in rng.integers(0, 5, n)]
    categories = rng.choice(["x", "y", "z"], n).tolist()
    if distance == "cosine":
        emb[np.all(emb == 0, axis=1)] = 1  # a zero vector has no direction
    res = check_against_reference(emb, labels, is_query, is_gallery, distance, sequences, categories)
    # None and NaN are one shared sequence, as pandas' factorize (OML) makes them
    missing = [i for i, s in enumerate(sequences) if s is None or (isinstance(s, float) and math.isnan(s))]
    for row, item in enumerate(res.per_query["item"]):
        if item in missing:
            assert not set(res.per_query["retrieved"][row]) & set(missing)


def test_integer_tensor_ids_and_a_huge_sequence_take_the_dense_mask():
    rng = np.random.default_rng(5)
    emb = rng.integers(-20, 21, size=(150, 2)).astype(np.float32)
    labels = rng.integers(0, 4, 150)
    seq = np.where(rng.random(150) < 0.8, 0, rng.integers(1, 30, 150))  # one sequence holds most items
    both = np.ones(150, dtype=bool)
    as_list = check_against_reference(emb, labels, both, both, sequences=seq.tolist())
    as_tensor = retrieval_metrics(torch.tensor(emb), torch.tensor(labels), torch.tensor(both), torch.tensor(both),
                                  sequence_ids=torch.tensor(seq), extra_metrics=ALL, **KS)  # fmt: skip
    assert as_tensor.to_json_dict() == as_list.to_json_dict()


def test_exclusions_count_and_mask_without_a_query_x_gallery_mask():
    excl = Exclusions(torch.tensor([0, -1, 3]), 5, torch.tensor([2, 2, 0]), torch.tensor([2, 0, 2, 0, 1]))
    assert excl.count().tolist() == [2, 2, 2]  # query 2 is gallery item 3: in its own group 0
    block = torch.zeros(3, 5)
    excl.mask(block, slice(0, 3), 0, 5)
    assert torch.isinf(block).nonzero().tolist() == [[0, 0], [0, 2], [1, 0], [1, 2], [2, 1], [2, 3]]
    tile = torch.zeros(3, 2)  # gallery columns 2..3 only
    excl.mask(tile, slice(0, 3), 2, 4)
    assert torch.isinf(tile).nonzero().tolist() == [[0, 0], [1, 0], [2, 1]]


def test_bad_sequence_ids():
    args = (
        torch.zeros(3, 2),
        torch.tensor([0, 0, 1]),
        torch.ones(3, dtype=torch.bool),
        torch.ones(3, dtype=torch.bool),
    )
    with pytest.raises(ValueError, match=r"sequence_ids must have one value per item \(3\); got 2"):
        retrieval_metrics(*args, sequence_ids=[1, 2])
    with pytest.raises(ValueError, match="sequence_ids must hold hashable ids"):
        retrieval_metrics(*args, sequence_ids=[[1], [2], [3]])


def test_the_validate_stage_uses_the_sequence_column():
    cfg = config_from_dict({"validate": {"extra_metrics": ["map@r", "ap"]}})
    val_df = pd.DataFrame({
        "label": [0, 0, 0, 1, 1], "path": list("abcde"), "is_query": [True] * 5, "is_gallery": [True] * 5,
        "category": ["c"] * 5, "sequence": ["s1", "s1", "", "", "s2"],
    })  # fmt: skip
    emb = torch.tensor([[0.0], [0.1], [1.0], [5.0], [5.2]])
    res = score(cfg, val_df, emb, show_progress=False)
    ks = {"cmc_top_k": (1, 5), "precision_top_k": (5,), "map_top_k": (5,)}
    rows, overall, _ = reference(
        emb.numpy(), val_df["label"].tolist(), [True] * 5, [True] * 5, ks, sequences=val_df["sequence"].tolist()
    )
    assert res.per_query["n_gt"].tolist() == [r[2] for r in rows] == [1, 1, 2, 1, 1]
    assert res.overall == pytest.approx({m: overall[m] for m in res.metric_names}, abs=1e-12)
    assert res.metric_names[-2:] == ["map@r", "ap"]
    without = score(cfg, val_df.drop(columns="sequence"), emb, show_progress=False)
    assert without.per_query["n_gt"].tolist() == [2, 2, 2, 1, 1]
    assert not math.isnan(without.overall["ap"])
