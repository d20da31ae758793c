"""The built-in ``hf`` model: a Hugging Face ``transformers`` vision model from a folder on disk.

``model: {name: hf, args: {path: weights/dinov2-small, pooling: cls}}`` loads the folder with
``AutoModel.from_pretrained(path, local_files_only=True)`` (and ``HF_HUB_OFFLINE=1``): never the
network, so a run reads exactly the files DVC tracks. A folder holding a two-tower model (CLIP,
SigLIP) gives its vision tower. The network it builds:

- takes images in [0, 1] as reprokit's datasets give them; a grey batch (``data.image_mode: L``)
  is repeated to the model's three channels; an RGB batch for a one-channel model is refused;
- normalises them with ``input_norm``: ``auto`` the folder's ``preprocessor_config.json``
  (``image_mean``/``image_std``), else ImageNet's; ``imagenet``; or ``none`` (kept as
  non-persistent buffers: not part of the state dict, so ``model.weights`` never has to hold them);
- pools the model's output into one vector per image: ``cls`` the first token (ViT, DeiT, DINOv2,
  CLIP's class token), ``mean`` the mean of the patch tokens (class and register tokens left out)
  or of a convolutional feature map (ResNet, ConvNeXt), ``pooler`` the model's ``pooler_output``.

Its parameters live under ``hf.`` (``hf.embeddings...``), so a Grad-CAM layer reads e.g.
``hf.encoder.layer.1.norm1``. ``transformers`` is imported only here, when ``hf`` is asked for.
"""

from __future__ import annotations

import inspect
import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from reprokit.core.errors import ConfigError
from reprokit.train.user_code import reason

__all__ = ["HFBackbone", "build_hf", "IMAGENET_MEAN", "IMAGENET_STD", "INSTALL_HINT"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INSTALL_HINT = 'pip install "reprokit[hf]"'
KEY = "model.args"


def _import_transformers():
    # huggingface_hub reads HF_HUB_OFFLINE when it is first imported: set it before, for this process.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError as exc:
        raise ConfigError(
            f"model.name 'hf' needs the transformers package, which is not installed ({reason(exc)})",
            hint=INSTALL_HINT,
        ) from exc
    except Exception as exc:  # installed but broken, e.g. beside a torchvision built for another torch
        raise ConfigError(f"model.name 'hf': importing transformers failed: {reason(exc)}") from exc
    return transformers


@contextmanager
def _quiet_loading(transformers):
    """No "Loading weights" progress bar in the stage's output; the caller's setting comes back after."""
    logging = transformers.utils.logging
    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()


def _download_hint(path: str) -> str:
    name = Path(path).name or "NAME"
    return (
        f"download it once: `hf download ORG/{name} --local-dir {path}` (older huggingface_hub: "
        f"`huggingface-cli download`), then `dvc add {path}`"
    )


def _load(path: str) -> nn.Module:
    folder = Path(path)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "no such folder"
        raise ConfigError(
            f"{KEY}.path {path!r}: {what} (a transformers model folder: config.json and its weights)",
            hint=_download_hint(path),
        )
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"{KEY}.path {path!r}: no config.json in it; not a transformers model folder", hint=_download_hint(path)
        )
    transformers = _import_transformers()
    try:
        with _quiet_loading(transformers):
            model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise ConfigError(f"{KEY}.path {path!r}: transformers could not load it: {reason(exc)}") from exc
    vision = getattr(model, "vision_model", None)
    if getattr(model.config, "vision_config", None) is not None and isinstance(vision, nn.Module):
        model = vision  # a two-tower model (CLIP, SigLIP): images go through its vision tower only
    return model.float()  # a half-precision checkpoint trains in float32, as every other model does


def _vision_config(model: nn.Module):
    config = model.config
    return getattr(config, "vision_config", None) or config


def _norm_stats(path: str, input_norm: str, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    if input_norm == "none":
        return None
    raw_mean, raw_std = IMAGENET_MEAN, IMAGENET_STD
    processor = Path(path) / "preprocessor_config.json"
    if input_norm == "auto" and processor.is_file():
        try:
            found = json.loads(processor.read_text())
            raw_mean, raw_std = found.get("image_mean", raw_mean), found.get("image_std", raw_std)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{KEY}.path {path!r}: {processor.name} is not readable JSON: {reason(exc)}") from exc
    mean: tuple[float, ...] = tuple(
        float(v) for v in (raw_mean if isinstance(raw_mean, (list, tuple)) else [raw_mean] * channels)
    )
    std: tuple[float, ...] = tuple(
        float(v) for v in (raw_std if isinstance(raw_std, (list, tuple)) else [raw_std] * channels)
    )
    if channels == 1 and len(mean) == len(std) == 3:  # a one-channel model: the colour statistics averaged
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    if len(mean) != channels or len(std) != channels or not all(s > 0 for s in std):
        raise ConfigError(
            f"{KEY}.input_norm {input_norm!r}: image_mean {list(mean)} / image_std {list(std)} do not fit the model's "
            f"{channels} channels (std > 0)",
            hint=f"fix {processor} or set {KEY}.input_norm: none",
        )
    return mean, std


class HFBackbone(nn.Module):
    """A transformers vision model as an embedding network: [N, C, H, W] in [0, 1] -> [N, D]."""

    pixel_mean: torch.Tensor  # buffers (registered in __init__)
    pixel_std: torch.Tensor

    def __init__(
        self, model: nn.Module, in_channels: int, pooling: str, norm: tuple[tuple[float, ...], tuple[float, ...]] | None
    ) -> None:
        super().__init__()
        self.hf = model
        self.pooling = pooling
        config = _vision_config(model)
        channels = int(getattr(config, "num_channels", 3))
        self.repeat = channels if in_channels == 1 and channels > 1 else 1  # grey images, a colour model
        patch = getattr(config, "patch_size", None)
        self.patch_size = patch if isinstance(patch, int) else None
        size = getattr(config, "image_size", None)
        self.image_size = size if isinstance(size, int) else None
        # ViT and CLIP want their configured size unless told to interpolate their position embeddings.
        self._interpolates = "interpolate_pos_encoding" in inspect.signature(model.forward).parameters
        mean, std = norm if norm is not None else ((0.0,) * channels, (1.0,) * channels)
        self.normalized = norm is not None
        # Not persistent: the folder (and input_norm) decides them, never a state dict.
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def token_grid(self, height: int, width: int, n_tokens: int) -> tuple[int, int, int] | None:
        """(leading non-patch tokens, grid rows, grid columns) of a token sequence for an image of this
        size: class and register tokens come first, then the patches row by row. None when the
        model's patch size does not account for the tokens (e.g. a hierarchical model)."""
        if not self.patch_size:
            return None
        rows, cols = height // self.patch_size, width // self.patch_size
        prefix = n_tokens - rows * cols
        return (prefix, rows, cols) if rows * cols > 0 and prefix >= 0 else None

    def gradcam_default_layer(self) -> str | None:
        """For a transformer: the input norm of its last block (e.g. ``hf.encoder.layer.1.norm1``). At the
        last block's output only the class token would carry a gradient with ``pooling: cls``; its
        input is where every patch token feeds the pooled vector. None (the last Conv2d) for a CNN."""
        blocks = [(name, m) for name, m in self.hf.named_modules() if isinstance(m, nn.ModuleList) and len(m)]
        if not blocks or not self._outputs_tokens():
            return None
        name, block_list = blocks[-1]
        last = f"{name}.{len(block_list) - 1}"
        norms = [n for n, m in block_list[-1].named_modules() if isinstance(m, nn.LayerNorm)]
        return f"hf.{last}.{norms[0]}" if norms else f"hf.{last}"

    def _outputs_tokens(self) -> bool:
        size = self.image_size or 32
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            with torch.no_grad():
                channels = self.pixel_mean.shape[1] if self.repeat == 1 else 1
                hidden = self._hidden(torch.zeros(1, channels, size, size, device=self.pixel_mean.device))
        finally:
            for m, training in modes:
                m.training = training
        return hidden[0].ndim == 3

    def _hidden(self, images: torch.Tensor):
        x = images
        if self.repeat > 1:
            x = x.expand(-1, self.repeat, -1, -1)
        if self.normalized:
            x = (x - self.pixel_mean) / self.pixel_std
        kwargs = {}
        if self._interpolates and self.image_size is not None and tuple(x.shape[2:]) != (self.image_size,) * 2:
            kwargs["interpolate_pos_encoding"] = True
        out = self.hf(pixel_values=x, **kwargs)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        pooled = getattr(out, "pooler_output", None)
        return hidden, pooled

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden, pooled = self._hidden(images)
        model = type(self.hf).__name__
        if self.pooling == "pooler":
            if pooled is None:
                raise ConfigError(
                    f"{KEY}.pooling 'pooler': this model ({model}) returns no pooler_output",
                    hint=f"use {KEY}.pooling: cls or mean",
                )
            return pooled.flatten(1)
        if hidden.ndim == 4:  # a convolutional feature map [N, C, h, w]
            if self.pooling == "cls":
                raise ConfigError(
                    f"{KEY}.pooling 'cls': this model ({model}) outputs feature maps {list(hidden.shape)}, "
                    "which have no class token",
                    hint=f"use {KEY}.pooling: mean or pooler",
                )
            return hidden.mean(dim=(2, 3))
        if self.pooling == "cls":
            return hidden[:, 0]
        grid = self.token_grid(int(images.shape[2]), int(images.shape[3]), int(hidden.shape[1]))
        prefix = grid[0] if grid is not None else 0
        return hidden[:, prefix:].mean(dim=1)


def build_hf(in_channels: int, path: str, pooling: str = "cls", input_norm: str = "auto") -> HFBackbone:
    """``model.name: hf``: the model in folder ``path`` (see the module's docstring)."""
    model = _load(path)
    channels = int(getattr(_vision_config(model), "num_channels", 3))
    if in_channels != channels and not (in_channels == 1 and channels > 1):
        raise ConfigError(
            f"{KEY}.path {path!r}: the model takes {channels}-channel images and data.image_mode gives {in_channels}",
            hint="set data.image_mode: L" if channels == 1 else None,
        )
    return HFBackbone(model, in_channels, pooling, _norm_stats(path, input_norm, channels))
