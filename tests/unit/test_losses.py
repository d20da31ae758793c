import itertools

import pytest
import torch

from reprokit.train.losses import pairwise_distances, triplet_loss


def _reference_batch_all(emb, labels, margin):
    d = torch.cdist(emb.double(), emb.double())
    losses, dap, dan = [], [], []
    n = len(labels)
    for a, p, q in itertools.product(range(n), repeat=3):
        if a != p and labels[a] == labels[p] and labels[a] != labels[q]:
            dap.append(d[a, p])
            dan.append(d[a, q])
            losses.append(max(0.0, float(d[a, p] - d[a, q] + margin)))
    losses = torch.tensor(losses)
    return (
        losses.sum() / max(1, int((losses > 0).sum())),
        torch.stack(dap).mean(),
        torch.stack(dan).mean(),
        (losses > 0).double().mean(),
    )


def test_batch_all_matches_a_loop_reference():
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(12, 5, generator=g), dim=1)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    loss, stats = triplet_loss(emb, labels, margin=0.3, miner="all")
    ref_loss, ref_pos, ref_neg, ref_active = _reference_batch_all(emb, labels, 0.3)
    assert loss.item() == pytest.approx(ref_loss.item(), abs=1e-5)
    assert stats["pos_dist"].item() == pytest.approx(ref_pos.item(), abs=1e-5)
    assert stats["neg_dist"].item() == pytest.approx(ref_neg.item(), abs=1e-5)
    assert stats["active_tri"].item() == pytest.approx(ref_active.item(), abs=1e-6)


def test_hand_computed_case_on_a_line():
    # Points on a line: label 0 at 0 and 1, label 1 at 3. margin 0.5.
    emb = torch.tensor([[0.0], [1.0], [3.0]])
    labels = torch.tensor([0, 0, 1])
    loss, stats = triplet_loss(emb, labels, margin=0.5, miner="all")
    # triplets: (0,1,2): d_ap=1, d_an=3 -> 0; (1,0,2): d_ap=1, d_an=2 -> 0
    assert loss.item() == pytest.approx(0.0, abs=1e-5)
    assert stats["pos_dist"].item() == pytest.approx(1.0, abs=1e-5)
    assert stats["neg_dist"].item() == pytest.approx(2.5, abs=1e-5)
    assert stats["active_tri"].item() == 0.0
    loss, stats = triplet_loss(emb, labels, margin=1.5, miner="all")
    # (0,1,2): 1-3+1.5=-0.5 -> 0; (1,0,2): 1-2+1.5=0.5 -> the mean over the one active triplet
    assert loss.item() == pytest.approx(0.5, abs=1e-5)
    assert stats["active_tri"].item() == pytest.approx(0.5)


def test_hard_miner_takes_farthest_positive_and_nearest_negative():
    emb = torch.tensor([[0.0], [1.0], [2.0], [2.5]])
    labels = torch.tensor([0, 0, 0, 1])
    loss, stats = triplet_loss(emb, labels, margin=0.0, miner="hard")
    # anchors 0,1,2 (label 1 has no positive): d_ap = 2,1,2 ; d_an = 2.5,1.5,0.5
    assert stats["pos_dist"].item() == pytest.approx(5 / 3, abs=1e-5)
    assert stats["neg_dist"].item() == pytest.approx(1.5, abs=1e-5)
    assert loss.item() == pytest.approx(1.5 / 3, abs=1e-5)
    assert stats["active_tri"].item() == pytest.approx(1 / 3)


def test_batch_without_triplets_gives_zero_loss_that_still_backpropagates():
    emb = torch.randn(4, 3, requires_grad=True)
    loss, stats = triplet_loss(emb, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert loss.item() == 0.0 and stats["active_tri"].item() == 0.0
    assert emb.grad is not None and torch.isfinite(emb.grad).all()


def test_gradient_is_finite_with_duplicate_embeddings():
    emb = torch.ones(4, 3, requires_grad=True)
    loss, _ = triplet_loss(emb, torch.tensor([0, 0, 1, 1]))
    loss.backward()
    assert torch.isfinite(emb.grad).all()


def test_pairwise_distances_match_cdist():
    x = torch.randn(10, 4, dtype=torch.float64)
    assert torch.allclose(pairwise_distances(x), torch.cdist(x, x), atol=1e-5)


def test_unknown_miner_is_rejected():
    with pytest.raises(ValueError, match="miner must be one of 'all', 'hard'; got 'semi'"):
        triplet_loss(torch.randn(4, 2), torch.tensor([0, 0, 1, 1]), miner="semi")
