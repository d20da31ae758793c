"""One resolver for the ``{name, args}`` blocks that name a library's class.

``train.optimizer`` names a class of ``torch.optim``, ``train.scheduler`` one of
``torch.optim.lr_scheduler``, each ``train.augment`` entry one of ``kornia.augmentation``, and
``train.loss`` / ``train.miner`` one of pytorch-metric-learning's with the ``pml:`` prefix. Any of
them may instead be the user's ``module:callable``. A wrong name is one line listing what the
library has (and the closest match); a library that is not installed is one line with the
``pip install`` that adds it; an argument the class does not take is one line listing the ones it does.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

from reprokit.core.errors import ConfigError, ReprokitError
from reprokit.train.user_code import load_callable, reason

__all__ = ["Library", "OPTIMIZERS", "SCHEDULERS", "AUGMENTATIONS", "PML_LOSSES", "PML_MINERS", "resolve", "build"]


@dataclass(frozen=True)
class Library:
    module: str  # where the classes live, e.g. "torch.optim"
    base: str  # "module:Class" every listed class derives from
    prefix: str = ""  # "pml:" for pytorch-metric-learning: names carry it
    distribution: str = ""  # the package to install when the module is missing
    extra: str = ""  # reprokit's extra that installs it

    def describe(self) -> str:
        return f"{self.prefix}<a class of {self.module}>" if self.prefix else f"a class of {self.module}"


OPTIMIZERS = Library("torch.optim", "torch.optim:Optimizer")
SCHEDULERS = Library("torch.optim.lr_scheduler", "torch.optim.lr_scheduler:LRScheduler")
AUGMENTATIONS = Library("kornia.augmentation", "kornia.augmentation:AugmentationBase2D", "", "kornia", "augment")
PML_LOSSES = Library(
    "pytorch_metric_learning.losses",
    "pytorch_metric_learning.losses:BaseMetricLossFunction",
    "pml:",
    "pytorch-metric-learning",
    "pml",
)
PML_MINERS = Library(
    "pytorch_metric_learning.miners",
    "pytorch_metric_learning.miners:BaseMiner",
    "pml:",
    "pytorch-metric-learning",
    "pml",
)


def _import(key: str, name: str, library: Library) -> ModuleType:
    try:
        return importlib.import_module(library.module)
    except ModuleNotFoundError as exc:
        if not library.distribution:
            raise
        raise ConfigError(
            f"{key} {name!r} needs {library.distribution}, which is not installed in this environment",
            hint=f'pip install "reprokit[{library.extra}]"',
        ) from exc


def _base(library: Library) -> type:
    module, _, cls = library.base.partition(":")
    return getattr(importlib.import_module(module), cls)


def class_names(library: Library) -> list[str]:
    """The public classes of the library that derive from its base (the base itself excluded)."""
    module, base = importlib.import_module(library.module), _base(library)
    return sorted(
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and inspect.isclass(v) and issubclass(v, base) and v is not base
    )


def _is_own(name: str, library: Library) -> bool:
    """Whether ``name`` is the user's ``module:callable`` rather than a class of ``library``."""
    return ":" in name and not (library.prefix and name.startswith(library.prefix))


def resolve(key: str, name: str, library: Library) -> Callable[..., Any]:
    """The class ``name`` (at params.yaml key ``key``, e.g. ``train.optimizer.name``) names in
    ``library``, or the user's ``module:callable``."""
    if _is_own(name, library):
        return load_callable(key, name)
    bare = name[len(library.prefix) :] if library.prefix and name.startswith(library.prefix) else name
    module = _import(key, name, library)
    names = class_names(library)
    obj = getattr(module, bare, None)
    if bare in names and (not library.prefix or name.startswith(library.prefix)):
        return cast(Callable[..., Any], obj)
    wanted = f"{library.prefix}{bare}"
    same_letters = [n for n in names if n.lower() == bare.lower()]  # AdamW for "Adamw", not Adam
    close = same_letters or difflib.get_close_matches(bare, names, n=1)
    hint = f"did you mean {library.prefix}{close[0]!r}?" if close else None
    if library.prefix and not name.startswith(library.prefix) and bare in names:
        hint = f"write {wanted!r}"
    listed = ", ".join(f"{library.prefix}{n}" for n in names)
    raise ConfigError(
        f"{key} must be one of {library.describe()} ({listed}) or 'module:callable'; got {name!r}", hint=hint
    )


def _unknown_argument(fn: Callable[..., Any], kwargs: Mapping[str, Any], leading: int) -> tuple[str, list[str]] | None:
    """The first of ``kwargs`` that ``fn`` does not accept, and the ones it does (None when all fit)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    accepted = [p.name for p in params[leading:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [k for k in kwargs if k not in accepted]
    return (unknown[0], accepted) if unknown else None


def build(
    key: str, name: str, library: Library, args: Mapping[str, Any], *leading: Any, leading_names: str = ""
) -> Any:
    """``Class(*leading, **args)`` for the class ``name`` resolves to; one line for any failure.

    ``key`` is the block's key (``train.optimizer``); ``leading_names`` how the leading positional
    arguments read in a message (``params``, ``optimizer``)."""
    fn = resolve(f"{key}.name", name, library)
    label = name.replace(":", ".") if _is_own(name, library) else name
    unknown = _unknown_argument(fn, args, len(leading))
    if unknown is not None:
        arg, accepted = unknown
        raise ConfigError(
            f"{key}.args.{arg} must be an argument {label} takes ({', '.join(accepted) or 'none'}); got {arg!r}"
        )
    shown = f"{leading_names}, " if leading_names else ""
    what = f"{label}({shown}**{key}.args)"
    try:
        return fn(*leading, **args)
    except ReprokitError:
        raise
    except Exception as exc:
        # A class that takes **kwargs and passes them on names the stray argument only in its message.
        match = re.search(r"unexpected keyword argument '(\w+)'", str(exc)) if isinstance(exc, TypeError) else None
        if match and match[1] in args:
            raise ConfigError(f"{key}.args.{match[1]} must be an argument {label} takes; got {match[1]!r}") from exc
        raise ConfigError(f"{key}.name {name!r}: {what} raised {reason(exc)}") from exc
