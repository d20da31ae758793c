"""`reprokit compare` on real committed runs: a DVC experiment, `HEAD~1 HEAD`, and a refusal.

The runs are the shared session fixtures: the reduced pipeline committed as "baseline run", and
the experiment `dvc exp run -S train.epochs=1 -n one-epoch` on top of it. The expected flips are
computed here from the two per-query tables with plain pandas.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.projects import EXPERIMENT, commit_all, run, subprocess_env

pytestmark = pytest.mark.slow


def _compare(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reprokit.cli", "compare", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=600,
    )


def _expected_flips(a_tsv: Path, b_tsv: Path, metric: str = "map@5") -> tuple[list[str], list[str]]:
    a = pd.read_csv(a_tsv, sep="\t", dtype={"path": str})
    b = pd.read_csv(b_tsv, sep="\t", dtype={"path": str})
    m = a.merge(b, on="path", suffixes=("_a", "_b"))
    m["change"] = m[f"{metric}_b"] - m[f"{metric}_a"]
    regressed = m[(m["cmc@1_a"] == 1.0) & (m["cmc@1_b"] == 0.0)].sort_values(["change", "path"])
    improved = m[(m["cmc@1_a"] == 0.0) & (m["cmc@1_b"] == 1.0)]
    improved = improved.assign(gain=-improved["change"]).sort_values(["gain", "path"])
    return list(regressed["path"]), list(improved["path"])


def _printed(text: str, section: str) -> tuple[int, list[str]]:
    """(the count in the section's heading, the paths its table lists in order)."""
    head = re.search(rf"^{section}: (\d+) queries", text, flags=re.M)
    assert head, text
    body = text[head.end() :].split("\n\n", 1)[0]
    return int(head[1]), re.findall(r"^\s+[+-]\d\.\d{4}\s.*\s(\S+)$", body, flags=re.M)


def _workspace_digest(repo: Path) -> dict[str, str]:
    files = [p for p in [*repo.glob("runs/**/*"), repo / "params.yaml", repo / "dvc.lock"] if p.is_file()]
    return {p.relative_to(repo).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_compare_an_experiment_then_head_1_head_lists_the_flips_of_the_per_query_files(
    experiment_copy: Path,
    pipeline_repo: Path,
    tmp_path: Path,
):
    repo = experiment_copy
    baseline_tsv = pipeline_repo / "runs/validate/per_query.tsv"  # the committed baseline's table
    experiment_tsv = repo / "runs/validate/per_query.tsv"  # the experiment's, in the workspace after exp run
    regressed, improved = _expected_flips(baseline_tsv, experiment_tsv)
    assert regressed and improved, "the two runs must differ query by query for this test to mean anything"
    before, status = _workspace_digest(repo), run(["git", "status", "--porcelain"], repo).stdout

    page = tmp_path / "compare.html"
    out = _compare(repo, "HEAD", EXPERIMENT, "--limit", "0", "--html", str(page))
    assert out.returncode == 0, out.stderr
    assert _printed(out.stdout, "regressed") == (len(regressed), regressed)
    assert _printed(out.stdout, "improved") == (len(improved), improved)
    # Overall deltas of every metric, from the two metrics files.
    a = pd.read_json(pipeline_repo / "runs/validate/metrics.json", typ="series")["overall"]
    b = pd.read_json(repo / "runs/validate/metrics.json", typ="series")["overall"]
    for name in a:
        cells = [name, f"{a[name]:.4f}", f"{b[name]:.4f}", f"{b[name] - a[name]:+.4f}"]
        assert re.search(r"\s+".join(map(re.escape, cells)), out.stdout), name
    assert re.search(r"by category: B-A\n\s+category\s+cmc@1", out.stdout)
    assert {"0", "9"} <= set(re.findall(r"^  (\d)\s+[+-]", out.stdout, flags=re.M))
    # Read from git and DVC only: nothing in the workspace changed.
    assert _workspace_digest(repo) == before and run(["git", "status", "--porcelain"], repo).stdout == status

    html = page.read_text()
    assert html.count('<section class="flip">') == len(regressed) + len(improved)
    assert "<script" not in html and not re.search(r"(src|href)=\"(?!data:)", html)
    assert html.count("data:image/png;base64,") >= len(regressed) + len(improved)

    # The experiment committed on top of the baseline: HEAD~1 HEAD is the same comparison.
    commit_all(repo, "one epoch")
    again = _compare(repo, "HEAD~1", "HEAD", "--limit", "0")
    assert again.returncode == 0, again.stderr
    assert _printed(again.stdout, "regressed") == (len(regressed), regressed)
    assert _printed(again.stdout, "improved") == (len(improved), improved)

    # A clone without the outputs in its cache reads them from the DVC remote (here: the cache moved away).
    remote = tmp_path / "remote"
    (repo / ".dvc/cache").rename(remote)
    run(["dvc", "remote", "add", "-d", "--local", "team", str(remote)], repo)
    from_remote = _compare(repo, "HEAD~1", "HEAD", "--limit", "0")
    assert from_remote.returncode == 0, from_remote.stderr
    assert from_remote.stdout == again.stdout


def test_runs_on_other_validation_data_are_refused_in_one_line(pipeline_copy: Path):
    repo = pipeline_copy
    commit_all(repo, "baseline run")
    # The commit before has no run: that is one line too.
    none = _compare(repo, "HEAD~1", "HEAD")
    assert none.returncode == 1 and none.stderr.strip().count("\n") == 0
    assert "has no runs/validate/metrics.json" in none.stderr
    # One validation image changed and recorded (dvc commit), as a re-generated dataset would be.
    df = pd.read_csv(repo / "data/digits/df.csv")
    image = df.loc[df["split"] == "validation", "path"].iloc[3]
    target = repo / "data/digits" / image
    data = bytearray(target.read_bytes())
    data[-20] ^= 0xFF  # other bytes (no longer a valid PNG: compare never decodes it, it compares md5s)
    target.write_bytes(bytes(data))
    run(["dvc", "commit", "-f", "-q", "prepare@digits"], repo)
    commit_all(repo, "other validation image")
    out = _compare(repo, "HEAD~1", "HEAD")
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "different validation data: 1 validation images differ in content" in lines[0]
    assert repr(image) in lines[0]
