"""Two workers in two clones share one study on a real PostgreSQL server; every trial runs once.

The server is Debian's `postgresql` (.ci/run installs it when absent): a cluster made by `initdb`
in a temporary folder, started by `pg_ctl` on 127.0.0.1 at a free port with its own socket folder
(it never meets another server), stopped after. `initdb` and `postgres` refuse to run as root, so
as root they run as the `postgres` user.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from reprokit.core.study_storage import open_storage
from tests.integration.conftest import mirror_free_port
from tests.integration.test_sweep import GRID, write_sweep
from tests.projects import copy_repo, run, subprocess_env

pytestmark = pytest.mark.slow


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Postgres:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="reprokit-pg-"))  # under /tmp: the postgres user can reach it
        self.data = self.root / "data"
        self.port = mirror_free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        full = [str(self.bindir / cmd[0]), *cmd[1:]]
        if self.as_root:
            full = ["runuser", "-u", "postgres", "--", *full]
        return subprocess.run(full, capture_output=True, text=True, timeout=120)

    def start(self) -> str:
        made = self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        assert made.returncode == 0, made.stderr
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        started = self._run(
            "pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "server.log"), "-w", "start"
        )
        assert started.returncode == 0, started.stderr + (self.root / "server.log").read_text()
        created = self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c", "CREATE DATABASE sweeps"
        )
        assert created.returncode == 0, created.stderr
        return f"postgresql://postgres@127.0.0.1:{self.port}/sweeps"

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def postgres_url():
    bindir = _bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed, and .ci/run installs it (apt-get install postgresql)")
        pytest.skip("PostgreSQL's initdb is not installed here (Debian: apt-get install postgresql)")
    server = Postgres(bindir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.mark.long  # two workers sweeping a 2x2 grid
def test_two_workers_in_two_clones_share_a_study_and_every_trial_runs_once(sweep_base, postgres_url, tmp_path):
    # A shared git remote (bare) and DVC remote (a folder); two clones of the same commit.
    origin = tmp_path / "origin.git"
    run(["git", "clone", "-q", "--bare", str(sweep_base), str(origin)], tmp_path)
    dvc_remote = tmp_path / "dvc-remote"
    clones = []
    for name in ("a", "b"):
        clone = copy_repo(sweep_base, tmp_path / name)
        run(["git", "remote", "add", "origin", str(origin)], clone)
        run(["dvc", "remote", "add", "--local", "-d", "shared", str(dvc_remote)], clone)
        write_sweep(clone, "grid", GRID)
        clones.append(clone)

    workers = [
        subprocess.Popen(
            ["reprokit", "sweep", "sweeps/grid.yaml", "--storage", postgres_url],
            cwd=clone,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for clone in clones
    ]
    outputs = [w.communicate(timeout=1800)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    import optuna

    trials = optuna.load_study(study_name="grid", storage=open_storage(postgres_url)).trials
    counted = [t for t in trials if not t.user_attrs.get("discarded")]
    assert [t.state.name for t in counted] == ["COMPLETE"] * 4, [(t.number, t.state.name, t.user_attrs) for t in trials]
    combos = [(t.params["train.lr"], t.params["train.loss.args.margin"]) for t in counted]
    assert len(set(combos)) == 4  # each grid point exactly once
    ran_by = {t.user_attrs["worker"].rsplit("/", 1)[-1] for t in counted}
    assert ran_by == {"a", "b"}, ran_by  # both workers ran trials
    # Every experiment ran once, in the clone that asked for it, and was pushed to the shared remotes.
    for t in counted:
        clone = tmp_path / t.user_attrs["worker"].rsplit("/", 1)[-1]
        assert t.user_attrs["pushed"] is True
        other = clones[1] if clone == clones[0] else clones[0]
        names_here = run(["dvc", "exp", "ls", "--name-only"], clone).stdout.split()
        assert t.user_attrs["exp_name"] in names_here
        assert t.user_attrs["exp_name"] not in run(["dvc", "exp", "ls", "--name-only"], other).stdout.split()
    remote_refs = run(["git", "ls-remote", str(origin), "refs/exps/*"], tmp_path).stdout.split("\n")
    pushed = sorted(line.rsplit("/", 1)[-1] for line in remote_refs if line)
    assert pushed == sorted(t.user_attrs["exp_name"] for t in counted)
    # --show on either clone lists all four.
    for clone in clones:
        shown = run(["reprokit", "sweep", "sweeps/grid.yaml", "--storage", postgres_url, "--show"], clone).stdout
        for t in counted:
            assert t.user_attrs["exp_name"] in shown
        assert "postgres@127.0.0.1" in shown
    # A teammate fetches a trial pushed by the other worker and reproduces... its params at least:
    a = clones[0]
    theirs = next(t for t in counted if t.user_attrs["worker"].endswith("/b"))
    run(["dvc", "exp", "pull", "origin", theirs.user_attrs["exp_name"]], a)
    params = json.loads(run(["dvc", "exp", "show", "--json"], a).stdout)
    names = {e.get("name") for c in params for e in (c.get("experiments") or [])}
    assert theirs.user_attrs["exp_name"] in names


def test_workers_opening_a_new_database_at_the_same_moment_all_get_the_study(postgres_url, tmp_path):
    # Each creates Optuna's tables if they are missing: all but one lose that race and must still open it.
    code = (
        "import sys; from reprokit.core.study_storage import open_storage; import optuna; "
        "s = open_storage(sys.argv[1]); optuna.create_study(study_name='race', storage=s, load_if_exists=True); "
        "print('ok')"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, postgres_url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    import optuna

    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(postgres_url))] == ["race"]
