"""Embedding networks, by name (``model: {name, args}`` in params.yaml).

``model.name`` is a built-in (:data:`MODELS`) or ``module:callable`` of the user's own. Either is
called as ``build(in_channels=..., **model.args)`` (``in_channels``: 1 for ``data.image_mode`` L,
3 for RGB) and must return an ``nn.Module`` mapping an image batch [N, C, H, W] to embeddings
[N, D]; :func:`build_model` checks both, the second on a probe batch.

Around any of them, ``model.head`` adds a projection / L2 normalisation (:mod:`reprokit.train.head`),
``model.weights`` loads a state-dict file into the whole network (:mod:`reprokit.train.weights`) and
``model.freeze_batchnorm`` freezes its BatchNorm layers. The built-in ``hf`` (a transformers model
folder, :mod:`reprokit.train.hf_backbone`) imports transformers only when it is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from reprokit.core.config import ModelConfig
from reprokit.core.errors import ConfigError, ReprokitError
from reprokit.train.head import EmbeddingNet, ProjectionHead, freeze_batchnorm
from reprokit.train.user_code import call, describe, load_callable, reason
from reprokit.train.weights import load_weights

__all__ = ["SimpleCNN", "simple_cnn", "MODELS", "IMAGE_CHANNELS", "build_model", "probe_model"]

IMAGE_CHANNELS = {"L": 1, "RGB": 3}  # data.image_mode -> in_channels
PROBE_BATCH = 2


class SimpleCNN(nn.Module):
    """conv3x3-BN-ReLU-maxpool blocks, global average pooling, a linear head, L2-normalised output."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], embedding_dim: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        prev = in_channels
        for ch in channels:
            blocks += [nn.Conv2d(prev, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]
            blocks.append(nn.MaxPool2d(2))
            prev = ch
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(prev, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean(dim=(2, 3))
        return F.normalize(self.head(x), dim=1)


def simple_cnn(in_channels: int, channels: Sequence[int], embedding_dim: int) -> SimpleCNN:
    return SimpleCNN(in_channels, tuple(channels), embedding_dim)


def hf(in_channels: int, **args) -> nn.Module:
    from reprokit.train.hf_backbone import build_hf  # transformers is imported only for model.name: hf

    return build_hf(in_channels, **args)


# Built-in name -> build(in_channels=..., **args). Their args' schema and defaults are
# reprokit.core.config.MODEL_ARGS (the same names; a test builds each from its defaults).
MODELS: dict[str, Callable[..., nn.Module]] = {"simple_cnn": simple_cnn, "hf": hf}


def probe_model(where: str, model: nn.Module, in_channels: int, image_size: int) -> int:
    """Run ``model`` on a zero batch [2, C, S, S] without changing it; return the embedding size D.

    Evaluation mode and no gradients: BatchNorm statistics stay as they are, and zeros draw
    nothing from the random generators, so a checked model trains exactly as an unchecked one.
    """
    shape = [PROBE_BATCH, in_channels, image_size, image_size]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape))
    except ReprokitError:
        raise  # already one line naming its key (e.g. model.args.pooling)
    except Exception as exc:
        raise ConfigError(f"{where}: the model fails on a probe batch of shape {shape}: {reason(exc)}") from exc
    finally:
        for m, training in modes:
            m.training = training
    ok = isinstance(out, torch.Tensor) and out.is_floating_point() and out.ndim == 2 and out.shape[0] == PROBE_BATCH
    if not ok or out.shape[1] < 1:
        raise ConfigError(
            f"{where}: the model maps an image batch of shape {shape} to {describe(out)}; "
            f"expected a float tensor of embeddings [{PROBE_BATCH}, D]",
            hint="pool or flatten the features into one vector per image",
        )
    return int(out.shape[1])


def _backbone(cfg: ModelConfig, in_channels: int) -> nn.Module:
    where = f"model.name {cfg.name!r}"
    args = cfg.resolved_args()
    if "in_channels" in args:
        raise ConfigError(f"{where}: model.args must not set in_channels; it follows data.image_mode (L: 1, RGB: 3)")
    if cfg.name in MODELS:
        builder, label = MODELS[cfg.name], cfg.name
    else:
        builder, label = load_callable("model.name", cfg.name), cfg.name.replace(":", ".")
    what = f"{label}(in_channels={in_channels}, **model.args)"
    model = call(where, builder, what, {"in_channels": in_channels, **args})
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"{where}: {what} returned {describe(model)}, not a torch.nn.Module",
            hint="return the network itself, e.g. `return MyNet(in_channels, **args)`",
        )
    return model


def build_model(cfg: ModelConfig, in_channels: int, image_size: int | None = None) -> nn.Module:
    """The network ``cfg`` describes, built with ``in_channels``; probed on a batch when ``image_size`` is given.

    In this order: the backbone (its init draws from the torch generator first), the head on top
    (sized by a probe of the backbone, so ``model.head`` needs ``image_size``), ``model.weights``
    into the whole (or, with a head, a file of the backbone's own keys into the backbone), then
    ``freeze_batchnorm``. The probe of the result reports the head's size.
    """
    where = f"model.name {cfg.name!r}"
    backbone = _backbone(cfg, in_channels)
    model = backbone
    if cfg.head is not None:
        if image_size is None:
            raise ValueError("build_model: model.head needs image_size (the backbone's output size is probed)")
        features = probe_model(where, backbone, in_channels, image_size)
        model = EmbeddingNet(backbone, ProjectionHead(features, cfg.head.dim, cfg.head.normalize))
    if cfg.weights is not None:
        load_weights(model, cfg.weights, backbone=backbone if cfg.head is not None else None)
    if cfg.freeze_batchnorm:
        freeze_batchnorm(model)
    if image_size is not None:
        probe_model(where, model, in_channels, image_size)
    return model
