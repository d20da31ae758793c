"""model.head (projection + L2 norm on any backbone) and model.freeze_batchnorm (BatchNorm frozen for good)."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from reprokit.core.config import config_from_dict
from reprokit.core.errors import ConfigError
from reprokit.train.head import freeze_batchnorm
from reprokit.train.models import build_model, probe_model


def cnn(head=None, freeze=False, **extra):
    model = {
        "name": "simple_cnn",
        "args": {"channels": [4, 8], "embedding_dim": 6},
        "head": head,
        "freeze_batchnorm": freeze,
        **extra,
    }
    return config_from_dict({"model": model}).model


def bn_layers(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def test_no_head_by_default_keeps_the_network_and_its_keys():
    torch.manual_seed(0)
    plain = build_model(cnn(), 3, image_size=16)
    assert config_from_dict({}).model.head is None and not config_from_dict({}).model.freeze_batchnorm
    assert type(plain).__name__ == "SimpleCNN" and "features.0.weight" in plain.state_dict()


@pytest.mark.parametrize(
    ("head", "dim", "unit"),
    [
        ({"dim": 5}, 5, True),
        ({"dim": 5, "normalize": False}, 5, False),
        ({"dim": None, "normalize": True}, 6, True),
        ({}, 6, True),
    ],
)
def test_the_head_projects_and_normalises_and_the_probe_reports_its_size(head, dim, unit):
    class Raw(nn.Module):  # a backbone whose output is far from unit length
        def forward(self, x):
            return x.flatten(1)[:, :6] * 10 + 3

    cfg = config_from_dict({"model": {"name": "simple_cnn", "head": head}}).model
    torch.manual_seed(0)
    from reprokit.train.head import EmbeddingNet, ProjectionHead

    model = EmbeddingNet(Raw(), ProjectionHead(6, cfg.head.dim, cfg.head.normalize))
    out = model(torch.rand(4, 1, 4, 4))
    assert out.shape == (4, dim)
    assert torch.allclose(out.norm(dim=1), torch.ones(4)) == unit
    built = build_model(cnn(head=head), 1, image_size=16)
    assert probe_model("model", built, 1, 16) == dim
    assert set(built.state_dict()) >= ({"head.proj.weight", "head.proj.bias"} if head.get("dim") else set())
    assert all(k.startswith(("backbone.", "head.")) for k in built.state_dict())


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ({"dim": 0}, "model.head.dim must be null or an integer in [1, 65536]; got 0"),
        ({"dim": 1.5}, "model.head.dim must be an integer or null; got 1.5"),
        ({"dims": 4}, "unknown key 'model.head.dims' in model.head; valid keys: dim, normalize"),
        ({"normalize": "yes"}, "model.head.normalize must be true or false; got 'yes'"),
        (128, "model.head must be a mapping or null; got 128"),
    ],
)
def test_head_errors_are_one_line_naming_the_key(head, expected):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"model": {"head": head}})
    assert info.value.one_line() == expected


def test_a_head_without_an_image_size_to_probe_is_a_programming_error():
    with pytest.raises(ValueError, match="model.head needs image_size"):
        build_model(cnn(head={"dim": 3}), 1)


def test_frozen_batchnorm_stays_in_eval_mode_across_train_calls_and_keeps_its_statistics():
    torch.manual_seed(0)
    model = build_model(cnn(freeze=True, head={"dim": 4}), 1, image_size=16)
    keys_unfrozen = set(build_model(cnn(head={"dim": 4}), 1, image_size=16).state_dict())
    assert set(model.state_dict()) == keys_unfrozen  # freezing renames nothing: checkpoints stay compatible
    with torch.no_grad():
        for bn in bn_layers(model):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}

    class Lightningish(nn.Module):  # Lightning calls train() on the LightningModule that holds the model
        def __init__(self, net):
            super().__init__()
            self.model = net

    outer = Lightningish(model)
    outer.train()
    assert all(not bn.training for bn in bn_layers(model)) and model.backbone.features[0].training
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = model(torch.rand(8, 1, 16, 16) * 5).sum()
    loss.backward()
    optimiser.step()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # statistics unchanged by a training forward
    assert all(not p.requires_grad and p.grad is None for bn in bn_layers(model) for p in bn.parameters())
    assert model.head.proj.weight.grad is not None  # everything else trains
    outer.eval()
    outer.train(True)
    assert all(not bn.training for bn in bn_layers(model))


def test_the_unfrozen_model_does_move_its_statistics():
    # The control for the test above: without freeze_batchnorm a training forward changes them.
    model = build_model(cnn(), 1, image_size=16).train()
    before = bn_layers(model)[0].running_mean.clone()
    model(torch.rand(8, 1, 16, 16) * 5)
    assert not torch.equal(before, bn_layers(model)[0].running_mean)


def test_freezing_counts_every_batchnorm_and_the_frozen_model_pickles():
    class MyNorm(nn.BatchNorm1d):  # a subclass of the user's
        pass

    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 2), MyNorm(2))
    assert freeze_batchnorm(net) == 2 and freeze_batchnorm(net) == 2  # twice: the same, nothing nested
    assert isinstance(net[1], nn.BatchNorm2d) and isinstance(net[4], MyNorm)
    restored = pickle.loads(pickle.dumps(net[1]))  # torch's own classes freeze into named, importable ones
    restored.train()
    assert not restored.training


def test_freeze_batchnorm_on_a_model_without_batchnorm_changes_nothing():
    # A ViT has LayerNorm only: freeze_batchnorm is then a no-op, not an error (the Reality Check protocol
    # applied to a transformer).
    net = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
    assert freeze_batchnorm(net) == 0
    net.train()
    assert all(m.training for m in net.modules()) and all(p.requires_grad for p in net.parameters())
