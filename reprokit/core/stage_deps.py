"""The rule: every file a stage reads is one of its DVC dependencies, or the stage refuses to start.

A file a stage reads but ``dvc.yaml`` does not list is a silent stale result: edit it and
``dvc status`` says "up to date", ``dvc repro`` re-uses the old numbers. So train, validate and
visualize check, before any work, that each file they will read lies under one of their ``deps``:

- the project code they will import: the module of every ``module:callable`` named in the config
  sections the stage builds from (``model.name``, ``train.loss.name``, any ``{name, args}`` block),
  and every project module those import (:mod:`reprokit.core.project_imports`);
- every file or folder a parameter names (:data:`FILE_KEYS`: the data, weights, a model folder).

The deps are DVC's own reading of ``dvc.yaml`` (``${...}`` rendered from ``params.yaml`` the way
``dvc repro`` renders them). When a file is not covered, the stage stops with one line naming the
file, the stage and the line to add (``reprokit deps --write`` adds it). Without a ``dvc.yaml``
(a stage called from a notebook) the check is skipped with a note.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reprokit.core.components import CALLABLE_NAME
from reprokit.core.config import load_config, lookup  # lookup: re-exported
from reprokit.core.dvc_yaml_edit import add_deps, remove_deps, template_deps
from reprokit.core.errors import ConfigError, DependencyError
from reprokit.core.layout import PARAMS_FILE
from reprokit.core.project_imports import imported_files, project_relative
from reprokit.core.schema import to_plain

__all__ = [
    "FILE_KEYS",
    "CHECKED_STAGES",
    "Input",
    "StageCheck",
    "config_inputs",
    "check_stage",
    "require_stage_deps",
    "recorded_inputs",
    "content_hash",
    "input_hashes",
    "lookup",
    "sync_deps",
    "stage_params",
]

CHECKED_STAGES = ("train", "validate", "visualize")
# The config sections each stage builds things from: every `name` there that is "module:callable"
# is code the stage imports. validate and visualize rebuild the model from the checkpoint's record
# of model.* (params.yaml's, when train ran from it).
BUILDS = {
    "train": ("model", "train", "data", "trainer"),
    "validate": ("model", "data", "validate"),
    "visualize": ("model", "data", "visualize"),
}
DVC_YAML = "dvc.yaml"


@dataclass(frozen=True)
class FileKey:
    """A params.yaml key that names a file or folder every checked stage reads (the one table of them)."""

    key: str
    applies: Callable[[dict[str, Any]], bool] = lambda params: True
    # Recorded by content hash in run.json and the checkpoint; data.root is not: its images are
    # hashed by DVC (dvc.lock) and image by image by `reprokit compare`, and reading the whole
    # dataset at every start would cost its read time.
    hashed: bool = True


FILE_KEYS: tuple[FileKey, ...] = (
    FileKey("data.dataframe"),
    FileKey("data.root", hashed=False),
    FileKey("model.weights"),  # a state-dict file loaded into the built model (null: none)
    FileKey("model.args.path", lambda params: lookup(params, "model.name") == "hf"),  # a transformers model folder
)


@dataclass(frozen=True)
class Input:
    path: str  # relative to the project (posix); absolute when it lies outside
    reason: str  # what makes the stage read it: "model.name 'my_models:build'", "model.weights"
    dep_line: str  # what to list under the stage's deps to cover it
    hashed: bool = True


@dataclass
class StageCheck:
    stage: str  # the stage's name in dvc.yaml
    inputs: list[Input]
    missing: list[Input] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)  # path -> sha256, with hash_inputs

    def refusal(self) -> DependencyError:
        """One line: the files, the stage and the lines to add."""
        shown = ", ".join(f"{i.path} ({i.reason})" for i in self.missing)
        what = f"{shown}, which is" if len(self.missing) == 1 else f"{len(self.missing)} files that are: {shown};"
        lines = list(dict.fromkeys(f"- {i.dep_line}" for i in self.missing))
        return DependencyError(
            f"stage {self.stage!r} reads {what} not under any of its deps in {DVC_YAML}, so editing "
            f"{'it' if len(self.missing) == 1 else 'them'} would not re-run {self.stage} (a stale result)",
            hint=f"add {' and '.join(repr(line) for line in lines)} under stages.{self.stage}.deps in {DVC_YAML}, "
            "or run `reprokit deps --write`",
        )


def _callable_names(node: Any, key: str) -> Iterator[tuple[str, str]]:
    """(key, value) of every `name` under ``node`` that names "module:callable"."""
    if isinstance(node, dict):
        for k, v in node.items():
            sub = f"{key}.{k}" if key else str(k)
            if k == "name" and isinstance(v, str) and CALLABLE_NAME.fullmatch(v):
                yield sub, v
            else:
                yield from _callable_names(v, sub)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _callable_names(v, f"{key}[{i}]")


def _shown(path: str | Path, project_dir: Path) -> str:
    rel = project_relative(path, project_dir)
    return rel if rel is not None else os.path.normpath(os.path.join(project_dir, path))


def _code_dep_line(rel: str, project_dir: Path) -> str:
    """The top-level package folder of a module in a package (one line covers its siblings), else the file."""
    parts = Path(rel).parts
    for i in range(1, len(parts)):
        if (project_dir.joinpath(*parts[:i]) / "__init__.py").is_file():
            return Path(*parts[:i]).as_posix()
    return rel


def config_inputs(params: dict[str, Any], stage: str, project_dir: Path) -> list[Input]:
    """Every file ``stage`` reads because ``params`` (plain data: the config or params.yaml) names it."""
    found: dict[str, Input] = {}
    for section in BUILDS[stage]:
        for key, spec in _callable_names(params.get(section), section):
            module = spec.partition(":")[0]
            for rel in imported_files([module], project_dir)[module]:
                own = rel in (module.replace(".", "/") + ".py", module.replace(".", "/") + "/__init__.py")
                why = f"{key} {spec!r}" if own else f"imported for {key} {spec!r}"
                found.setdefault(rel, Input(rel, why, _code_dep_line(rel, project_dir)))
    for file_key in FILE_KEYS:
        value = lookup(params, file_key.key)
        if isinstance(value, str) and value and file_key.applies(params):
            path = _shown(value, project_dir)
            # `${key}`: the dependency follows the parameter (`dvc exp run -S model.weights=...`).
            found.setdefault(path, Input(path, file_key.key, "${" + file_key.key + "}", file_key.hashed))
    return list(found.values())


def _stage_name(stage: str) -> str:
    """The dvc.yaml stage running this process: DVC names it in $DVC_STAGE (``[path:]name``) for
    every command it runs; a stage started by hand is looked up by its own name."""
    addressing = os.environ.get("DVC_STAGE", "")
    return addressing.rpartition(":")[2] or stage


def _note(stage: str, why: str) -> None:
    print(f"{stage}: note: {why}: not checking that the files it reads are DVC dependencies", file=sys.stderr)


def stage_params(stage: str, project_dir: Path | None = None) -> list[str] | None:
    """The params.yaml keys that dvc.yaml lists under the running stage's ``params``: exactly what DVC
    tracks for it, so the stage records those (dvc.yaml, the user's file, is their one owner). None when
    nothing narrows them: no dvc.yaml or no such stage (a run outside the pipeline), or the whole file listed."""
    path = Path(project_dir or Path.cwd()) / DVC_YAML
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read it: {' '.join(str(exc).split())}") from exc
    name = _stage_name(stage)
    stages = doc.get("stages") if isinstance(doc, dict) else None
    entry = (stages or {}).get(name) or (stages or {}).get(name.partition("@")[0])  # foreach: name@item
    if isinstance(entry, dict) and "do" in entry:
        entry = entry["do"]
    if not isinstance(entry, dict):
        return None
    keys: list[str] = []
    for item in entry.get("params") or []:
        if isinstance(item, str):  # a key of DVC's default params file
            keys.append(item)
        elif isinstance(item, dict) and PARAMS_FILE in item:
            if item[PARAMS_FILE] is None:  # `- params.yaml:` tracks the whole file
                return None
            keys.extend(item[PARAMS_FILE])
    return keys


_TOKEN = re.compile(r"\$\{\s*([A-Za-z_][\w-]*(?:\.[\w-]+)*)\s*\}")


def _next_str(values: Iterator[Any], _match: re.Match[str]) -> str:
    """The next of ``values`` as text: the replacement of one ``${...}`` token, in order."""
    return str(next(values))


def _rendered_here(project_dir: Path, name: str) -> list[Path] | None:
    """Stage ``name``'s deps rendered the way DVC renders the common case — a plain stage whose
    ``${a.b}`` come from params.yaml (and dvc.yaml's inline ``vars``) — in milliseconds, not the
    second that opening a DVC repository takes; None for anything else (DVC's own API then renders)."""
    if not (project_dir / ".dvc").is_dir():
        return None
    try:
        doc = yaml.safe_load((project_dir / DVC_YAML).read_text()) or {}
        params_file = project_dir / PARAMS_FILE
        context = (yaml.safe_load(params_file.read_text()) or {}) if params_file.is_file() else {}
    except (OSError, yaml.YAMLError):
        return None
    stage = (doc.get("stages") or {}).get(name) if isinstance(doc, dict) else None
    extra = doc.get("vars") or [] if isinstance(doc, dict) else []
    if not isinstance(stage, dict) or not isinstance(context, dict) or "wdir" in stage or "vars" in stage:
        return None
    for entry in extra:
        if not isinstance(entry, dict):
            return None  # a vars file: DVC reads it
        context = {**context, **entry}
    deps = []
    for dep in stage.get("deps") or []:
        text = next(iter(dep)) if isinstance(dep, dict) else dep
        if not isinstance(text, str):
            return None
        values = [lookup(context, key, missing=...) for key in _TOKEN.findall(text)]
        if any(isinstance(v, bool) or not isinstance(v, (str, int, float)) for v in values):
            return None  # a missing or null key, a list: DVC's own message is the one to show
        parts = iter(values)
        rendered = _TOKEN.sub(functools.partial(_next_str, parts), text)
        if "${" in rendered:
            return None  # an index (`${a[0]}`) or other syntax: DVC's
        deps.append(Path(os.path.normpath(os.path.join(project_dir, rendered))))
    return deps


def stage_deps(project_dir: Path, name: str) -> list[Path] | None:
    """The absolute paths of stage ``name``'s deps as DVC renders them; None (with a note) when there
    is no DVC pipeline to check against."""
    rendered = _rendered_here(project_dir, name)
    if rendered is not None:
        return rendered
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo
    from dvc.stage.exceptions import StageNotFound

    try:
        repo = Repo(str(project_dir))
    except NotDvcRepoError:
        _note(name, f"{project_dir} is not a DVC repository")
        return None
    try:
        stages = repo.stage.collect(f"{project_dir / DVC_YAML}:{name}")
    except StageNotFound:
        _note(name, f"{DVC_YAML} has no stage {name!r} (a run outside the pipeline)")
        return None
    except DvcException as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{project_dir / DVC_YAML}: DVC cannot read stage {name!r}: {reason}") from exc
    finally:
        repo.close()
    return [Path(os.path.normpath(d.fs_path)) for s in stages for d in s.deps]


def _covered(path: str, deps: list[Path], project_dir: Path) -> bool:
    target = os.path.normpath(os.path.join(project_dir, path))
    return any(target == str(d) or target.startswith(str(d).rstrip(os.sep) + os.sep) for d in deps)


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_dir():  # a model folder: its files' names and contents, in a fixed order
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path).as_posix()}\0{content_hash(file)}\n".encode())
        return digest.hexdigest()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_hashes(inputs: list[Input], project_dir: Path) -> dict[str, str]:
    """``{path: sha256}`` of the inputs that are recorded by content (a missing one: left out,
    the stage itself reports it)."""
    hashes = {}
    for item in inputs:
        path = project_dir / item.path
        if item.hashed and path.exists():
            hashes[item.path] = content_hash(path)
    return dict(sorted(hashes.items()))


# What each stage of this process found at its start, so that records written later (the
# checkpoint, run.json) hold the files as they were when the stage began, not after an edit.
_STARTED: dict[str, StageCheck] = {}


def check_stage(
    stage: str,
    params: dict[str, Any],
    project_dir: Path | None = None,
    hash_inputs: bool = False,
    name: str | None = None,
) -> StageCheck | None:
    """The rule for ``stage`` (train, validate or visualize) with config ``params`` (plain data), against
    the dvc.yaml stage ``name`` (default: the one running this process); None, after a note, when
    there is no pipeline to check against."""
    project_dir = Path(project_dir or Path.cwd())
    inputs = config_inputs(params, stage, project_dir)
    check = StageCheck(name or _stage_name(stage), inputs)
    if hash_inputs:
        check.hashes = input_hashes(inputs, project_dir)
    if not (project_dir / DVC_YAML).is_file():
        _note(stage, f"no {DVC_YAML} in {project_dir} (a run outside DVC, e.g. from a notebook)")
        return None
    deps = stage_deps(project_dir, check.stage)
    if deps is None:
        return None
    check.missing = [i for i in inputs if not _covered(i.path, deps, project_dir)]
    return check


def require_stage_deps(stage: str, params_path: str | Path, hash_inputs: bool = False) -> StageCheck | None:
    """Called first thing by train, validate and visualize: raise the one-line refusal when a file
    the stage reads is not a dependency; remember what it found for the records written later."""
    params = to_plain(load_config(params_path))
    project_params = Path.cwd() / PARAMS_FILE
    if (Path.cwd() / DVC_YAML).is_file() and Path(params_path).resolve() != project_params.resolve():
        # dvc.yaml's deps are rendered from the project's params.yaml: another file is not that pipeline.
        _note(stage, f"{params_path} is not {project_params}, which {DVC_YAML} is rendered from")
        check = None
    else:
        check = check_stage(stage, params, hash_inputs=hash_inputs)
    if check is not None and check.missing:
        raise check.refusal()
    if check is None and hash_inputs:  # no pipeline to check, but the records still name the files
        inputs = config_inputs(params, stage, Path.cwd())
        check = StageCheck(stage, inputs, hashes=input_hashes(inputs, Path.cwd()))
    if check is not None:
        _STARTED[stage] = check
    return check


def recorded_inputs(params: dict[str, Any], stage: str = "train", project_dir: Path | None = None) -> dict[str, str]:
    """``{path: sha256}`` of what ``stage`` reads: as this process found it at the stage's start
    (:func:`require_stage_deps`), or, for a caller outside a stage, as the files are now."""
    check = _STARTED.get(stage)
    if check is not None:
        return dict(check.hashes)
    project_dir = Path(project_dir or Path.cwd())
    return input_hashes(config_inputs(params, stage, project_dir), project_dir)


def sync_deps(params_path: str | Path, project_dir: Path, write: bool) -> tuple[list[str], int]:
    """``reprokit deps [--write]``: each checked stage's missing deps (added to dvc.yaml with
    ``write``), and templated deps DVC cannot render (a ``${model.weights}`` set back to null:
    removed with ``write``). Returns the lines to print and the exit code (1: something to fix)."""
    dvc_yaml = project_dir / DVC_YAML
    if not dvc_yaml.is_file():
        raise ConfigError(f"no {DVC_YAML} in {project_dir}", hint="run `reprokit init` first")
    params = to_plain(load_config(params_path))
    lines: list[str] = []
    unrenderable: dict[str, list[str]] = {}
    for stage, deps in template_deps(dvc_yaml).items():
        for dep, key in deps:
            # Only a key params.yaml holds as null: others may come from dvc.yaml's own `vars`.
            if key.split(".")[0] in params and lookup(params, key, missing=...) is None:
                unrenderable.setdefault(stage, []).append(dep)
                lines.append(
                    f"{stage}: '- {dep}' names {key}, which is null: DVC cannot render it: "
                    + ("removed" if write else "remove it (or run `reprokit deps --write`)")
                )
    if unrenderable and not write:
        return lines, 1  # DVC cannot read the pipeline until those go
    if unrenderable:
        remove_deps(dvc_yaml, unrenderable)
    additions: dict[str, list[str]] = {}
    for stage in CHECKED_STAGES:
        check = check_stage(stage, params, project_dir, name=stage)
        if check is None:
            continue
        for item in check.missing:
            fix = f"added '- {item.dep_line}'" if write else f"add '- {item.dep_line}' under stages.{stage}.deps"
            lines.append(f"{stage}: {item.path} ({item.reason}) is not a dependency: {fix}")
            additions.setdefault(stage, []).append(item.dep_line)
        if not check.missing:
            n = len(check.inputs)
            lines.append(f"{stage}: ok ({n} files it reads from params.yaml and its imports are dependencies)")
    if write and additions:
        add_deps(dvc_yaml, {stage: list(dict.fromkeys(entries)) for stage, entries in additions.items()})
    return lines, 1 if additions and not write else 0
