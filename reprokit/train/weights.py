"""``model.weights``: a state-dict file loaded strictly into the network as built.

The file's keys are the network's ``state_dict()`` keys, exactly those of ``runs/train/model.ckpt``'s
``state_dict`` (so a finished run's checkpoint is itself a valid ``model.weights``): the backbone's
own keys, under ``backbone.`` once ``model.head`` wraps it, and the head's ``head.proj.weight`` /
``head.proj.bias``. One allowance: with a head, a file holding exactly the backbone's own keys (no
prefix) loads into the backbone and the head keeps its seeded initialisation — the usual "pretrained
backbone, new projection". Anything else that does not match key for key and shape for shape is one
line listing the missing and unexpected keys, with a hint when a prefix explains them (Lightning's
``model.``, DDP's ``module.``).

Formats: ``.safetensors`` (``safetensors.torch.load_file``), ``.pt``/``.pth``/``.ckpt``
(``torch.load(weights_only=True)``: tensors only, no code runs), a mapping of tensors or a mapping
with a ``state_dict`` mapping (Lightning and reprokit checkpoints).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reprokit.core.errors import ConfigError
from reprokit.train.user_code import describe, reason

__all__ = ["read_state_dict", "load_weights", "MAX_KEYS_LISTED"]

KEY = "model.weights"
MAX_KEYS_LISTED = 3


def _listed(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(repr(k) for k in keys[:MAX_KEYS_LISTED])
    return shown + (f" and {len(keys) - MAX_KEYS_LISTED} more" if len(keys) > MAX_KEYS_LISTED else "")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors the file holds, by key; a missing or unreadable file is one line naming it."""
    file = Path(path)
    where = f"{KEY} {str(path)!r}"
    if not file.is_file():
        what = "is a folder, not a file" if file.is_dir() else "no such file"
        raise ConfigError(
            f"{where}: {what}", hint="give a state-dict file (.safetensors, .pt, .pth) relative to the project root"
        )
    try:
        if file.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(str(file), device="cpu")
        else:
            data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(
            f"{where}: not a state dict this reader can open: {reason(exc)}",
            hint="save it with torch.save(model.state_dict(), path) or safetensors.torch.save_file",
        ) from exc
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]  # a Lightning or reprokit checkpoint
    if not isinstance(data, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()
    ):
        raise ConfigError(f"{where}: holds {describe(data)}, not a state dict (a mapping of names to tensors)")
    return dict(data)


def _prefix_hint(found: set[str], expected: set[str]) -> str | None:
    """A prefix that explains the mismatch: on the file's keys (strip it) or on the model's (add it)."""
    for prefix in sorted({k.split(".", 1)[0] + "." for k in found if "." in k}):
        stripped = {k[len(prefix) :] for k in found if k.startswith(prefix)}
        if expected <= stripped:
            return (
                f"the file's keys start with {prefix!r} (a Lightning or DDP checkpoint?): save the entries under it "
                f"without the prefix, e.g. {{k.removeprefix({prefix!r}): v for k, v in sd.items() if k.startswith({prefix!r})}}"
            )
    for prefix in sorted({k.split(".", 1)[0] + "." for k in expected if "." in k}):
        stripped = {k[len(prefix) :] for k in expected if k.startswith(prefix)}
        if found and found <= stripped:
            if prefix == "backbone.":
                return (
                    "the model's keys start with 'backbone.' (model.head wraps the backbone) where the file's do not: "
                    "a file of the backbone alone loads when it holds every one of the backbone's keys"
                )
            return f"the model's keys start with {prefix!r} where the file's do not: add it to the file's keys"
    return None


def load_weights(model: nn.Module, path: str | Path, backbone: nn.Module | None = None) -> None:
    """Load the file into ``model`` strictly (or, given a head's ``backbone``, into it when the keys are its own)."""
    where = f"{KEY} {str(path)!r}"
    state = read_state_dict(path)
    target = model
    expected = model.state_dict()
    if backbone is not None and set(state) != set(expected) and set(state) == set(backbone.state_dict()):
        target, expected = backbone, backbone.state_dict()
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        parts = ([f"missing keys: {_listed(missing)}"] if missing else []) + (
            [f"unexpected keys: {_listed(unexpected)}"] if unexpected else []
        )
        raise ConfigError(
            f"{where} does not fit the model ({len(expected)} keys): {'; '.join(parts)}",
            hint=_prefix_hint(set(state), set(expected)),
        )
    wrong = sorted(k for k in state if tuple(state[k].shape) != tuple(expected[k].shape))
    if wrong:
        k = wrong[0]
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise ConfigError(
            f"{where}: key {k!r} has shape {list(state[k].shape)} in the file and "
            f"{list(expected[k].shape)} in the model{more}"
        )
    target.load_state_dict(state, strict=True)
