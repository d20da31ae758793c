"""reprokit in a user's own repository: the built wheel in a fresh environment, `reprokit init`,
the user's data and model, DVC seeing both, `dvc exp show`, and `reprokit reproduce HEAD`.

Nothing here reads this checkout at run time: the wheel is installed (without dependencies) into
a new virtual environment whose only view of the other packages is this venv's site-packages,
added after its own, so `import reprokit` finds the wheel's copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.projects import PROJECT_ROOT, project_files, run, subprocess_env, write_rgb_dataset

pytestmark = pytest.mark.slow

MODEL_MODULE = '''"""The user's own embedding network."""
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, in_channels, width, embedding_dim):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(width * 16, embedding_dim),
        )

    def forward(self, x):
        return nn.functional.normalize(self.body(x), dim=1)


def build(in_channels, width=8, embedding_dim=16):
    return TinyNet(in_channels, width, embedding_dim)
'''


def _fresh_env(tmp: Path) -> Path:
    """A new venv holding only the built wheel; other packages come from this venv, after its own."""
    # Built from a copy of the tracked files: a build writes build/ beside its sources.
    src = tmp / "src"
    for rel in project_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / rel, src / rel)
    dist = tmp / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)],
        tmp,
        timeout=600,
    )
    wheel = next(dist.glob("reprokit-*.whl"))
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp)
    py = venv / "bin" / "python"
    site = run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp).stdout.strip()
    Path(site, "zz_shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp, timeout=600)
    # DVC's console script is not in the new venv (no dependencies installed): a two-line shim.
    shim = venv / "bin" / "dvc"
    shim.write_text(f"#!{py}\nimport sys\nfrom dvc.cli import main\nsys.exit(main())\n")
    shim.chmod(0o755)
    return venv


def test_own_repository_from_wheel_to_reproduction(tmp_path: Path):
    venv = _fresh_env(tmp_path)
    env = subprocess_env({"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)})
    env.pop("PYTHONPATH", None)
    repo = tmp_path / "my-project"
    repo.mkdir()

    def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(list(cmd), repo, check=check, env=env, timeout=900)

    # Outside a git repository, init says so and how to fix it.
    refused = sh("reprokit", "init", check=False)
    assert refused.returncode == 1 and "not inside a git repository" in refused.stderr and "git init" in refused.stderr

    sh("git", "init", "-q", "-b", "main")
    out = sh("reprokit", "init").stdout
    assert "wrote   dvc.yaml" in out and "dvc repro" in out
    # The package that runs is the wheel's, not this checkout.
    where = sh("python", "-c", "import reprokit; print(reprokit.__file__)").stdout.strip()
    assert str(PROJECT_ROOT) not in where and str(venv) in where
    # Never overwrites without --force.
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "\n# mine\n")
    again = sh("reprokit", "init").stdout
    assert "kept    params.yaml" in again and (repo / "params.yaml").read_text().endswith("# mine\n")

    write_rgb_dataset(repo / "data" / "shop")
    (repo / "my_models.py").write_text(MODEL_MODULE)
    dvc_yaml = (repo / "dvc.yaml").read_text().replace("- models.py", "- my_models.py")
    (repo / "dvc.yaml").write_text(dvc_yaml)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(dataframe="data/shop/df.csv", root="data/shop", generate=[], image_mode="RGB", image_size=16)
    params["model"] = {"name": "my_models:build", "args": {"width": 8, "embedding_dim": 16}}
    params["train"].update(epochs=2, n_labels=4, n_instances=3)
    params["visualize"]["n_queries"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    repro = sh("dvc", "repro")
    # Grad-CAM runs the user's own network, at its last Conv2d.
    assert "Grad-CAM at body.0 -> runs/visualize/gradcam.png" in repro.stdout + repro.stderr
    assert (repo / "runs/visualize/gradcam.png").stat().st_size > 1000
    ran = sh("git", "status", "--porcelain").stdout
    assert "dvc.lock" in ran
    assert not list(repo.glob("data/digits")), "the embedded dataset was generated though it is not used"
    # The report's style and script ship in the wheel: its page is written for the user's RGB data too.
    page = (repo / "runs/report/index.html").read_text()
    assert "data:image/jpeg;base64," in page and "queries-table" in page
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "my pipeline")

    shown = json.loads(sh("dvc", "exp", "show", "--json").stdout)
    metrics = shown[0]["data"]["metrics"]["runs/validate/metrics.json"]["data"]["overall"]
    assert 0.0 <= metrics["cmc@1"] <= 1.0

    # An edited image and an edited model module are both seen by DVC.
    img = repo / "data/shop/images/020_0.png"
    original = img.read_bytes()
    arr = np.asarray(Image.open(img)).copy()
    arr[0, 0] = 255 - arr[0, 0]
    Image.fromarray(arr).save(img)
    status = sh("dvc", "status").stdout
    assert "train:" in status and "validate:" in status and "data/shop" in status
    img.write_bytes(original)
    (repo / "my_models.py").write_text(MODEL_MODULE + "\n# a comment\n")
    status = sh("dvc", "status").stdout
    assert "train:" in status and "visualize:" in status and "my_models.py" in status
    (repo / "my_models.py").write_text(MODEL_MODULE)

    proved = sh("reprokit", "reproduce", "HEAD", check=False)
    assert proved.returncode == 0, proved.stderr[-3000:]
    assert "reproduced:" in proved.stderr
