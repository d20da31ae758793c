"""The trained model on disk: weights plus what is needed to rebuild it, loadable without Lightning.

Only tensors and plain values are stored, so ``torch.load(weights_only=True)`` reads it and the
validate stage does not pay Lightning's import time. The model is recorded as its ``name`` and
its args with a built-in's defaults filled in, with ``in_channels`` and the reprokit version that
trained it: validate and ``reprokit reproduce`` rebuild exactly that network (a ``module:callable``
of the user's is imported again from the project root).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reprokit import __version__
from reprokit.core.config import DataConfig, ModelConfig
from reprokit.core.errors import ConfigError
from reprokit.core.fileio import atomic_path
from reprokit.core.schema import load_dataclass
from reprokit.train.models import build_model

__all__ = ["save_model", "load_model", "FORMAT"]

FORMAT = "reprokit-model/2"
FORMAT_V1 = "reprokit-model/1"  # model: {name, channels, embedding_dim}, before model.args


def save_model(
    path: Path,
    model: nn.Module,
    model_cfg: ModelConfig,
    data: DataConfig,
    in_channels: int,
    inputs: Mapping[str, str] | None = None,
) -> None:
    """Write ``model`` with its record: the ``model`` section it was built from, its input channels and
    images (``data.image_size``, ``data.image_mode``), and ``inputs``, the files training read
    (``{path: sha256}``: user code, weights, the dataframe, as they were at the stage's start)."""
    payload = {
        "format": FORMAT,
        "reprokit_version": __version__,
        "model": model_cfg.architecture(),  # name, args and head: model.weights are superseded by state_dict
        "in_channels": in_channels,
        "image_size": data.image_size,
        "image_mode": data.image_mode,
        "inputs": dict(inputs or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _model_config(path: Path, payload: Any) -> ModelConfig:
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt == FORMAT_V1:
        old = payload["model"]
        spec = {"name": old["name"], "args": {k: old[k] for k in ("channels", "embedding_dim") if k in old}}
    elif fmt == FORMAT:
        spec = payload["model"]
    else:
        raise ConfigError(f"{path} is not a reprokit model checkpoint (format {fmt!r}; expected {FORMAT!r})")
    return load_dataclass(ModelConfig, spec, "model")


def load_model(path: Path) -> tuple[nn.Module, dict]:
    """The model ``path`` holds, rebuilt from its record, in eval mode; and the whole payload."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    cfg = _model_config(path, payload)
    model = build_model(cfg, payload["in_channels"], payload.get("image_size"))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        trained_with = payload.get("reprokit_version", "0.1.0")
        raise ConfigError(
            f"{path}: its weights do not fit model.name {cfg.name!r} as it builds now "
            f"({' '.join(first[1].split()) if len(first) > 1 else ' '.join(first[0].split())})",
            hint=f"the model's code changed since it was trained (with reprokit {trained_with}, now "
            f"{__version__}): re-run train (`dvc repro`)",
        ) from exc
    model.eval()
    return model, payload
