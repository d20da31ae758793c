"""The user's own code named in params.yaml as ``module:callable`` (``model.name``, ``train.loss.name``).

The module is imported from the project root (the directory the stage runs in), the callable is
called with the block's ``args``; any failure on the way is one :class:`ConfigError` line naming the
key, the module, the attribute and the reason, e.g.
``model.name 'my_models:build': module 'my_models' has no attribute 'build'``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from reprokit.core.errors import ConfigError, ReprokitError

__all__ = ["load_callable", "call", "reason", "describe"]

MAX_REASON = 500  # characters of an exception's message kept in the one-line error


def reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > MAX_REASON:
        text = text[:MAX_REASON] + " …"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _a(name: str) -> str:
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def describe(value: Any) -> str:
    """A short description of what user code returned, for an error message."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{_a(type(value).__name__)} of shape {list(shape)}"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} ({', '.join(type(v).__name__ for v in value)})"
    return "None" if value is None else _a(type(value).__name__)


def _names_this_module(exc: ModuleNotFoundError, name: str) -> bool:
    """Whether the missing module is ``name`` itself (or a package of it), not something it imports."""
    return exc.name is not None and (name == exc.name or name.startswith(exc.name + "."))


def _import_once(where: str, name: str) -> ModuleType | None:
    """The module, or None when it is not found; any other failure is a one-line error."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if _names_this_module(exc, name):
            return None
        raise ConfigError(
            f"{where}: importing module {name!r} failed: {reason(exc)}",
            hint=f"install {exc.name!r} in this environment" if exc.name else None,
        ) from exc
    except Exception as exc:  # a SyntaxError, or an error raised while the module runs
        raise ConfigError(f"{where}: importing module {name!r} failed: {reason(exc)}") from exc


def _on_sys_path(directory: str) -> bool:
    return any(os.path.abspath(p or os.curdir) == directory for p in sys.path)


def _import(key: str, where: str, name: str) -> ModuleType:
    module = _import_once(where, name)
    if module is not None:
        return module
    root = os.getcwd()
    importlib.invalidate_caches()  # a module file written after this process started is found too
    # `python -m stages.train` (how dvc.yaml runs a stage) puts its working directory, the project
    # root, first on sys.path; a console script (`reprokit ...`) or another host process does not.
    # The user's module lives in the project root: look there, for this import only, so that no
    # project file shadows a module with the same name that something imports later.
    added = not _on_sys_path(root)
    if added:
        sys.path.insert(0, root)
    try:
        module = _import_once(where, name)
    finally:
        if added:
            sys.path.remove(root)
    if module is None:
        file = name.replace(".", "/")
        raise ConfigError(
            f"{where}: no module named {name!r} in the project root {root} or on sys.path",
            hint=f"{key} is 'module:callable' with the module a file {file}.py (or package {file}/__init__.py) "
            "in the directory the stage runs in",
        )
    return module


def _callables_of(module: ModuleType) -> list[str]:
    return sorted(
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == module.__name__
    )


def load_callable(key: str, spec: str) -> Callable[..., Any]:
    """The object ``spec`` (``module:attr`` or ``module:attr.attr``) names; ``key`` is its params.yaml key."""
    where = f"{key} {spec!r}"
    module_name, _, attr = spec.partition(":")
    module = _import(key, where, module_name)
    obj: Any = module
    parts = attr.split(".")
    for i, part in enumerate(parts):
        owner = module_name if i == 0 else f"{module_name}.{'.'.join(parts[:i])}"
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            if i == 0:
                found = _callables_of(module)
                hint = f"callables it defines: {', '.join(found)}" if found else None
                raise ConfigError(f"{where}: module {module_name!r} has no attribute {part!r}", hint=hint) from exc
            raise ConfigError(f"{where}: {owner} has no attribute {part!r}") from exc
        except Exception as exc:  # a module-level __getattr__ or a property that fails
            raise ConfigError(f"{where}: getting {part!r} from {owner} failed: {reason(exc)}") from exc
    if not callable(obj):
        raise ConfigError(f"{where}: {module_name}.{attr} is {describe(obj)}, not a callable")
    return obj


def call(where: str, fn: Callable[..., Any], what: str, kwargs: Mapping[str, Any]) -> Any:
    """``fn(**kwargs)``; an exception it raises becomes one line: ``<where>: <what> raised <reason>``."""
    try:
        return fn(**kwargs)
    except ReprokitError:
        raise
    except Exception as exc:
        raise ConfigError(f"{where}: {what} raised {reason(exc)}") from exc
