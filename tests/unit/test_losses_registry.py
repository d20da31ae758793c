"""train.loss: {name, args}: the built-in triplet and a user's module:callable, their statistics
logged per step and per epoch, and every failure one line."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from reprokit.core.config import LOSS_ARGS, LossConfig, config_from_dict
from reprokit.core.errors import ConfigError
from reprokit.core.schema import load_dataclass
from reprokit.core.tables import read_table
from reprokit.train.losses import LOSSES, TripletLoss, build_loss, loss_and_stats, triplet_loss

USER_LOSSES = '''
import torch
from torch import nn


def spread(scale=1.0):
    """A loss with statistics: pull same-label embeddings together, push the batch apart."""
    def loss(embeddings, labels):
        d = torch.cdist(embeddings, embeddings)
        same = labels[:, None] == labels[None, :]
        pos, neg = d[same].mean(), d[~same].mean()
        return scale * (pos - neg), {"spread": neg.detach(), "pull": pos.detach(), "n_labels": len(set(labels.tolist()))}
    return loss


class ProxyLoss(nn.Module):
    """An nn.Module loss with a parameter, statistics kept OML-style in last_logs."""
    def __init__(self, n_classes, dim):
        super().__init__()
        self.proxies = nn.Parameter(torch.randn(n_classes, dim))
        self.last_logs = {}

    def forward(self, embeddings, labels):
        logits = embeddings @ self.proxies.T
        loss = nn.functional.cross_entropy(logits, labels % len(self.proxies))
        self.last_logs = {"proxy_norm": self.proxies.norm().item()}
        return loss


def bare(embeddings, labels):
    return embeddings.sum()


def returns_number():
    return 3


def wrong_output():
    return lambda e, l: [e.sum()]


def stat_named_loss():
    return lambda e, l: (e.sum(), {"loss": 1.0})


def stat_a_vector():
    return lambda e, l: (e.sum(), {"norms": e.norm(dim=1)})


def vector_loss():
    return lambda e, l: e.sum(dim=1)


def detached():
    return lambda e, l: e.sum().detach()


def fails():
    def loss(e, l):
        raise ValueError("labels must be sorted")
    return loss
'''

USER_MODELS = """
from torch import nn


def tiny(in_channels, dim=4):
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, dim))
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project root as the working directory; modules imported from it are forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_losses.py").write_text(textwrap.dedent(USER_LOSSES))
    (tmp_path / "my_models.py").write_text(textwrap.dedent(USER_MODELS))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=1).requires_grad_()
    return emb, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


def loss_cfg(name: str, **args) -> LossConfig:
    return load_dataclass(LossConfig, {"name": name, "args": args}, "train.loss")


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_registered_loss_builds_from_its_default_config(name):
    assert set(LOSSES) == set(LOSS_ARGS)  # the schema and the registry name the same built-ins
    loss_fn = build_loss(load_dataclass(LossConfig, {"name": name}, "train.loss"))
    loss, stats = loss_and_stats(name, loss_fn(*batch()), loss_fn)
    assert loss.ndim == 0 and loss.requires_grad and all(isinstance(k, str) for k in stats)


def test_the_triplet_loss_is_the_triplet_function_with_the_configured_margin_and_miner():
    cfg = config_from_dict(
        {"train": {"loss": {"name": "triplet", "args": {"margin": 0.3, "miner": "hard"}}}}
    ).train.loss
    loss_fn = build_loss(cfg)
    assert isinstance(loss_fn, TripletLoss) and (loss_fn.margin, loss_fn.miner) == (0.3, "hard")
    loss, stats = loss_fn(*batch())
    ref_loss, ref_stats = triplet_loss(*batch(), margin=0.3, miner="hard")
    assert torch.equal(loss, ref_loss) and list(stats) == ["pos_dist", "neg_dist", "active_tri"]
    assert all(torch.equal(stats[k], ref_stats[k]) for k in stats)
    # Defaults: the numbers the pipeline had as train.margin / train.miner.
    assert config_from_dict({}).train.loss.args == {"margin": 0.5, "miner": "all"}


def test_a_user_loss_with_statistics(project):
    loss_fn = build_loss(loss_cfg("my_losses:spread", scale=2.0))
    loss, stats = loss_and_stats("x", loss_fn(*batch()), loss_fn)
    assert loss.requires_grad and list(stats) == ["spread", "pull", "n_labels"]
    assert stats["n_labels"] == 4.0 and not stats["spread"].requires_grad


def test_an_nn_module_loss_with_last_logs(project):
    loss_fn = build_loss(loss_cfg("my_losses:ProxyLoss", n_classes=4, dim=4))
    loss, stats = loss_and_stats("x", loss_fn(*batch()), loss_fn)
    assert list(stats) == ["proxy_norm"] and loss.ndim == 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("nowhere:build", "train.loss.name 'nowhere:build': no module named 'nowhere' in the project root "),
        (
            "my_losses:sprad",
            "train.loss.name 'my_losses:sprad': module 'my_losses' has no attribute 'sprad' (hint: callables it defines: ",
        ),
        ("my_losses:bare", "train.loss.name 'my_losses:bare': my_losses.bare(**train.loss.args) raised TypeError: "),
        (
            "my_losses:returns_number",
            (
                "train.loss.name 'my_losses:returns_number': my_losses.returns_number(**train.loss.args) returned an int, "
                "not a callable loss(embeddings, labels) (hint: name a factory or an nn.Module class"
            ),
        ),
    ],
)
def test_a_user_loss_that_fails_to_build_is_one_line(project, name, expected):
    with pytest.raises(ConfigError) as info:
        build_loss(loss_cfg(name))
    assert expected in info.value.one_line() and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("wrong_output", "the loss returned a list; expected a scalar tensor or (loss, {name: scalar})"),
        ("stat_named_loss", "a loss statistic's name must be a string other than loss, step, epoch; got 'loss'"),
        ("stat_a_vector", "loss statistic 'norms' is a Tensor of shape [8]; expected a number or a one-element tensor"),
        ("vector_loss", "the loss value is a Tensor of shape [8]; expected a float tensor with one element"),
    ],
)
def test_a_user_loss_with_a_wrong_output_is_one_line(project, name, expected):
    loss_fn = build_loss(loss_cfg(f"my_losses:{name}"))
    with pytest.raises(ConfigError) as info:
        loss_and_stats(f"train.loss.name 'my_losses:{name}'", loss_fn(*batch()), loss_fn)
    assert info.value.one_line() == f"train.loss.name 'my_losses:{name}': {expected}"


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        (
            {"name": "tripplet"},
            "train.loss.name must be one of triplet, 'pml:<Class>' (pytorch-metric-learning's losses, e.g. pml:ArcFaceLoss) "
            "or 'module:callable' (your own, e.g. 'my_losses:build'); got 'tripplet'",
        ),
        ({"args": {"miner": "semi"}}, "train.loss.args.miner must be one of 'all', 'hard'; got 'semi'"),
        ({"args": {"margin": -0.1}}, "train.loss.args.margin must be a number ≥ 0; got -0.1"),
        (
            {"args": {"margin": 0.5, "mnier": "all"}},
            "unknown key 'train.loss.args.mnier' in train.loss.args; valid keys: margin, miner",
        ),
    ],
)
def test_loss_config_errors_are_one_line(loss, expected):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"train": {"loss": loss}})
    assert info.value.one_line() == expected


def test_batch_all_size_rule_follows_the_loss():
    big = {"n_labels": 600, "n_instances": 4}
    with pytest.raises(ConfigError, match=r"with train.loss.args.miner 'all'"):
        config_from_dict(
            {"train": {**big, "loss": {"name": "triplet"}}, "data": {"dataframe": "x.csv", "generate": []}}
        )
    for loss in ({"name": "triplet", "args": {"miner": "hard"}}, {"name": "my_losses:spread"}):
        config_from_dict({"train": {**big, "loss": loss}, "data": {"dataframe": "x.csv", "generate": []}})


def _tiny_dataset(root, n_labels=8, views=2, size=12):
    rng = np.random.default_rng(0)
    rows, paths = [], []
    for label in range(n_labels):
        for v in range(views):
            path = root / "images" / f"{label}_{v}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(path)
            rows.append({"label": label, "path": path.name, "split": "train"})
            paths.append(path)
    return pd.DataFrame(rows), paths


@pytest.mark.parametrize(
    ("loss", "stats"),
    [
        ({"name": "my_losses:spread", "args": {"scale": 0.5}}, ["spread", "pull", "n_labels"]),
        ({"name": "my_losses:ProxyLoss", "args": {"n_classes": 8, "dim": 4}}, ["proxy_norm"]),
    ],
)
def test_training_with_a_user_model_and_loss_logs_its_statistics_per_step_and_epoch(project, loss, stats):
    from reprokit.train.loop import train  # Lightning: imported by the tests that train

    df, paths = _tiny_dataset(project)
    cfg = config_from_dict(
        {
            "data": {"dataframe": "df.csv", "image_size": 12, "generate": []},
            "model": {"name": "my_models:tiny", "args": {"dim": 4}},
            "train": {"epochs": 2, "n_labels": 4, "n_instances": 2, "loss": loss},
        }
    )
    final, is_zero = train(cfg, df, paths, project / "runs" / "train")
    assert is_zero and list(final) == ["loss", *stats]
    steps = read_table(project / "runs/train/plots/step.tsv")
    epochs = read_table(project / "runs/train/plots/epoch.tsv")
    assert len(steps) == 4 and len(epochs) == 2  # 16 images, batches of 8, two epochs
    for row in (*steps, *epochs):
        assert all(row[k] not in ("", None) for k in ["loss", *stats]), row
    assert float(epochs[-1]["loss"]) == pytest.approx(final["loss"])
    if "proxy_norm" in stats:  # an nn.Module loss is trained with the model: its proxies move
        assert len({row["proxy_norm"] for row in steps}) > 1
    payload = torch.load(project / "runs/train/model.ckpt", weights_only=True)
    assert payload["model"] == {"name": "my_models:tiny", "args": {"dim": 4}}
    json.dumps(final)  # what the train stage writes as metrics.json


def test_a_loss_that_fails_or_is_detached_during_training_is_one_line(project):
    from reprokit.train.loop import train

    df, paths = _tiny_dataset(project)
    for name, expected in [
        (
            "fails",
            "train.loss.name 'my_losses:fails': loss(embeddings [8, 4], labels [8]) raised ValueError: labels must be sorted",
        ),
        (
            "detached",
            "train.loss.name 'my_losses:detached': the loss value does not require grad; it must be computed from the embeddings",
        ),
    ]:
        cfg = config_from_dict(
            {
                "data": {"dataframe": "df.csv", "image_size": 12, "generate": []},
                "model": {"name": "my_models:tiny"},
                "train": {"epochs": 1, "n_labels": 4, "n_instances": 2, "loss": {"name": f"my_losses:{name}"}},
            }
        )
        with pytest.raises(ConfigError) as info:
            train(cfg, df, paths, project / "runs" / "train")
        assert info.value.one_line() == expected
