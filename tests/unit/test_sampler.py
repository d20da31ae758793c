from collections import Counter

import numpy as np
import pytest

from reprokit.core.errors import ConfigError
from reprokit.data.sampler import LabelBalancedBatchSampler


def _labels(n_labels=20, per_label=5):
    return np.repeat(np.arange(n_labels), per_label)


def test_every_batch_has_n_labels_times_n_instances_of_distinct_items():
    labels = _labels()
    sampler = LabelBalancedBatchSampler(labels, n_labels=4, n_instances=3, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5
    for batch in batches:
        assert len(batch) == 12 and len(set(batch)) == 12
        counts = Counter(labels[batch].tolist())
        assert len(counts) == 4 and set(counts.values()) == {3}


def test_an_epoch_visits_each_label_once():
    labels = _labels()
    sampler = LabelBalancedBatchSampler(labels, n_labels=4, n_instances=2, seed=1)
    seen = [int(labels[i]) for batch in sampler for i in batch]
    assert sorted(Counter(seen)) == list(range(20))
    assert set(Counter(seen).values()) == {2}


def test_deterministic_per_seed_and_epoch_and_different_across_epochs():
    labels = _labels()
    a = LabelBalancedBatchSampler(labels, 4, 3, seed=7)
    b = LabelBalancedBatchSampler(labels, 4, 3, seed=7)
    first_a, first_b = list(a), list(b)
    assert first_a == first_b
    assert list(a) == first_a  # the same epoch again: the same batches
    a.set_epoch(1)
    assert list(a) != first_a  # the next epoch draws new batches
    c = LabelBalancedBatchSampler(labels, 4, 3, seed=8)
    assert list(c) != first_a


def test_too_many_instances_per_label_is_a_config_error():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    with pytest.raises(ConfigError, match=r"train.n_instances .* label 1 has 2"):
        LabelBalancedBatchSampler(labels, n_labels=2, n_instances=3, seed=0)


def test_more_labels_per_batch_than_exist_is_a_config_error():
    with pytest.raises(ConfigError, match=r"train.n_labels must be <= the number of training labels \(20\); got 21"):
        LabelBalancedBatchSampler(_labels(), n_labels=21, n_instances=2, seed=0)


def test_ranks_share_out_disjoint_batches_of_the_same_epoch_plan():
    labels = _labels(n_labels=21, per_label=4)
    single = LabelBalancedBatchSampler(labels, n_labels=4, n_instances=2, seed=3)
    plan = list(single)  # 5 batches
    shards = []
    for rank in range(2):
        s = LabelBalancedBatchSampler(labels, n_labels=4, n_instances=2, seed=3)
        s.set_distributed(rank, 2)
        shards.append(list(s))
        assert len(s) == 2 == len(shards[-1])  # the odd batch is dropped: ranks stay in step
    assert shards[0] == [plan[0], plan[2]] and shards[1] == [plan[1], plan[3]]
