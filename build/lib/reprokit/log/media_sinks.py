"""Sending one image or text to one Lightning logger, whatever its kind.

Each logger kind gets the call its experiment object supports. A logger that cannot hold
images or text (CSV, unknown kinds) gets them saved as files under ``<default_root_dir>/media``
with a single warning per logger, so nothing a user logs is lost silently.
"""

from __future__ import annotations

import warnings
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from reprokit.core.fileio import atomic_path, write_text
from reprokit.core.layout import media_name
from reprokit.log.media import Occurrences, to_pil

__all__ = ["send_image", "send_text"]

_occurrences = Occurrences()

# Loggers already warned about. Weak, so that a new logger reusing a dead one's id() still gets its warning.
_warned: weakref.WeakSet = weakref.WeakSet()


def _fallback_dir(logger: Any, fallback_dir: str) -> Path:
    base = getattr(logger, "log_dir", None) or fallback_dir
    return Path(base) / "media"


def _warn_once(logger: Any, where: Path) -> None:
    if logger in _warned:
        return
    _warned.add(logger)
    warnings.warn(
        f"{type(logger).__name__} cannot store images or text; reprokit saves them as files under {where}",
        UserWarning,
        stacklevel=4,
    )


def send_image(logger: Any, key: str, image_hwc: np.ndarray, step: int, fallback_dir: str) -> None:
    kind = type(logger).__name__
    if hasattr(logger, "log_image") and kind == "RunFolderLogger":
        logger.log_image(key, image_hwc, step)
    elif kind == "TensorBoardLogger":
        # TensorBoard's UI shows one image event per tag and step: a further one gets a tag of its own.
        n = _occurrences.next(logger, "image", key, step)
        logger.experiment.add_image(key if n == 0 else f"{key}-{n}", image_hwc, step, dataformats="HWC")
    elif kind == "MLFlowLogger":
        logger.experiment.log_image(logger.run_id, to_pil(image_hwc), key=key.replace("/", "_"), step=step)
    elif kind == "WandbLogger":
        logger.log_image(key=key, images=[image_hwc], step=step)
    else:
        where = _fallback_dir(logger, fallback_dir)
        name = media_name(step, _occurrences.next(logger, "image", key, step), ".png")
        with atomic_path(where / "images" / key / name) as tmp:
            to_pil(image_hwc).save(tmp, format="PNG")
        _warn_once(logger, where)


def send_text(logger: Any, key: str, text: str, step: int, fallback_dir: str) -> None:
    kind = type(logger).__name__
    if hasattr(logger, "log_text") and kind == "RunFolderLogger":
        logger.log_text(key, text, step)
    elif kind == "TensorBoardLogger":
        logger.experiment.add_text(key, text, step)
    elif kind == "MLFlowLogger":
        name = media_name(step, _occurrences.next(logger, "text", key, step), ".txt")
        logger.experiment.log_text(logger.run_id, text, f"text/{key}/{name}")
    elif kind == "WandbLogger":
        logger.log_text(key=key, columns=["step", "text"], data=[[step, text]], step=step)
    else:
        where = _fallback_dir(logger, fallback_dir)
        write_text(where / "text" / key / media_name(step, _occurrences.next(logger, "text", key, step), ".txt"), text)
        _warn_once(logger, where)
