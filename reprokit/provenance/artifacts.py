"""Reproducibility artifacts of a run: code snapshot, resolved config, dataframe, tags, environment.

Written under ``runs/train/artifacts/`` by the train stage:

- ``code.tar.gz``   the git-tracked files as they are in the working tree at run time
                    (untracked and ignored files never go in);
- ``git.json``      commit, branch, dirty flag; ``diff.patch``: ``git diff HEAD`` of tracked
                    files (binary-safe), so ``git apply`` onto the commit gives the exact files;
- ``config.yaml``   the resolved config, secret-looking values redacted;
- ``dataframe.csv`` + ``dataframe.json`` (sha256, rows);
- ``tags.json``     user tags and automatic ones (git commit/branch/dirty, DVC experiment name);
- ``env.json``      Python, torch, Lightning, DVC versions, installed packages, platform, seed.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import sys
import tarfile
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from reprokit.core.config import Config, redact, secret_values
from reprokit.core.fileio import write_bytes, write_json, write_text
from reprokit.core.git import GitState, excluded, git, git_state
from reprokit.core.layout import RUNS_ROOT, ArtifactsDir
from reprokit.core.secrets import scrub

__all__ = ["write_run_artifacts", "code_snapshot", "auto_tags", "environment", "warn_untracked_imports"]


def code_snapshot(
    project_dir: Path,
    out_dir: Path,
    state: GitState,
    secrets: Sequence[str] = (),
    exclude: tuple[str, ...] = (RUNS_ROOT,),
) -> None:
    """Archive the tracked files and the diff, but for ``exclude`` (the run folder: outputs, not
    code); literal secret values are replaced in both.

    With no secret in a tracked file, ``git apply diff.patch`` onto ``git.json``'s commit gives
    back exactly the archived files; a secret (say an API token in params.yaml) is the one
    thing deliberately not reproduced.
    """
    if not state.is_repo:
        warnings.warn(
            f"{project_dir} is not a git repository: no code snapshot recorded (run `git init` and commit)",
            UserWarning,
            stacklevel=2,
        )
        return
    files = [f for f in git(["ls-files", "-z", "--", ".", *excluded(exclude)], project_dir).split("\0") if f]
    buf = io.BytesIO()
    # Fixed mtime/owner and sorted order: the same files give the same archive bytes.
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for rel in sorted(files):
            path = project_dir / rel
            if not path.is_file():  # deleted in the working tree
                continue
            data = scrub(path.read_bytes(), secrets)
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    artifacts = ArtifactsDir(out_dir)
    write_bytes(artifacts.code, buf.getvalue())
    diff = (
        git(["diff", "HEAD", "--binary", "--", ".", *excluded(exclude)], project_dir, check=False)
        if state.commit
        else ""
    )
    write_bytes(artifacts.diff, scrub(diff.encode(), secrets))
    write_json(artifacts.git, state.to_dict())


def warn_untracked_imports(project_dir: Path) -> list[str]:
    """Warn about project files this process imported that git does not track (not in the snapshot)."""
    project_dir = project_dir.resolve()
    try:
        tracked = set(git(["ls-files"], project_dir).split())
    except RuntimeError:
        return []
    untracked = []
    for mod in list(sys.modules.values()):
        path = getattr(mod, "__file__", None)
        # Some extension/builtin modules carry a bare relative __file__: not project files.
        if not path or not Path(path).is_absolute() or not Path(path).is_file():
            continue
        try:
            rel = Path(path).resolve().relative_to(project_dir)
        except ValueError:
            continue
        if ".venv" in rel.parts or "site-packages" in rel.parts:
            continue
        if rel.as_posix() not in tracked:
            untracked.append(rel.as_posix())
    if untracked:
        warnings.warn(
            f"imported project files not tracked by git (missing from the code snapshot): {', '.join(sorted(untracked))}",
            UserWarning,
            stacklevel=2,
        )
    return sorted(untracked)


def auto_tags(state: GitState) -> dict[str, str]:
    tags = {
        "git_commit": state.commit or "none",
        "git_branch": state.branch or "none",
        "git_dirty": "true" if state.dirty else "false",
    }
    exp_name = os.environ.get("DVC_EXP_NAME")
    if exp_name:
        tags["dvc_exp_name"] = exp_name
    return tags


def environment(seed: int) -> dict[str, Any]:
    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    packages = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions() if d.metadata["Name"])
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "torch": version("torch"),
        "lightning": version("lightning"),
        "dvc": version("dvc"),
        "reprokit": version("reprokit"),
        "seed": seed,
        "packages": sorted(set(packages)),
    }


def write_run_artifacts(cfg: Config, dataframe_csv: Path, project_dir: Path, out_dir: Path) -> dict[str, Any]:
    state = git_state(project_dir, exclude=(RUNS_ROOT,))
    code_snapshot(project_dir, out_dir, state, secret_values(cfg.to_dict()))
    files = ArtifactsDir(out_dir)
    write_text(files.config, yaml.safe_dump(redact(cfg.to_dict()), sort_keys=True))
    data = dataframe_csv.read_bytes()
    write_bytes(files.dataframe, data)
    write_json(files.dataframe_record, {"sha256": hashlib.sha256(data).hexdigest(), "path": str(dataframe_csv)})
    tags = {"tags": list(cfg.tags), "auto": auto_tags(state)}
    write_json(files.tags, tags)
    write_json(files.env, environment(cfg.seed))
    return tags
