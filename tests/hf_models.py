"""Tiny random `transformers` vision models saved with `save_pretrained`: stand-ins for real checkpoints.

Each is a few hundred kB at most (RGB, 32 px images, 8 px patches, hidden size 32, 2 layers), built
from a config (no download) with `torch.manual_seed(seed)` first, so the same call writes the same
bytes: a test can rebuild a folder byte for byte, or change `seed` to get other weights in the same
architecture (e.g. "the weights folder was replaced"). transformers is imported on call only.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = ["save_tiny_vit", "save_tiny_dinov2", "save_tiny_resnet", "TINY_MODELS"]

IMAGE_SIZE, PATCH_SIZE, HIDDEN, LAYERS, HEADS = 32, 8, 32, 2, 2


def _save(model, folder: Path, preprocessor: dict | None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    if preprocessor is not None:  # what `hf download` brings beside a model: its image_mean / image_std
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2, sort_keys=True) + "\n")
    return folder


def save_tiny_vit(folder: Path, seed: int = 0, preprocessor: dict | None = None) -> Path:
    """A random ViTModel (class token + 16 patch tokens of 32 px RGB images) in ``folder``."""
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        num_channels=3,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=2 * HIDDEN,
    )
    return _save(ViTModel(config), folder, preprocessor)


def save_tiny_dinov2(folder: Path, seed: int = 0, preprocessor: dict | None = None) -> Path:
    """A random Dinov2Model (class token + 16 patch tokens of 32 px RGB images) in ``folder``."""
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    config = Dinov2Config(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        num_channels=3,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        mlp_ratio=2,
    )
    return _save(Dinov2Model(config), folder, preprocessor)


def save_tiny_resnet(folder: Path, seed: int = 0, preprocessor: dict | None = None) -> Path:
    """A random ResNetModel (two basic stages, 8 and 16 channels, with BatchNorm) in ``folder``."""
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(seed)
    config = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")
    return _save(ResNetModel(config), folder, preprocessor)


TINY_MODELS = {"vit": save_tiny_vit, "dinov2": save_tiny_dinov2, "resnet": save_tiny_resnet}
