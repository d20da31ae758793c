"""``reprokit reproduce REV``: re-run a past commit or DVC experiment in isolation, compare metrics.

1. REV is resolved to a commit: a commit/branch/tag through git, else a DVC experiment name
   through its ``refs/exps/...`` ref.
2. The results recorded at REV are read from git: every ``metrics`` file that REV's dvc.yaml
   declares and every plot table it declares ``cache: false`` (the per-category metrics), all
   committed beside dvc.lock.
3. REV's tracked files are exported into a fresh folder outside the workspace (nothing of the
   user's is touched: no checkout, no worktree entry, not even params.yaml) and made a git repo.
   What DVC can restore is pulled from the project's DVC remote or, read-only, from the
   project's local cache (added as a local remote: it has the same layout).
4. ``dvc repro --force`` re-runs every stage there; each metric is compared with the record.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reprokit.core.config import flatten
from reprokit.core.errors import ReproduceError
from reprokit.core.git import exp_refs, git_toplevel, run_git
from reprokit.core.layout import RUNS_ROOT, RunsDir
from reprokit.core.stage_deps import content_hash
from reprokit.core.stage_runner import REPRODUCING_ENV

__all__ = ["reproduce", "resolve_rev", "recorded_metrics", "compare", "ReproduceReport"]


@dataclass
class Row:
    metric: str
    recorded: float | None
    reproduced: float | None

    @property
    def difference(self) -> float | None:
        if self.recorded is None or self.reproduced is None:
            return None
        return self.reproduced - self.recorded


@dataclass
class ReproduceReport:
    rev: str
    commit: str
    rows: list[Row] = field(default_factory=list)
    tolerance: float = 0.0
    workdir: Path | None = None
    data_differences: list[str] = field(default_factory=list)
    code_differences: list[str] = field(default_factory=list)

    def agrees(self, row: Row) -> bool:
        diff = row.difference
        return diff is not None and math.isfinite(diff) and abs(diff) <= self.tolerance

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(self.agrees(r) for r in self.rows)

    def table(self) -> str:
        def fmt(x: float | None) -> str:
            return "missing" if x is None else f"{x:.6g}"

        header = ("metric", "recorded", "reproduced", "difference", "")
        body = [
            (r.metric, fmt(r.recorded), fmt(r.reproduced), fmt(r.difference), "ok" if self.agrees(r) else "DIFFERS")
            for r in self.rows
        ]
        widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(5)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header, *body]]
        lines.insert(1, "  ".join("-" * w for w in widths[:4]))
        return "\n".join(lines)


def resolve_rev(rev: str, repo: Path) -> str:
    """A commit SHA for a commit/branch/tag, or for a DVC experiment name."""
    if git_toplevel(repo) is None:
        raise ReproduceError(f"{repo} is not a git repository", hint="run reprokit reproduce inside the project")
    out = run_git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], repo)
    if out.returncode == 0:
        return out.stdout.strip()
    matches = [commit for ref, commit in exp_refs(repo) if ref.rsplit("/", 1)[-1] == rev]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ReproduceError(
            f"experiment name {rev!r} is ambiguous ({len(matches)} experiments)", hint="pass its commit SHA"
        )
    raise ReproduceError(
        f"unknown revision {rev!r}: not a commit, branch, tag or DVC experiment",
        hint="list them with `git log --oneline` or `dvc exp show -A`",
    )


def _result_paths(dvc_yaml: dict[str, Any]) -> list[str]:
    """The result files a revision commits to git: every ``metrics`` file its stages declare and
    every plot table declared ``cache: false`` (the per-category metrics), so that each number
    committed beside the pipeline is proven, not only the headline ones."""
    paths = []
    for stage in (dvc_yaml.get("stages") or {}).values():
        for entry in stage.get("metrics") or []:
            paths.append(next(iter(entry)) if isinstance(entry, dict) else str(entry))
        for entry in stage.get("plots") or []:
            if isinstance(entry, dict):
                path, opts = next(iter(entry.items()))
                if isinstance(opts, dict) and opts.get("cache") is False and Path(path).suffix in TABLE_SUFFIXES:
                    paths.append(path)
    return paths


TABLE_SUFFIXES = {".json": None, ".tsv": "\t", ".csv": ","}


def _numeric_leaves(data: Any) -> dict[str, float]:
    """Every number of a metrics file, keyed by its dotted path (as `dvc exp show` names it)."""
    return {k: float(v) for k, v in flatten(data).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _table_leaves(text: str, delimiter: str) -> dict[str, float]:
    """Every numeric cell of a plot table, keyed ``<first column's value>.<column>`` (e.g. ``3.cmc@1``)."""
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if not rows:
        return {}
    header, found = rows[0], {}
    for row in rows[1:]:
        for column, cell in zip(header[1:], row[1:]):
            try:
                found[f"{row[0]}.{column}"] = float(cell)
            except ValueError:
                continue  # an empty cell (a metric a category has no value for) or text
    return found


def _leaves(path: str, text: str) -> dict[str, float]:
    delimiter = TABLE_SUFFIXES.get(Path(path).suffix)
    values = _numeric_leaves(json.loads(text)) if delimiter is None else _table_leaves(text, delimiter)
    return {f"{path}:{k}": v for k, v in values.items()}


def recorded_metrics(commit: str, repo: Path) -> dict[str, float]:
    """Every numeric result committed at ``commit``, keyed ``<file>:<dotted.key>``."""
    shown = run_git(["show", f"{commit}:dvc.yaml"], repo)
    if shown.returncode != 0:
        raise ReproduceError(f"revision {commit[:12]} has no dvc.yaml", hint="pick a commit of a reprokit pipeline")
    found: dict[str, float] = {}
    paths = _result_paths(yaml.safe_load(shown.stdout) or {})
    for path in paths:
        blob = run_git(["show", f"{commit}:{path}"], repo)
        if blob.returncode == 0:
            found.update(_leaves(path, blob.stdout))
    if not found:
        raise ReproduceError(
            f"revision {commit[:12]} has no recorded metrics (no metrics file of its dvc.yaml is committed there)",
            hint=f"run `dvc repro`, then commit its results: git add dvc.lock {' '.join(paths)}",
        )
    return found


def current_metrics(workdir: Path) -> dict[str, float]:
    dvc_yaml = yaml.safe_load((workdir / "dvc.yaml").read_text()) or {}
    found: dict[str, float] = {}
    for path in _result_paths(dvc_yaml):
        file = workdir / path
        if file.is_file():
            found.update(_leaves(path, file.read_text()))
    return found


def compare(recorded: dict[str, float], reproduced: dict[str, float]) -> list[Row]:
    return [Row(name, recorded[name], reproduced.get(name)) for name in sorted(recorded)]


def _export(commit: str, repo: Path, dest: Path) -> None:
    archive = run_git(["archive", "--format=tar", commit], repo, binary=True)
    if archive.returncode != 0:
        raise ReproduceError(f"cannot export revision {commit[:12]}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        # git's own archive of a commit; the "data" filter (Python >= 3.11.4) also refuses links
        # leaving dest, where this Python has it.
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)  # noqa: S202 - git archive writes no member outside dest


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def _checked(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    """Run ``cmd``; a non-zero exit stops the reproduction with one line saying what failed."""
    proc = _run(cmd, cwd)
    if proc.returncode != 0:
        detail = " ".join((proc.stderr or proc.stdout or "").split())[-400:] or "no output"
        raise ReproduceError(f"{what} failed: `{' '.join(cmd)}` exited {proc.returncode}: {detail}")
    return proc


def _prepare_checkout(commit: str, repo: Path, workdir: Path) -> None:
    _export(commit, repo, workdir)
    # A git repo of its own, so the pipeline's code snapshot and DVC work as in the original.
    identity = ["-c", "user.name=reprokit reproduce", "-c", "user.email=reproduce@reprokit.invalid"]
    _checked(["git", "init", "-q"], workdir, "making the reproduction a git repository")
    _checked(["git", "add", "-A"], workdir, "staging the exported files")
    _checked(
        ["git", *identity, "commit", "-qm", f"reproduce {commit}", "--no-verify"],
        workdir,
        "committing the exported files",
    )
    cache = repo / ".dvc" / "cache"
    if cache.is_dir():
        # The user's cache, read-only, as a local remote (same layout); our outputs go to our own cache.
        _checked(
            ["dvc", "remote", "add", "--local", "reprokit_origin_cache", str(cache.resolve())],
            workdir,
            "adding your DVC cache as a read-only remote",
        )
        _checked(
            ["dvc", "pull", "-q", "--allow-missing", "-r", "reprokit_origin_cache"],
            workdir,
            "restoring the recorded inputs from your DVC cache",
        )
    if _run(["dvc", "remote", "default"], workdir).returncode == 0:  # the project's default remote, if it has one
        _checked(
            ["dvc", "pull", "-q", "--allow-missing"],
            workdir,
            "restoring the recorded inputs from the default DVC remote",
        )


def data_differences(workdir: Path) -> list[str]:
    """Inputs whose content differs from what REV's dvc.lock recorded, as ``path (how)``.

    Only data: code and params are REV's own (exported from git), and outputs of a stage are
    re-made by it; what is left are the files a stage reads that no stage writes — the
    dataframe and images, wherever they live.
    """
    proc = _checked(["dvc", "status", "--json"], workdir, "comparing the data with what the revision recorded")
    status = json.loads(proc.stdout or "{}")
    lock = yaml.safe_load((workdir / "dvc.lock").read_text()) if (workdir / "dvc.lock").is_file() else {}
    produced = {o["path"] for s in (lock or {}).get("stages", {}).values() for o in s.get("outs", []) or []}
    found: dict[str, str] = {}
    for entries in status.values():
        for entry in entries if isinstance(entries, list) else []:
            for path, how in (entry.get("changed deps") or {}).items() if isinstance(entry, dict) else ():
                # A stage's output, a file inside one (the dataframe the prepare stage generates), or a
                # folder of outputs (the stage folders under runs/ the report and the mirror read).
                made = (
                    path in produced
                    or any(path.startswith(out + "/") for out in produced)
                    or path == RUNS_ROOT
                    or path.startswith(RUNS_ROOT + "/")
                )
                if made or path.startswith(("reprokit/", "stages/")) or path.endswith(".py"):
                    continue
                found[path] = how
    return [f"{path} ({how})" for path, how in sorted(found.items())]


def code_differences(workdir: Path) -> list[str]:
    """Code the recorded run read (``runs/train/run.json``'s ``inputs``: each file's sha256 at the
    training's start, restored with the run's outputs) that differs from the revision's, as ``path (how)``.

    The exported files are what git holds at REV; a user module edited but not committed, or never
    committed at all, ran for the recorded numbers all the same: the reproduction runs other code.
    """
    identity = workdir / RunsDir().train.identity
    try:
        recorded = json.loads(identity.read_text()).get("inputs") or {}
    except (OSError, ValueError, AttributeError):
        return []  # not restored (no DVC cache or remote holds it), or a run from before inputs were recorded
    found = []
    for path, digest in sorted(recorded.items()):
        if not str(path).endswith(".py"):
            continue  # data and weights: DVC's own record (data_differences) names them
        file = workdir / path
        if not file.is_file():
            found.append(f"{path} (the run imported it; the revision does not have it: it was never committed to git)")
        elif content_hash(file) != digest:
            found.append(
                f"{path} (the run imported sha256 {digest[:12]}, the revision holds "
                f"{content_hash(file)[:12]}: an edit that was not committed)"
            )
    return found


def _repro(workdir: Path, log_path: Path) -> int:
    start = time.monotonic()
    with open(log_path, "w") as log:
        # The mirror stage sees REPRODUCING_ENV and writes to a throwaway local logger, never the team's tracker.
        env = {**os.environ, REPRODUCING_ENV: "1"}
        proc = subprocess.Popen(
            ["dvc", "repro", "--force"],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for line in proc.stdout or ():
            log.write(line)
            if line.startswith("Running stage"):
                stage = line.split("'")[1] if "'" in line else line.strip()
                print(f"[{time.monotonic() - start:7.1f}s] running stage {stage}", file=sys.stderr, flush=True)
        return proc.wait()


def reproduce(rev: str, repo: Path = Path("."), tolerance: float = 0.0, keep: bool = False) -> ReproduceReport:
    repo = repo.resolve()
    commit = resolve_rev(rev, repo)
    recorded = recorded_metrics(commit, repo)
    workdir = Path(tempfile.mkdtemp(prefix=f"reprokit-reproduce-{commit[:8]}-"))
    report = ReproduceReport(rev=rev, commit=commit, tolerance=tolerance, workdir=workdir if keep else None)
    print(f"reproducing {rev} ({commit[:12]}) in {workdir}", file=sys.stderr, flush=True)
    print(
        "reproduce: the mirror stage writes to a throwaway csv logger in that copy, never to your tracker",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    try:
        _prepare_checkout(commit, repo, workdir)
        report.data_differences = data_differences(workdir)
        for line in report.data_differences:
            print(
                f"reproduce: warning: input data differs from what {rev} recorded: {line}", file=sys.stderr, flush=True
            )
        report.code_differences = code_differences(workdir)
        for line in report.code_differences:
            print(f"reproduce: warning: code differs from what {rev} recorded: {line}", file=sys.stderr, flush=True)
        log_path = workdir.parent / f"{workdir.name}.log"
        code = _repro(workdir, log_path)
        if code != 0:
            tail = log_path.read_text().splitlines()[-30:]
            print("\n".join(tail), file=sys.stderr)
            raise ReproduceError(
                f"the pipeline of {rev} ({commit[:12]}) failed with exit code {code}",
                hint=f"full log: {log_path}",
            )
        log_path.unlink(missing_ok=True)
        report.rows = compare(recorded, current_metrics(workdir))
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report.table())
    agreed = sum(report.agrees(r) for r in report.rows)
    verdict = "reproduced" if report.ok else "NOT reproduced"
    print(
        f"{verdict}: {agreed}/{len(report.rows)} metrics agree within {tolerance:g} "
        f"({time.monotonic() - started:.0f}s)" + (f"; outputs kept in {workdir}" if keep else ""),
        file=sys.stderr,
    )
    return report
