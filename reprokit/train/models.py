"""Embedding networks, by name (``model.name`` in params.yaml)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from reprokit.core.config import ModelConfig

__all__ = ["SimpleCNN", "build_model", "MODELS"]


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


MODELS = {"simple_cnn": SimpleCNN}


def build_model(cfg: ModelConfig, in_channels: int) -> nn.Module:
    return MODELS[cfg.name](in_channels=in_channels, channels=tuple(cfg.channels), embedding_dim=cfg.embedding_dim)
