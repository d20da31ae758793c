"""What a user does with a converted dataset: the counts, the params.yaml lines, the `dvc add` to run."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from reprokit.data.convert.writer import Converted

__all__ = ["describe", "params_lines", "dvc_add_targets"]


def describe(c: Converted, cwd: str | Path | None = None) -> str:
    cwd = Path(os.path.abspath(cwd or Path.cwd()))
    lines = [
        f"{c.dataset}: wrote {_shown(c.csv, cwd)}: {c.rows:,} images; "
        f"train {c.train_rows:,} of {c.train_labels:,} labels; validation {c.validation_rows:,} of "
        f"{c.validation_labels:,} labels ({c.queries:,} queries, {c.galleries:,} gallery items)"
        + (f"; {c.categories:,} categories" if c.categories else "")
        + (f"; bounding boxes on {c.boxes:,}" if c.boxes else "")
    ]
    lines += [f"  note: {note}" for note in c.notes]
    lines += [
        "Set in params.yaml (the CSV's paths are relative to data.root, the dataset's own folder):",
        *("  " + line for line in params_lines(c, cwd)),
    ]
    targets = dvc_add_targets(c, cwd)
    if targets:
        lines += ["Then track the data with DVC (and commit the .dvc files):", f"  dvc add {' '.join(targets)}"]
    if not _inside(c.root, cwd):
        lines.append(
            f"  The images stay in {str(c.root)!r}, outside the project: DVC hashes them there as a "
            "dependency, but cannot push them to a remote; to version them with the project, unpack "
            "the archive under it (e.g. data/) and convert from there."
        )
    lines.append("Then: reprokit check-data")
    return "\n".join(lines)


def params_lines(c: Converted, cwd: Path) -> list[str]:
    return [
        "data:",
        f"  dataframe: {_yaml(_shown(c.csv, cwd))}",
        f"  root: {_yaml(_shown(c.root, cwd))}",
        "  generate: []             # no embedded digits",
        "  image_mode: RGB",
    ]


def dvc_add_targets(c: Converted, cwd: Path) -> list[str]:
    """The folders to `dvc add`: the images' folder when it is in the project, and the CSV's, unless one holds the
    other (then the outer one only)."""
    out = Path(os.path.abspath(c.csv.parent))
    folders = []
    if _inside(c.root, cwd):
        folders.append(c.root)
    if _inside(out, cwd) and not any(_inside(out, f) for f in folders):
        folders = [f for f in folders if not _inside(f, out)] + [out]
    return [_shown(f, cwd) for f in folders if f != cwd]


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(folder)


def _shown(path: Path, cwd: Path) -> str:
    path = Path(os.path.abspath(path))
    return path.relative_to(cwd).as_posix() if path.is_relative_to(cwd) else path.as_posix()


def _yaml(text: str) -> str:
    """A path as a YAML scalar: plain when that reads back the same, else a double-quoted (JSON) string."""
    return text if re.fullmatch(r"[A-Za-z0-9_./][A-Za-z0-9_./@+-]*", text) else json.dumps(text)
