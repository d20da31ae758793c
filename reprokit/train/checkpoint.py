"""The trained model on disk: weights plus what is needed to rebuild it, loadable without Lightning.

Only tensors and plain values are stored, so ``torch.load(weights_only=True)`` reads it and the
validate stage does not pay Lightning's import time.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from reprokit.core.config import Config, ModelConfig
from reprokit.core.fileio import atomic_path
from reprokit.core.schema import load_dataclass, to_plain
from reprokit.train.models import build_model

__all__ = ["save_model", "load_model"]

FORMAT = "reprokit-model/1"


def save_model(path: Path, model: nn.Module, cfg: Config, in_channels: int) -> None:
    payload = {
        "format": FORMAT,
        "model": to_plain(cfg.model),
        "in_channels": in_channels,
        "image_size": cfg.data.image_size,
        "image_mode": cfg.data.image_mode,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: Path) -> tuple[nn.Module, dict]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(load_dataclass(ModelConfig, payload["model"], "model"), payload["in_channels"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload
